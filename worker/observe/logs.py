"""Logs: structlog set up once per run; events with fields, never secrets.

JSON lines (orjson) when standard error is not a terminal or `--log-format json`,
readable console lines otherwise. Every event carries the run's `run_id`. A final
processor replaces any registered secret (client secret, JWTs) with `***`, wherever
it appears, so that even an exception message that quotes a header cannot leak one.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import orjson
import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


class Redactor:
    """A structlog processor that masks known secret values in every field."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, *secrets: str | None) -> None:
        for secret in secrets:
            # Very short values would mask innocent text and protect nothing.
            if secret and len(secret) >= 4:
                self._secrets.add(secret)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if not self._secrets:
            return event
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = self.scrub(value)
            elif value is not None and not isinstance(value, int | float | bool):
                text = str(value)
                scrubbed = self.scrub(text)
                if scrubbed != text:
                    event[key] = scrubbed
        return event


REDACTOR = Redactor()
_level = logging.INFO


class QuietOnError:
    """A log stream that turns itself off when it breaks, instead of taking the run down.

    A closed pipe (`... 2>&1 | head`), a full disk under a redirected stderr: the run
    has a report to finish and cancels in flight, and losing log lines is the lesser
    harm. The descriptor is pointed at /dev/null so that nothing else (the
    interpreter's flush at exit included) trips over it again.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return int(self._stream.write(text))
            except (OSError, ValueError):
                self._break()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._break()

    def isatty(self) -> bool:
        return not self.broken and bool(self._stream.isatty())

    def _break(self) -> None:
        self.broken = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def configure(log_format: str | None, level: str = "info", stream: Any = None) -> None:
    """Set up structlog for this process; `log_format` None means: decide by the terminal."""
    global _level, _out
    _level = LEVELS.get(level, logging.INFO)
    out = _out = QuietOnError(stream or sys.stderr)
    use_json = log_format == "json" or (log_format is None and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            REDACTOR,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_level),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, out)),
        cache_logger_on_first_use=False,
    )


def say(text: str) -> None:
    """Plain lines for a person (the end-of-run summary), on the log stream."""
    _out.write(text + "\n")
    _out.flush()


def is_debug() -> bool:
    """Cheap check before building a per-reference event on the hot path."""
    return _level <= logging.DEBUG


log = structlog.get_logger("cancel-worker")
_out = QuietOnError(sys.stderr)
