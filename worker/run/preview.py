"""Preview: what a run is about to do, shown before anything is sent, and the question.

Voiding payments cannot be undone, so when a person is at the keyboard (standard input
is a terminal) `run` first says how many references it will send, to which merchants
and which API, at what rate and for about how long, and asks. Both go to the terminal
itself (`Terminal`, /dev/tty), not to standard error: an operator pipes the logs
(`2>&1 | tee run.log`) by habit, and that must not turn the question off. Up to
`SMALL_RUN` references a `y` will do; above it the operator types the number, which
makes them read it (a `y` is typed without reading). Without a terminal (a container,
a cron job) nothing is asked; `--yes` skips the question; `--confirm` asks even on
loopback and the sandbox, so the question can be rehearsed; `--dry-run` shows the
preview ("would cancel") and sends nothing.
"""

from __future__ import annotations

import contextlib
import os
import termios
from collections.abc import Callable
from types import TracebackType

import yarl

from worker.observe.words import count, duration
from worker.run.prepare import Prepared
from worker.settings import is_loopback

#: Up to this many references to send, `y` confirms; above it, the count must be typed.
SMALL_RUN = 10
#: What confirms a stream, whose count is not known before it is read (never `y`).
STREAM_WORD = "cancel"
#: The preview's API line with `--sandbox`.
SANDBOX = "the embedded sandbox on loopback (no real payment is touched)"
#: Merchants listed by name in the preview; the rest are summed up.
MERCHANTS_SHOWN = 5


def render(prepared: Prepared) -> str:
    """A few lines, none wider than 80 columns but for long file names."""
    s = prepared.settings
    counts = prepared.to_send
    lines = []
    verb = "would cancel" if s.dry_run else "about to cancel"
    if counts is None:
        lines.append(f"{verb} the references read from {s.input}")
        lines.append("  (read once, as they arrive: not counted first)")
    else:
        total = sum(counts.values())
        lines.append(f"{verb} {count(total, 'reference')} from {s.input}")
        lines.append("  (counted after validation, duplicates, shard and resume)")
        for merchant, n in counts.most_common(MERCHANTS_SHOWN):
            lines.append(f"  merchant {merchant}: {n:,}")
        if len(counts) > MERCHANTS_SHOWN:
            rest = sum(n for _, n in counts.most_common()[MERCHANTS_SHOWN:])
            lines.append(f"  {count(len(counts) - MERCHANTS_SHOWN, 'more merchant')}: {rest:,}")
        if s.rate:
            unit = "request/s" if s.rate == 1 else "requests/s"
            lines.append(f"  at most {s.rate:g} {unit}: {duration(total / s.rate)}")
    # the sandbox starts with the run, on a port not known yet; its settings ignore the URL
    lines.append(f"  API: {SANDBOX if s.sandbox else where(s.api_url)}")
    lines.append(f"  report: {s.report}")
    if s.dry_run:
        lines.append("  dry run: nothing is sent")
    return "\n".join(lines)


def where(api_url: str) -> str:
    """The API's host, with its port when the URL names one (a sandbox, a proxy)."""
    url = yarl.URL(api_url)
    host = url.host or api_url
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{url.explicit_port}" if url.explicit_port else host


def should_ask(prepared: Prepared, person: bool) -> bool:
    """Ask before real cancels: a person (`person`: standard input is a terminal) off
    loopback, or anyone with `--confirm`; never with `--yes`."""
    s = prepared.settings
    if s.yes or s.dry_run or s.mode.value != "run":
        return False
    if s.confirm:
        return True
    return person and not s.sandbox and not is_loopback(yarl.URL(s.api_url).host)


class Terminal:
    """The terminal itself: the preview is written to it and the answer read from it,
    with plain reads and writes on its descriptor."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def open(cls) -> Terminal | None:
        """/dev/tty (the controlling terminal), else the terminal standard input is;
        None when there is none to ask on."""
        candidates = ["/dev/tty"]
        with contextlib.suppress(OSError):
            candidates.append(os.ttyname(0))
        for path in candidates:
            try:
                return cls(os.open(path, os.O_RDWR | os.O_NOCTTY))
            except OSError:
                continue
        return None

    def say(self, text: str) -> None:
        self._write(text + "\n")

    def ask(self, question: str) -> str:
        """The answer typed; "" for Ctrl-D or Ctrl-C (which must never mean yes)."""
        with contextlib.suppress(OSError, termios.error):
            # what was typed (or pasted) before the question was shown is not its answer
            termios.tcflush(self._fd, termios.TCIFLUSH)
        self._write(question)
        try:
            # One read is one line: the terminal hands over a line once Enter is pressed.
            line = os.read(self._fd, 4096)
        except (OSError, KeyboardInterrupt):
            return ""
        return line.decode("utf-8", "replace").strip()

    def _write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        while data:
            data = data[os.write(self._fd, data) :]

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def confirmed(prepared: Prepared, ask: Callable[[str], str]) -> bool:
    """Ask; True only for the exact answer (`y` for a small run, else the count)."""
    counts = prepared.to_send
    total = sum(counts.values()) if counts is not None else None
    if total == 0:
        return True  # nothing will be sent
    if total is None:  # a stream: its count is known only once read, so a word, not y
        answer = ask(
            f"type {STREAM_WORD} to cancel every reference it holds, anything else stops: "
        )
        return answer.strip().lower() == STREAM_WORD
    if total > SMALL_RUN:
        answer = ask(f"type {total:,} to cancel them, anything else stops: ")
        return answer.strip().replace(",", "") == str(total)
    return ask("cancel them? [y/N] ").strip().lower() in ("y", "yes")
