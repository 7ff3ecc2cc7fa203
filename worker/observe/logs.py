"""Logs: structlog set up once per run; events with fields, never secrets.

JSON lines (orjson) when standard error is not a terminal or `--log-format json`,
console lines for a person otherwise (`ConsoleLines`: fields in the order logged, a
mapping on a line of its own, wrapped to the terminal's width). Every event carries the
run's `run_id`. Lines go to whatever `sys.stderr` is when written, so that they print
above the live progress display instead of through it.

`mask` is the one masking function, applied at every edge where text leaves the
process: the last log processor (every field of every event), `say` (the summary and
its "run the same command again" hint), the report writer (every text cell the API or
an exception filled) and the termination message. It replaces with `***` any
registered secret (client secret, proxy and Pushgateway passwords) and whatever looks
like one: a bearer token, a JWT, the value of an `Authorization` header, the
`user:password` of a URL. So even an API answer or an exception that quotes a header
cannot leak a token.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections import deque
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TextIO, cast

import orjson
import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


#: What looks like a secret whatever its value: the value of an Authorization header
#: (any scheme), a bearer token (RFC 6750's b64token), a JWT (its header is base64 of
#: '{"', so it starts with eyJ) and the userinfo of a URL.
_LOOKS_SECRET = re.compile(
    r"""(?P<head>\b(?:proxy-)?authorization\b["']?\s*[:=]\s*["']?(?:[a-z]+\s+)?)[^\s"',;}]+"""
    r"|(?P<bearer>\bbearer\s+)[a-z0-9\-._~+/]+=*"
    r"|eyJ[a-z0-9_-]*\.[a-z0-9_-]+\.[a-z0-9_-]*"
    r"|(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^/\s@]*@",
    re.IGNORECASE,
)


def _masked(match: re.Match[str]) -> str:
    head = match.group("head") or match.group("bearer") or match.group("scheme") or ""
    return f"{head}***@" if match.group("scheme") else f"{head}***"


#: Tokens fetched during the run that `Redactor` masks: the current one and a few before.
TOKENS_KEPT = 4


class Redactor:
    """Masks secrets in text (`scrub`), and as a structlog processor in every field."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._tokens: deque[str] = deque(maxlen=TOKENS_KEPT)
        self._known: tuple[str, ...] = ()  # both, as `scrub` looks for them

    def add(self, *secrets: str | None) -> None:
        for secret in secrets:
            # Very short values would mask innocent text and protect nothing.
            if secret and len(secret) >= 4:
                self._secrets.add(secret)
        self._known = (*self._secrets, *self._tokens)

    def add_token(self, token: str) -> None:
        """A token fetched during the run, masked as a secret (an opaque one looks like
        no credential): the last `TOKENS_KEPT`, since an API quotes back the token it
        was sent, and each one kept costs every mask a search."""
        if len(token) >= 4:
            self._tokens.append(token)
        self._known = (*self._secrets, *self._tokens)

    def scrub(self, text: str) -> str:
        """`text` with every known secret and everything that looks like one masked."""
        for secret in self._known:
            if secret in text:
                text = text.replace(secret, "***")
        if text.isalnum():  # every look-alike needs a space, `.`, `:` or `=`: none here
            return text  # (a payment state, an outcome: most of what a report row masks)
        return _LOOKS_SECRET.sub(_masked, text)

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
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
#: The one masking function (see the module's docstring for where it is applied).
mask = REDACTOR.scrub
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


