"""Errors: the one tree of what the worker raises on purpose, each with its exit code.

Like httpx's exceptions: one root, and below it a class for each thing that went
wrong, so a caller catches as broadly or as narrowly as it means to. Every class
carries the exit code (`worker.exits.Exit`) a command ends with when the error
reaches the CLI, which maps the whole tree in one place (`cli.main`: "Error: " and the
message, one line, then that code). A subclass has its branch's code.

    CancelWorkerError
    ├── UsageError            2  found before any request: nothing was sent
    │   ├── ConfigError          an option, an environment variable, a setting
    │   │   ├── ProxyError       HTTPS_PROXY / HTTP_PROXY cannot be used
    │   │   └── CaBundleError    --ca-bundle cannot be used
    │   ├── InputError           the input cannot be read as an input
    │   │   └── InputChanged     the file is not what the first pass read
    │   ├── ReportError          the report, or a file kept beside it, cannot be used
    │   │   └── ReportInUse      another run holds the report's lock
    │   ├── UnreadableReport     merge-reports: a report, run record or input it was given
    │   └── OutRefused           merge-reports: OUT would overwrite one, or cannot be written
    ├── AbortError            3  the run stopped sending; a rerun resumes (after `fix`)
    │   ├── CredentialsRefused   the auth server or the API refused our credentials
    │   ├── AuthUnavailable      the token endpoint stayed unreachable
    │   ├── ApiUnreachable       no API request succeeded for --give-up-after
    │   └── StorageError         the report or the journal could not be written
    └── MergeError            1  merge-reports: the shards do not add up

An error found while a run sends does not end the process: the run stops, records
why and ends with the run's exit code (`run.summary`); the class's code is the one
it would end with, and the one the CLI uses when it reaches it. Not in the tree:
`control.stop.Stopped` and `bambora.backoff.RetryLater`, signals inside a run that
never reach the CLI. Messages never quote a secret (the CLI masks them anyway).
"""

from __future__ import annotations

from typing import ClassVar

from worker.exits import Exit


class CancelWorkerError(Exception):
    """The root: every error the worker raises on purpose. Its message is one line for
    a person; `fix` says what a person must change first when a rerun alone cannot
    help (None: nothing to change)."""

    exit_code: ClassVar[Exit]
    fix: str | None = None


class UsageError(CancelWorkerError):
    """Found before any request, so nothing was sent: exit 2."""

    exit_code = Exit.USAGE


class ConfigError(UsageError):
    """An option, an environment variable or a setting that cannot be used."""


class ProxyError(ConfigError, ValueError):
    """A proxy variable that cannot be used; the message does not quote the URL (it may
    hold a password). Also a ValueError, as the proxy parser raised before."""


class CaBundleError(ConfigError, ValueError):
    """A CA bundle that cannot be used; the message names the file. Also a ValueError,
    as before."""


class InputError(UsageError):
    """The input cannot be used at all (nothing is sent), or broke mid-run (the run
    stops reading it and says so)."""


class InputChanged(InputError):
    """The file is not what the first pass read: the run stops reading it."""


class ReportError(UsageError):
    """The report, or a file the run keeps beside it (run record, lock), cannot be used."""


class ReportInUse(ReportError):
    """Another run holds the report's lock; the message names it."""


class UnreadableReport(UsageError):
    """merge-reports: a report, a run record or the input cannot be read as it is."""


class OutRefused(UsageError):
    """merge-reports: OUT would overwrite one of its inputs, or cannot be written."""


class AbortError(CancelWorkerError):
    """The run stopped sending: exit 3. Rerunning the same command resumes, once
    `fix` (when set) is done."""

    exit_code = Exit.ABORTED


class CredentialsRefused(AbortError):
    """The auth server or the API refused our credentials. No rerun helps until a
    person changes something: `fix` says what."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(reason)
        self.fix = fix


class AuthUnavailable(AbortError):
    """The token endpoint stayed unreachable for --give-up-after seconds."""


class ApiUnreachable(AbortError):
    """No API request succeeded for --give-up-after seconds."""


class StorageError(AbortError):
    """The report or the journal could not be written: stop sending."""


class MergeError(CancelWorkerError):
    """merge-reports: the shards do not add up (one missing, a reference doubled, an
    input row unmatched): exit 1, a person must look."""

    exit_code = Exit.NEEDS_PERSON
