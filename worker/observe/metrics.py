"""Metrics: optional Prometheus push for batch jobs (`--pushgateway URL`).

Batch jobs do not live long enough to be scraped, so at the end of a run the worker
pushes its figures to a Pushgateway, grouped by job and shard, with no `instance`
label. The push replaces the whole group (PUT): a push-add (POST) replaced only the
series it held, so a night that canceled nothing, or released no JPY, left the night
before's counts and money standing. The success timestamp must outlive failed nights
(the alert on it fires when none comes), so it has a group of its own (`kind="success"`),
pushed only on success. A `check` or a dry run pushes to a group of its own (`mode`
added), and never a success timestamp: neither cancels anything, so neither may
overwrite the night's exit code or stand in for its success. A failed push
is logged and never changes the exit code: the report is the record, metrics are a view.

Credentials in the URL (`http://user:password@host:9091`) are sent as HTTP Basic auth
(prometheus-client's `basic_auth_handler`) and never printed: the URL is logged without
them, and the password is a registered secret, masked wherever it might appear.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from urllib.parse import unquote

import yarl
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway
from prometheus_client.exposition import basic_auth_handler, default_handler

from worker.exits import Exit
from worker.model import FOLLOW_UP_OUTCOMES
from worker.observe import logs

#: Only exit 0 is a success: every reference settled, follow-ups included. Exit 1 (rows
#: need a person) and 5 (failed rows, a rerun retries them) are not, so a night that
#: never reaches 0 leaves the last success behind, and the alert on it fires.
SUCCESS_CODES = (int(Exit.OK),)


def push(
    url: str,
    *,
    job: str,
    shard: str,
    mode: str = "run",
    outcomes: Mapping[str, int],
    duration: float,
    released_total: Mapping[str, int] | None = None,
    exit_code: int,
    retries: int,
    throttled: int,
    token_refreshes: int,
    requests: int,
    held_seconds: float = 0.0,
    guard_rail: bool = False,
) -> bool:
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, value: float) -> None:
        Gauge(name, doc, registry=registry).set(value)

    gauge("cancel_worker_duration_seconds", "Wall time of the last run.", duration)
    gauge("cancel_worker_last_exit_code", "Exit code of the last run.", exit_code)
    gauge("cancel_worker_requests", "API requests of the last run.", requests)
    gauge("cancel_worker_retries", "Retries of the last run.", retries)
    gauge("cancel_worker_throttled", "429 answers in the last run.", throttled)
    gauge("cancel_worker_token_refreshes", "Tokens fetched in the last run.", token_refreshes)
    gauge(
        "cancel_worker_held_seconds",
        "Seconds the last run held references while the API failed for everyone.",
        held_seconds,
    )
    gauge(
        "cancel_worker_guard_rail_stops",
        "1 if a guard rail stopped the last run (exit 4), else 0.",
        1 if guard_rail else 0,
    )
    per_outcome = Gauge(
        "cancel_worker_references",
        "References per outcome in the last run.",
        ["outcome"],
        registry=registry,
    )
    for outcome, count in outcomes.items():
        per_outcome.labels(outcome=outcome).set(count)
    gauge(
        "cancel_worker_follow_ups",
        "References of the last run that ended not_cancelable or not_found (a look, not a page).",
        sum(outcomes.get(o.value, 0) for o in FOLLOW_UP_OUTCOMES),
    )
    released = Gauge(
        "cancel_worker_released_minor_units",
        "Amount released by the report's latest canceled rows, all runs of the report "
        "included, per currency, in minor units.",
        ["currency"],
        registry=registry,
    )
    for currency, minor in (released_total or {}).items():
        released.labels(currency=currency).set(minor)
    group = {"shard": shard} | ({} if mode == "run" else {"mode": mode})
    pushes = [(group, registry)]
    if exit_code in SUCCESS_CODES and mode == "run":
        success = CollectorRegistry()
        Gauge(
            "cancel_worker_last_success_timestamp_seconds",
            "When a run last ended with exit 0.",
            registry=success,
        ).set(time.time())
        pushes.append(({**group, "kind": "success"}, success))
    gateway, handler = with_credentials(url)
    for grouping_key, figures in pushes:
        try:
            push_to_gateway(
                gateway,
                job=job,
                registry=figures,
                grouping_key=grouping_key,
                timeout=10,
                handler=handler,
            )
        except Exception as exc:
            logs.log.warning(
                "metrics_push_failed", pushgateway=gateway, error=f"{type(exc).__name__}: {exc}"
            )
            return False
    return True


def with_credentials(url: str) -> tuple[str, Callable[..., Callable[[], None]]]:
    """The URL without its userinfo, and a handler that sends that userinfo as Basic auth."""
    parsed = yarl.URL(url, encoded=True)
    if parsed.raw_user is None and parsed.raw_password is None:
        return url, default_handler
    user, password = unquote(parsed.raw_user or ""), unquote(parsed.raw_password or "")
    logs.REDACTOR.add(password, parsed.raw_password)

    def handler(
        url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes
    ) -> Callable[[], None]:
        return basic_auth_handler(url, method, timeout, headers, data, user, password)

    return str(parsed.with_user(None)), handler
