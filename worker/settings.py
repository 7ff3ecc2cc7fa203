"""Settings: the one immutable object built from options and the environment.

Nothing else in the worker reads `os.environ`; every stage gets what it needs from
`Settings`. Validation that must happen before any request (URLs, secrets, ranges)
lives here and raises `ConfigError`, which the CLI turns into exit 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from worker.access import DEFAULT_API_URL as DEFAULT_API_URL
from worker.access import DEFAULT_AUTH_URL as DEFAULT_AUTH_URL
from worker.access import SCOPE as SCOPE
from worker.access import ConfigError as ConfigError
from worker.access import Credentials as Credentials
from worker.access import check_url as check_url
from worker.access import credentials_from_env as credentials_from_env
from worker.access import is_loopback as is_loopback
from worker.model import Mode, Outcome

MAX_COMMENT = 256
MAX_REFERENCE = 2000
#: No merchant number comes near it; it bounds what a report row can hold.
MAX_MERCHANT = 2000


@dataclass(frozen=True)
class Shard:
    """Shard I of N (0-based), parsed from `--shard I/N` or the Kubernetes env."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            i_text, n_text = text.split("/")
            index, count = int(i_text), int(n_text)
        except ValueError:
            raise ConfigError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
        if count < 1 or not 0 <= index < count:
            raise ConfigError(f"--shard {text}: need 0 <= I < N and N >= 1")
        return cls(index, count)

    @property
    def active(self) -> bool:
        return self.count > 1


@dataclass(frozen=True)
class Settings:
    """Everything one run needs, validated."""

    mode: Mode
    input: str
    report: Path
    input_format: str | None = None
    merchant: str | None = None
    concurrency: int = 8
    rate: float | None = 20.0
    max_attempts: int = 5
    timeout: float = 15.0
    comment: str | None = None
    give_up_after: float = 300.0
    grace_seconds: float = 20.0
    progress_seconds: float = 5.0
    dry_run: bool = False
    sandbox: bool = False
    shard: Shard = Shard()
    log_format: str | None = None
    log_level: str = "info"
    api_url: str = DEFAULT_API_URL
    auth_url: str = DEFAULT_AUTH_URL
    credentials: Credentials = field(default_factory=Credentials)
    pushgateway: str | None = None
    job_name: str = "cancel-worker"
    use_uvloop: bool = True
    allow_changed_input: bool = False
    echo_columns: str = "all"  # all | none | a,b,c
    yes: bool = False  # do not ask on a terminal
    max_references: int | None = None
    stop_on_rejections: int = 20
    retry_outcomes: frozenset[Outcome] = frozenset()
    delimiter: str | None = None  # CSV separator; None: detected from the header
    ca_bundle: str | None = None  # PEM file of the CAs to trust instead of the system's
    #: Bytes the exact key maps (standard input's duplicates, a resume by reference, the
    #: journal's intents) may hold in memory before they move to the on-disk index:
    #: with the ~60 MB a run needs besides, a 512 MiB pod keeps a wide margin.
    memory_budget: int = 16 * 1000 * 1000

    def __post_init__(self) -> None:
        # The API URL is a base that paths are appended to, so a trailing '/' would
        # double up; the auth URL is a whole endpoint and is used exactly as given.
        object.__setattr__(self, "api_url", self.api_url.rstrip("/"))


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Settings)}
#: `--timeout` with `--sandbox`: the sandbox's stalls resolve quickly.
SANDBOX_TIMEOUT = 2.0