class CurrentStderr:
    """Whatever `sys.stderr` is at each write. While the live progress display is up, rich
    puts a proxy there that prints each line above the display; a stream fixed at set-up
    time would write through the display and leave a torn copy of it on the screen."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()

    def fileno(self) -> int:
        return sys.stderr.fileno()


_STYLE = {"dim": "\x1b[2m", "bold": "\x1b[1m", "key": "\x1b[36m", "reset": "\x1b[0m"}
_LEVEL = {"debug": "\x1b[34m", "info": "\x1b[32m", "warning": "\x1b[33m", "error": "\x1b[31m"}
#: Piece of a console line: (what it shows, the same with colours).
Piece = tuple[str, str]


class ConsoleLines:
    """Console log lines for a person: `time level event key=value ...`, fields in the order
    logged (`run_id`, the same on every line, last).

    structlog's ConsoleRenderer shows a dict as its Python repr on the one line: the
    `summary` event came out as 400 characters of `outcomes={'canceled': 54, ...}`. Here a
    mapping gets its own indented line (`outcomes: canceled=54 invalid=3`), and fields
    that would run past the terminal's width go on indented lines below.
    """

    INDENT = "    "

    def __init__(self, *, colors: bool, width: Callable[[], int]) -> None:
        self._colors = colors
        self._width = width

    def _paint(self, text: str, style: str) -> Piece:
        return (text, f"{style}{text}{_STYLE['reset']}" if self._colors else text)

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
        fields = dict(event)
        extra = [str(t) for k in ("stack", "exception") if (t := fields.pop(k, None))]
        level = str(fields.pop("level", method))
        head = [
            self._paint(re.sub(r"\.\d+Z$", "Z", str(fields.pop("timestamp", ""))), _STYLE["dim"]),
            self._paint(f"{level:<7}", _LEVEL.get(level, _LEVEL["error"])),
            self._paint(str(fields.pop("event", "")), _STYLE["bold"]),
        ]
        if "run_id" in fields:
            fields["run_id"] = fields.pop("run_id")
        # Plain fields follow each other, wrapping onto indented lines; a mapping starts
        # its own line (its items wrap further in), and the fields after it another.
        runs: list[tuple[str, str, list[Piece]]] = [("", self.INDENT, [p for p in head if p[0]])]
        for key, value in fields.items():
            if isinstance(value, Mapping):
                items = [self._pair(k, v) for k, v in value.items()] or [("-", "-")]
                key_piece = self._paint(f"{key}:", _STYLE["key"])
                runs.append((self.INDENT, self.INDENT * 2, [key_piece, *items]))
                runs.append((self.INDENT, self.INDENT, []))
            else:
                runs[-1][2].append(self._pair(key, value))
        width = self._width()
        lines = [line for run in runs if run[2] for line in self._wrap(*run, width)]
        return "\n".join(lines + extra)

    def _pair(self, key: Any, value: Any) -> Piece:
        shown = _shown(value)
        painted = self._paint(str(key), _STYLE["key"])[1] + "=" + shown
        return (f"{key}={shown}", painted)

    @staticmethod
    def _wrap(first: str, rest: str, pieces: list[Piece], width: int) -> list[str]:
        """Pieces joined by spaces; one that would pass `width` starts a line with `rest`.
        A piece longer than a whole line (a `message`) starts its own line and wraps
        between its words: the terminal would cut it inside one."""
        lines = [first + pieces[0][1]]
        size = len(first) + len(pieces[0][0])
        for plain, painted in pieces[1:]:
            words = _words(plain, painted) if len(rest) + len(plain) > width else []
            if len(words) > 1:
                lines.append(rest + words[0][1])
                size = len(rest) + len(words[0][0])
                for word, shown in words[1:]:
                    if size + 1 + len(word) <= width:
                        lines[-1] += " " + shown
                        size += 1 + len(word)
                    else:
                        lines.append(rest + shown)
                        size = len(rest) + len(word)
            elif size + 1 + len(plain) <= width:
                lines[-1] += " " + painted
                size += 1 + len(plain)
            else:
                lines.append(rest + painted)
                size = len(rest) + len(plain)
        return lines


def _words(plain: str, painted: str) -> list[Piece]:
    """A piece's words, plain and painted alike (colour codes hold no space), or none."""
    split, shown = plain.split(" "), painted.split(" ")
    return list(zip(split, shown, strict=True)) if len(split) == len(shown) else []


def _shown(value: Any) -> str:
    """A value as a person reads it: text unquoted unless it holds spaces or `=`."""
    if value is None:
        return "-"
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(_shown(v) for v in value) or "-"
    text = str(value)
    if not text or any(c.isspace() or c in "=\"'" for c in text):
        return orjson.dumps(text).decode()
    return text


def _terminal_width(stream: Any) -> Callable[[], int]:
    def width() -> int:
        try:
            return os.get_terminal_size(stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            return 100  # not a terminal: long enough for a line, short enough to read

    return width


def configure(log_format: str | None, level: str = "info", stream: Any = None) -> None:
    """Set up structlog for this process; `log_format` None means: decide by the terminal."""
    global _level, _out, _person, _format
    _level = LEVELS.get(level, logging.INFO)
    target = stream if stream is not None else CurrentStderr()
    out = _out = QuietOnError(target)
    use_json = log_format == "json" or (log_format is None and not out.isatty())
    _person = not use_json and out.isatty()
    _format = "json" if use_json else "console"
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if use_json
        else ConsoleLines(colors=out.isatty(), width=_terminal_width(target))
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
    _out.write(mask(text) + "\n")
    _out.flush()


def for_a_person() -> bool:
    """Console lines on a terminal: someone reads them, and the end-of-run summary
    (`say`) is enough; a `summary` event beside it would print the same night twice."""
    return _person


def is_debug() -> bool:
    """Cheap check before building a per-reference event on the hot path."""
    return _level <= logging.DEBUG


log = structlog.get_logger("cancel-worker")
_out = QuietOnError(sys.stderr)
_person = False
_format = "json"  # what `configure` chose: json, or console on a terminal


def log_format() -> str:
    """The log format in effect (`--log-format`, or what the terminal decided)."""
    return _format
