"""Logs: secrets masked in every field, and a broken stream that turns logging off."""

from __future__ import annotations

import io
import os

from worker.observe.logs import QuietOnError, Redactor


def test_the_redactor_masks_secrets_wherever_they_appear() -> None:
    redact = Redactor()
    redact.add("s3cr3t-value", "eyJhbGciOi.payload.sig", None, "ab")  # too short: ignored
    event = redact(
        None,
        "info",
        {
            "event": "x",
            "error": "POST failed: Authorization: Bearer eyJhbGciOi.payload.sig",
            "detail": ValueError("client_secret=s3cr3t-value"),
            "count": 3,
            "note": "about",  # contains "ab": short values never mask innocent text
        },
    )
    assert event["error"] == "POST failed: Authorization: Bearer ***"
    assert event["detail"] == "client_secret=***"
    assert event["count"] == 3 and event["note"] == "about"


class Broken(io.StringIO):
    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        return self._fd


def test_a_broken_stream_turns_logging_off_and_points_its_descriptor_at_devnull() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: like `... 2>&1 | head` after head exited
    stream = QuietOnError(Broken(write_end))
    try:
        assert stream.write("a line\n") == len("a line\n")  # no exception escapes
        assert stream.broken and not stream.isatty()
        assert os.write(write_end, b"more") == 4  # the descriptor now leads to /dev/null
        stream.flush()
    finally:
        os.close(write_end)
