"""Settings: the one immutable object built from options and the environment.

Nothing else in the worker reads `os.environ`; every stage gets what it needs from
`Settings`. Validation that must happen before any request (URLs, secrets, ranges)
lives here and raises `ConfigError` (`worker.errors`: exit 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

import yarl

from worker.access import DEFAULT_API_URL as DEFAULT_API_URL
from worker.access import DEFAULT_AUTH_URL as DEFAULT_AUTH_URL
from worker.access import SCOPE as SCOPE
from worker.access import Credentials as Credentials
from worker.access import check_url as check_url
from worker.access import credentials_from_env as credentials_from_env
from worker.access import is_loopback as is_loopback
from worker.errors import ConfigError
from worker.model import Mode, Outcome
from worker.names import default_report

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
    def parse(cls, text: str, what: str = "--shard") -> Shard:  # what: its errors' name
        try:
            i_text, n_text = text.split("/")
            index, count = int(i_text), int(n_text)
        except ValueError:
            raise ConfigError(f"{what} must look like I/N (e.g. 0/4), got {text!r}") from None
        if count < 1:
            raise ConfigError(f"{what} {text}: N must be 1 or more")
        if not 0 <= index < count:  # Indexed Jobs number from 0, so N/N is one too far
            raise ConfigError(
                f"{what} {text}: shards are numbered from 0: I must be 0..{count - 1}"
            )
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
    confirm: bool = False  # ask even on loopback and the sandbox (a rehearsal)
    max_references: int | None = None
    stop_on_rejections: int = 20
    retry_outcomes: frozenset[Outcome] = frozenset()
    delimiter: str | None = None  # CSV separator; None: detected from the header
    multiline_cells: bool = False  # a quoted CSV comment may span lines (else: one line, one row)
    ca_bundle: str | None = None  # PEM file of the CAs to trust instead of the system's
    strict: bool = False  # not_cancelable / not_found also exit 1
    card: bool = True  # write the report card page (<report>.html) at the end
    #: with --sandbox: the API settings found in the environment that it overrides
    sandbox_overrides: tuple[str, ...] = ()
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
#: What `--sandbox` replaces with its own; set in the environment, they are ignored.
SANDBOX_OVERRIDES = (
    "BAMBORA_API_URL",
    "BAMBORA_AUTH_URL",
    "BAMBORA_TOKEN",
    "BAMBORA_CLIENT_ID",
    "BAMBORA_CLIENT_SECRET",
    "BAMBORA_CLIENT_SECRET_FILE",
)


def build_settings(mode: Mode, kw: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """The CLI's options and the environment -> Settings; raises ConfigError (exit 2).

    An option left out (None, or absent from `kw`) takes the `Settings` default.
    """
    if kw.get("shard_text"):
        shard = Shard.parse(kw["shard_text"])
        # an Indexed Job pod's own, or all run one shard (SHARD_COUNT alone: no index)
        both = "JOB_COMPLETION_INDEX" in env and "SHARD_COUNT" in env
        indexed = shard_from_env(env) if both else None
    else:
        indexed = shard_from_env(env)
        shard = indexed or Shard()
    if indexed is not None and shard != indexed:
        raise ConfigError(
            f"--shard {shard.index}/{shard.count} (or CANCEL_WORKER_SHARD) and "
            f"JOB_COMPLETION_INDEX/SHARD_COUNT ({indexed.index}/{indexed.count}) disagree: "
            "set one of them"
        )
    sandbox, dry_run = bool(kw.get("sandbox")), bool(kw.get("dry_run"))
    kind = run_kind(mode, dry_run)
    report = Path(kw["report"]) if kw.get("report") else default_report(kw["input"], shard, kind)
    comment = kw.get("comment")
    if comment is not None and len(comment) > MAX_COMMENT:
        raise ConfigError(f"--comment is {len(comment)} characters; at most {MAX_COMMENT}")
    timeout = kw.get("timeout") or (SANDBOX_TIMEOUT if sandbox else default("timeout"))
    urls: Mapping[str, str] = {} if sandbox else env  # the sandbox's replace them: not read
    api_url = check_url("BAMBORA_API_URL", urls.get("BAMBORA_API_URL") or default("api_url"))
    auth_url = check_url("BAMBORA_AUTH_URL", urls.get("BAMBORA_AUTH_URL") or default("auth_url"))
    credentials = Credentials() if (sandbox or dry_run) else credentials_from_env(env)
    if not sandbox:  # the embedded sandbox is reached directly, never through a proxy
        _check_proxies(api_url, auth_url)
    merchant = (kw.get("merchant") or "").strip() or None
    if kw.get("confirm") and kw.get("yes"):
        raise ConfigError("--confirm asks before sending and --yes says not to: choose one")
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
        confirm=bool(kw.get("confirm")),
        max_references=kw.get("max_references"),
        stop_on_rejections=_given(kw, "stop_on_rejections"),
        retry_outcomes=parse_retry_outcomes(kw.get("retry_outcomes") or ""),
        delimiter=kw.get("delimiter"),  # "" is refused when the input is opened
        multiline_cells=bool(kw.get("multiline_cells")),
        ca_bundle=_checked_bundle(kw.get("ca_bundle")),
        card=not kw.get("no_card"),
        memory_budget=(
            parse_size(kw["memory_budget"]) if kw.get("memory_budget") else default("memory_budget")
        ),
        pushgateway=kw.get("pushgateway") or None,
        job_name=_given(kw, "job_name"),
        strict=bool(kw.get("strict")),
        sandbox_overrides=tuple(n for n in SANDBOX_OVERRIDES if env.get(n)) if sandbox else (),
    )


def _check_proxies(api_url: str, auth_url: str) -> None:
    """A proxy variable that cannot be used is a usage error (`ProxyError`), found
    before any file is opened (the run reads the same variables again when it connects)."""
    # Imported here: session loads aiohttp (a quarter of a second), which --help,
    # merge-reports and report-card never need. (session does not import settings.)
    from worker.bambora.session import proxy_for

    for url in (api_url, auth_url):
        proxy_for(url)


def _checked_bundle(path: str | None) -> str | None:
    """A CA bundle that cannot be used is a usage error (`CaBundleError`), found before
    any file is opened."""
    if not path:
        return None
    from worker.bambora.session import tls_context  # aiohttp: see above

    tls_context(path)
    return path


#: What the `start` event shows in place of a secret that is set.
HIDDEN = "***"


def in_effect(s: Settings) -> dict[str, Any]:
    """Every setting of the run, as plain values for the `start` event; no secret.

    Built from the fields themselves, so a setting added later is shown without being
    listed here. The credentials show the client id and whether a secret or a token is
    set; a URL loses any password it carries.
    """
    shown: dict[str, Any] = {}
    for f in fields(s):
        value = getattr(s, f.name)
        if isinstance(value, Credentials):
            shown["client_id"] = value.client_id
            shown["client_secret"] = HIDDEN if value.client_secret else None
            shown["token"] = HIDDEN if value.token else None
        elif isinstance(value, Shard):
            shown[f.name] = f"{value.index}/{value.count}"
        elif isinstance(value, Enum):
            shown[f.name] = value.value
        elif isinstance(value, frozenset):
            shown[f.name] = sorted(str(getattr(v, "value", v)) for v in value)
        elif isinstance(value, Path):
            shown[f.name] = str(value)
        elif isinstance(value, str) and f.name.endswith(("_url", "pushgateway")):
            shown[f.name] = _without_password(value)
        else:
            shown[f.name] = value
    return shown


def _without_password(url: str) -> str:
    try:
        parsed = yarl.URL(url)
    except (ValueError, TypeError):
        return url
    return str(parsed.with_password(HIDDEN)) if parsed.password else url


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


def shard_from_env(env: Mapping[str, str]) -> Shard | None:
    """Kubernetes Indexed Jobs set JOB_COMPLETION_INDEX; SHARD_COUNT says how many."""
    index = env.get("JOB_COMPLETION_INDEX")
    count = env.get("SHARD_COUNT")
    if index is None and count is None:
        return None
    if index is None or count is None:
        raise ConfigError("JOB_COMPLETION_INDEX and SHARD_COUNT must be set together")
    return Shard.parse(f"{index.strip()}/{count.strip()}", "JOB_COMPLETION_INDEX/SHARD_COUNT")


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


#: The largest `--memory-budget` taken (a terabyte): the index keeps sizes as integers.
MAX_BUDGET = 1000**4


def parse_size(text: str) -> int:
    """`64MB`, `512MiB`, `1GB`, `1000000` (bytes) -> bytes; ConfigError otherwise."""
    raw = text.strip().lower().replace(" ", "")
    number = raw.rstrip("bikmg")
    unit = raw[len(number) :]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    # nan and inf are floats too; past a terabyte is no budget but a typo
    if unit not in _UNITS or not 0 <= value * _UNITS.get(unit, 1) <= MAX_BUDGET:
        raise ConfigError(
            f"--memory-budget must be a size such as 64MB, 512MiB or 1GB (at most 1000GB), "
            f"got {text!r}"
        )
    return int(value * _UNITS[unit])


def size_text(size: int) -> str:
    """Bytes as the option takes them (for --help): 32000000 -> 32MB."""
    for unit, factor in (("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