def build_settings(mode: Mode, kw: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """The CLI's options and the environment -> Settings; raises ConfigError (exit 2).

    An option left out (None, or absent from `kw`) takes the `Settings` default.
    """
    shard = (
        Shard.parse(kw["shard_text"]) if kw.get("shard_text") else (shard_from_env(env) or Shard())
    )
    sandbox, dry_run = bool(kw.get("sandbox")), bool(kw.get("dry_run"))
    kind = run_kind(mode, dry_run)
    report = Path(kw["report"]) if kw.get("report") else default_report(kw["input"], shard, kind)
    comment = kw.get("comment")
    if comment is not None and len(comment) > MAX_COMMENT:
        raise ConfigError(f"--comment is {len(comment)} characters; at most {MAX_COMMENT}")
    timeout = kw.get("timeout") or (SANDBOX_TIMEOUT if sandbox else default("timeout"))
    api_url = check_url("BAMBORA_API_URL", env.get("BAMBORA_API_URL") or default("api_url"))
    auth_url = check_url("BAMBORA_AUTH_URL", env.get("BAMBORA_AUTH_URL") or default("auth_url"))
    credentials = Credentials() if (sandbox or dry_run) else credentials_from_env(env)
    if not sandbox:  # the embedded sandbox is reached directly, never through a proxy
        _check_proxies(api_url, auth_url)
    merchant = (kw.get("merchant") or "").strip() or None
    return Settings(
        mode=mode,
        input=kw["input"],
        report=report,
        input_format=kw.get("input_format"),
        merchant=merchant,
        concurrency=_given(kw, "concurrency"),
        rate=_given(kw, "rate") or None,
        max_attempts=_given(kw, "max_attempts"),
        timeout=timeout,
        comment=comment or None,
        give_up_after=_given(kw, "give_up_after"),
        grace_seconds=_given(kw, "grace_seconds"),
        progress_seconds=_given(kw, "progress_seconds"),
        dry_run=dry_run,
        sandbox=sandbox,
        shard=shard,
        log_format=kw.get("log_format"),
        log_level=_given(kw, "log_level"),
        api_url=api_url,
        auth_url=auth_url,
        credentials=credentials,
        use_uvloop=not kw.get("no_uvloop"),
        allow_changed_input=bool(kw.get("allow_changed_input")),
        echo_columns=_given(kw, "echo_columns"),
        yes=bool(kw.get("yes")),
        max_references=kw.get("max_references"),
        stop_on_rejections=_given(kw, "stop_on_rejections"),
        retry_outcomes=parse_retry_outcomes(kw.get("retry_outcomes") or ""),
        delimiter=kw.get("delimiter") or None,
        ca_bundle=_checked_bundle(kw.get("ca_bundle")),
        memory_budget=(
            parse_size(kw["memory_budget"]) if kw.get("memory_budget") else default("memory_budget")
        ),
        pushgateway=kw.get("pushgateway") or None,
        job_name=_given(kw, "job_name"),
    )


def _check_proxies(api_url: str, auth_url: str) -> None:
    """A proxy variable that cannot be used is a usage error, found before any file is
    opened (the run reads the same variables again when it connects)."""
    from worker.bambora.session import proxy_for  # session imports this module

    try:
        for url in (api_url, auth_url):
            proxy_for(url)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _checked_bundle(path: str | None) -> str | None:
    """A CA bundle that cannot be used is a usage error, found before any file is opened."""
    if not path:
        return None
    from worker.bambora.session import CaBundleError, tls_context  # session imports this

    try:
        tls_context(path)
    except CaBundleError as exc:
        raise ConfigError(str(exc)) from None
    return path


def default(name: str) -> Any:
    """A setting's default: the one place defaults live (the CLI shows these)."""
    return _DEFAULTS[name]


def _given(kw: Mapping[str, Any], name: str) -> Any:
    value = kw.get(name)
    return default(name) if value is None else value


#: Final outcomes a rerun may be told to send again (`--retry-outcomes`): those a fix
#: on our side (credentials, merchant) can change. Never `canceled`.
RETRYABLE = frozenset({"rejected", "not_found", "not_cancelable"})


def parse_retry_outcomes(text: str) -> frozenset[Outcome]:
    names = {n.strip() for n in text.split(",") if n.strip()}
    unknown = names - RETRYABLE
    if unknown:
        raise ConfigError(
            f"--retry-outcomes: {', '.join(sorted(unknown))} cannot be retried; "
            f"choose from {', '.join(sorted(RETRYABLE))}"
        )
    return frozenset(Outcome(n) for n in names)


def run_kind(mode: Mode, dry_run: bool) -> str:
    """What a run does to payments, which decides its report: run, check or dry-run."""
    return "dry-run" if dry_run and mode is Mode.RUN else mode.value


#: Each kind of run has its own default report, so that a `check` before the nightly
#: `run` (or a dry run) can never be resumed by it: their rows mean other things.
REPORT_NAMES = {"run": "report", "check": "check", "dry-run": "dry-run"}


def default_report(input_arg: str, shard: Shard, kind: str = "run") -> Path:
    """`<INPUT name without suffixes>.<report|check|dry-run>.csv` in the working directory.

    Standard input has no name: `report.csv` (`check.csv`, `dry-run.csv`).
    """
    suffix = REPORT_NAMES[kind]
    if input_arg == "-":
        name = suffix
    else:
        base = Path(input_arg).name
        stem = base.split(".", 1)[0] if not base.startswith(".") else base
        name = f"{stem or 'input'}.{suffix}"
    if shard.active:
        name = f"{name}.shard-{shard.index}-of-{shard.count}"
    return Path(f"{name}.csv")


def shard_from_env(env: Mapping[str, str]) -> Shard | None:
    """Kubernetes Indexed Jobs set JOB_COMPLETION_INDEX; SHARD_COUNT says how many."""
    index = env.get("JOB_COMPLETION_INDEX")
    count = env.get("SHARD_COUNT")
    if index is None and count is None:
        return None
    if index is None or count is None:
        raise ConfigError("JOB_COMPLETION_INDEX and SHARD_COUNT must be set together")
    return Shard.parse(f"{index.strip()}/{count.strip()}")


_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}


def parse_size(text: str) -> int:
    """`64MB`, `512MiB`, `1GB`, `1000000` (bytes) -> bytes; ConfigError otherwise."""
    raw = text.strip().lower().replace(" ", "")
    number = raw.rstrip("bikmg")
    unit = raw[len(number) :]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in _UNITS or value < 0:
        raise ConfigError(
            f"--memory-budget must be a size such as 64MB, 512MiB or 1GB, got {text!r}"
        )
    return int(value * _UNITS[unit])


def size_text(size: int) -> str:
    """Bytes as the option takes them (for --help): 32000000 -> 32MB."""
    for unit, factor in (("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
