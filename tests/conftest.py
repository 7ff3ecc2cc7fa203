"""Shared fixtures: a working aioresponses on aiohttp 3.14, and a log capture."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import ClientResponse
from aioresponses import aioresponses


class _StreamWriterStub:
    output_size = 0


class CompatResponse(ClientResponse):
    """aioresponses 0.7.9 builds responses without aiohttp 3.14's `stream_writer`.

    Upstream: pnuckowski/aioresponses#289 (fix in PR #288); see docs/pitfalls.md.
    aiohttp only reads `output_size` from it. Remove when a fixed release is out.
    """

    def __init__(self, *args: Any, stream_writer: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, stream_writer=stream_writer or _StreamWriterStub(), **kwargs)


class CompatAioresponses(aioresponses):  # type: ignore[misc]
    def add(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", CompatResponse)
        super().add(*args, **kwargs)


@pytest.fixture
def mock_http() -> Iterator[CompatAioresponses]:
    with CompatAioresponses() as mocked:
        yield mocked
