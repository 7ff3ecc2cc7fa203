"""The exception tree: one root, every class with its exit code, mapped by the CLI alone."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from tests.inprocess import invoke
from tests.syntax import nodes
from worker import cli, errors
from worker.errors import (
    AbortError,
    CancelWorkerError,
    CredentialsRefused,
    MergeError,
    StorageError,
    UsageError,
)
from worker.exits import Exit

WORKER = Path(errors.__file__).parent
TREE = [
    c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__
]
#: Signals inside a run that never reach the CLI (errors.py says why they stay out).
SIGNALS = {"Stopped", "RetryLater", "Unfinished"}


def test_every_class_of_the_tree_descends_from_the_one_root_and_has_an_exit_code() -> None:
    assert len(TREE) > 10
    for cls in TREE:
        assert issubclass(cls, CancelWorkerError), cls
        if cls is not CancelWorkerError:
            assert isinstance(cls.exit_code, Exit), cls


@pytest.mark.parametrize(
    ("branch", "code"),
    [(UsageError, Exit.USAGE), (AbortError, Exit.ABORTED), (MergeError, Exit.NEEDS_PERSON)],
)
def test_a_branch_gives_its_code_to_every_class_below_it(branch: type, code: Exit) -> None:
    below = [c for c in TREE if issubclass(c, branch)]
    assert len(below) >= 1
    assert {c.exit_code for c in below} == {code}


def test_the_abort_errors_are_those_the_run_stops_on() -> None:
    aborts = {c.__name__ for c in TREE if issubclass(c, AbortError) and c is not AbortError}
    assert aborts == {"CredentialsRefused", "AuthUnavailable", "ApiUnreachable", "StorageError"}
    assert CredentialsRefused("refused (401)", fix="set a fresh token").fix == "set a fresh token"
    assert StorageError("r.csv: No space left on device").fix is None


def test_no_module_defines_an_exception_outside_the_tree() -> None:
    """A new error class belongs in worker/errors.py, with its exit code."""
    outside = []
    for path in sorted(WORKER.rglob("*.py")):
        if path.name == "errors.py" or "sandbox" in path.parts:  # the sandbox has its own
            continue
        for node in nodes(path):
            if isinstance(node, ast.ClassDef) and node.name not in SIGNALS:
                bases = {b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases}
                if any(b.endswith(("Error", "Exception")) for b in bases):
                    outside.append(f"{path.relative_to(WORKER.parent)}: {node.name}")
    assert outside == []


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.ConfigError("--shard must look like I/N"), 2),
        (errors.ReportInUse("report r.csv is in use by another run"), 2),
        (errors.ApiUnreachable("no API request has succeeded for 300s"), 3),
        (errors.MergeError("the report of shard 1 of 2 is missing"), 1),
    ],
)
def test_the_cli_maps_the_tree_to_one_line_and_the_class_s_exit_code(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    error: CancelWorkerError,
    code: int,
) -> None:
    def fail(*args: object) -> None:
        raise error

    monkeypatch.setattr(cli, "check_environment", fail)
    got, _, err = invoke(capsys, "run", "in.csv")
    assert (got, err) == (code, f"Error: {error}\n")


def test_the_cli_masks_a_secret_in_an_error_message(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object) -> None:
        raise UsageError("cannot use https://ops:hunter2@proxy.example")

    monkeypatch.setattr(cli, "check_environment", fail)
    code, _, err = invoke(capsys, "check", "in.csv")
    assert (code, err) == (2, "Error: cannot use https://***@proxy.example\n")
