"""Logs: secrets masked in every field, a broken stream that turns logging off, and
console lines a person can read."""

from __future__ import annotations

import io
import os
import re

import pytest

from worker.observe.logs import TOKENS_KEPT, ConsoleLines, QuietOnError, Redactor, mask


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


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("had Authorization: Bearer abc.def-ghi", "had Authorization: Bearer ***"),
        ('{"authorization": "Basic dXNlcjpwdw=="}', '{"authorization": "Basic ***"}'),
        ("Proxy-Authorization=s3cr3t; next", "Proxy-Authorization=***; next"),
        ("token: bearer xyz~+/=", "token: bearer ***"),
        ("jwt eyJhbGciOi.eyJzdWIi.c2ln in text", "jwt *** in text"),
        ("push to http://user:pw@gw:9091/x", "push to http://***@gw:9091/x"),
        ("HTTP 403 (scope missing)", "HTTP 403 (scope missing)"),  # nothing secret
        ("https://api.example/v1/payments", "https://api.example/v1/payments"),
    ],
)
def test_mask_hides_whatever_looks_like_a_credential(text: str, masked: str) -> None:
    assert mask(text) == masked


def test_a_known_secret_is_masked_in_text_of_letters_and_digits_alone() -> None:
    redact = Redactor()
    redact.add("Abc123secret")
    assert redact.scrub("xAbc123secretY") == "x***Y"  # the word-only fast path
    assert redact.scrub("Canceled") == "Canceled"
    assert redact.scrub("eyJ0eXAi") == "eyJ0eXAi"  # no dot: not a JWT, and nothing known


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


SUMMARY = {
    "timestamp": "2026-11-27T06:00:00.123456Z",
    "level": "info",
    "event": "summary",
    "run_id": "0f1b1900d40f",
    "outcomes": {"canceled": 54, "invalid": 3, "not_cancelable": 3, "already_canceled": 1},
    "rows_read": 63,
    "rows_reported": 63,
    "rows_written": 63,
    "rows_already_reported": 0,
    "rows_unwritten": 0,
    "lines_read": 64,
    "blank_rows": 0,
    "requests": 74,
    "retries": 0,
    "throttled": 0,
    "token_refreshes": 1,
    "elapsed_seconds": 5.812,
    "requests_per_second": 12.7,
    "report": "payments.report.csv",
    "exit_code": 1,
    "complete": True,
}


def test_the_console_shows_the_summary_as_a_short_readable_block() -> None:
    text = ConsoleLines(colors=False, width=lambda: 80)(None, "info", dict(SUMMARY))
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[0] == "2026-11-27T06:00:00Z info    summary"
    assert lines[1] == "    outcomes: canceled=54 invalid=3 not_cancelable=3 already_canceled=1"
    assert "{" not in text and "'" not in text  # no Python dict repr
    for key in ("rows_read=63", "report=payments.report.csv", "complete=True", "exit_code=1"):
        assert key in text
    assert lines[-1].endswith("run_id=0f1b1900d40f")  # the same on every line: last
    assert all(line.startswith("    ") for line in lines[1:])


def test_a_short_event_stays_one_line_with_text_quoted_only_when_it_must_be() -> None:
    event = {"level": "warning", "event": "stopping", "signal": "SIGINT", "hint": "a b", "x": None}
    text = ConsoleLines(colors=False, width=lambda: 200)(None, "warning", event)
    assert text == 'warning stopping signal=SIGINT hint="a b" x=-'


def test_a_long_mapping_wraps_inside_its_own_block() -> None:
    event = {"event": "e", "counts": {f"kind_{i}": i for i in range(30)}, "after": 1}
    lines = ConsoleLines(colors=False, width=lambda: 60)(None, "info", event).splitlines()
    assert all(len(line) <= 60 for line in lines), lines
    assert lines[0] == "info    e" and lines[1].startswith("    counts: kind_0=0 kind_1=1")
    assert lines[2].startswith("        kind_")  # the mapping's own continuation
    assert lines[-1] == "    after=1"


def test_a_text_longer_than_a_line_wraps_between_words_not_inside_one() -> None:
    # the resume line of a run at 80 columns: the terminal cut "referen|ces"
    message = (
        "resuming payments.report.csv: 174 rows from 2 earlier runs, "
        "1,826 references left, 174 settled"
    )
    event = {"event": "resuming", "rows": 174, "references_left": 1826, "message": message}
    for colors in (False, True):
        text = ConsoleLines(colors=colors, width=lambda: 80)(None, "info", event)
        plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
        lines = plain.splitlines()
        assert all(len(line) <= 80 for line in lines), lines
        assert all(line.startswith("    ") for line in lines[1:]), lines
        # the words, in order, each whole on a line; the value starts its own line
        said = " ".join(line.strip() for line in lines if "rows=" not in line)
        assert said == f'message="{message}"', lines


def test_colours_do_not_count_against_the_width() -> None:
    plain = ConsoleLines(colors=False, width=lambda: 80)(None, "info", dict(SUMMARY))
    painted = ConsoleLines(colors=True, width=lambda: 80)(None, "info", dict(SUMMARY))
    assert "\x1b[" in painted
    assert re.sub(r"\x1b\[[0-9;]*m", "", painted) == plain


def test_an_exception_follows_the_line() -> None:
    event = {"event": "internal_error", "line": 7, "exception": "Traceback ...\nValueError: x"}
    text = ConsoleLines(colors=False, width=lambda: 80)(None, "error", event)
    assert text == "error   internal_error line=7\nTraceback ...\nValueError: x"


def test_the_last_tokens_fetched_are_masked_and_older_ones_let_go() -> None:
    redactor = Redactor()
    redactor.add("client-secret-1")
    tokens = [f"opaque-token-{i}" for i in range(TOKENS_KEPT + 1)]
    for token in tokens:
        redactor.add_token(token)
    text = " ".join(["client-secret-1", *tokens])
    masked = redactor.scrub(text).split()
    assert masked == ["***", tokens[0], *["***"] * TOKENS_KEPT]
