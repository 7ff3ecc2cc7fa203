"""World: the fake Bambora API and token endpoint, and the one place a run is built.

`World` holds every payment's state (its amount, whether a cancel of ours applied)
and answers each call as the real API can: 201, 402, 403, 404, 409, 422, 429 with
Retry-After, 5xx, a reset before or after the cancel is applied, a stall until the
deadline, a 401 for an expired or revoked token. The token endpoint issues JWT-shaped
tokens that expire, and can refuse the client, fail, or stall. Faults are drawn from
the history's seeded generator, in the order the run makes its calls, which the fake
clock makes the same on every replay.

Two invariants are checked as calls arrive (the world sees every request): no cancel
reaches a payment that a cancel of ours already canceled unless a query came first,
and no request is made for a reference the report held as final when the run began.

`start_run` is the only function that knows how a run is put together: `run/main.py`'s
edges, then the real `run/stages.py` pipeline with the fakes in place of the network;
the rest of the simulator talks to `prepare()`'s result, to the `RunResult` and to
the files.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from tests.sim.disk import Disk, SimJournal, SimReportWriter
from tests.sim.steps import Timeline, hang
from worker.bambora.auth import basic_authorization
from worker.control.stop import StopGate
from worker.model import Op, Reply
from worker.observe.progress import Snapshot
from worker.report.journal import journal_path
from worker.report.resume import repair_torn_tail
from worker.report.writer import Echo, utc_now
from worker.run import main
from worker.run.canceller import Journal
from worker.run.job import Job
from worker.run.prepare import Prepared
from worker.run.stages import run_stages
from worker.run.summary import Calls
from worker.run.wiring import Sender, assemble_sender

CLIENT_ID = "sim-client"
#: Never written anywhere: the secrets invariant looks for it in every file.
CLIENT_SECRET = "sim-Secret-7f3a9c1e"
AUTH_URL = "https://auth.sim.invalid/oauth2/token"
API_URL = "https://api.sim.invalid"

#: API faults a seed draws from, each with its weight.
API_FAULTS: dict[str, int] = {
    "429": 5,
    "503 before": 3,
    "502 after": 3,
    "reset before": 3,
    "reset after": 3,
    "refused": 2,
    "stall": 2,
    "stall applied": 2,
    "409": 2,
    "409 echo": 1,  # a problem detail that quotes our Authorization header
    "422 race": 1,
    "200 to a cancel": 1,  # not the documented 201: the state is asked
    "402": 1,
    "401": 2,
}
TOKEN_FAULTS: dict[str, int] = {"503": 3, "429": 2, "stall": 1}


@dataclass
class Payment:
    merchant: str
    reference: str
    state: str  # Authorized, Canceled, Captured, Declined; None: not found
    amount: int
    currency: str
    ours: bool = False  # a cancel of ours applied
    queried_after: bool = False  # a query of ours came after that cancel


@dataclass
class Faults:
    """This run's fault schedule: how often, and whether the client is refused."""

    api_rate: float = 0.0
    token_rate: float = 0.0
    refuse_from: int | None = None  # the token request (1-based) from which it is refused
    latency: float = 0.05


@dataclass
class World:
    """Every payment the input names, and what happened to them over the night."""

    rng: random.Random
    payments: dict[tuple[str, str], Payment]
    timeline: Timeline
    faults: Faults = field(default_factory=Faults)
    final: set[tuple[str, str]] = field(default_factory=set)  # final in the report at start
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (loop time)
    issued: list[str] = field(default_factory=list)  # every token ever issued
    token_requests: int = 0
    token_life: float = 120.0
    refused_step: int | None = None  # the step at which the client was first refused
    violations: list[str] = field(default_factory=list)
    requests: int = 0
    last_fault: dict[tuple[str, str], str] = field(default_factory=dict)
    forbidden: frozenset[str] = frozenset()  # merchants our client may not touch: 403

    def new_run(self, timeline: Timeline, faults: Faults, final: set[tuple[str, str]]) -> None:
        self.timeline, self.faults, self.final = timeline, faults, final
        self.tokens = {}  # a new process fetches new tokens
        self.token_requests = 0
        self.refused_step = None

    def note(self, text: str) -> None:
        self.timeline.note(text)

    def _draw(self, weights: dict[str, int]) -> str:
        return self.rng.choices(list(weights), list(weights.values()))[0]

    # -- the API ----------------------------------------------------------------------

    def received(self, op: Op, key: tuple[str, str], payment: Payment | None) -> None:
        run = self.timeline.run
        if key in self.final:
            self.violations.append(
                f"final-resent: run {run} sent a {op.value} for {key[1]}, final in the report"
            )
        if payment is None:
            return
        if op is Op.CANCEL and payment.ours and not payment.queried_after:
            self.violations.append(
                f"double-cancel: run {run} sent a cancel for {key[1]}, which a cancel of ours "
                "already canceled, without a query first"
            )
        if op is Op.QUERY and payment.ours:
            payment.queried_after = True

    def apply_cancel(self, payment: Payment | None) -> Reply:
        """The normal answer to a cancel; a good one changes the state."""
        if payment is None:
            return Reply(404, error_type="not_found", title="Payment not found")
        if payment.state == "Authorized":
            payment.state, payment.ours = "Canceled", True
            return Reply(
                201, payment_state="Canceled", amount=payment.amount, currency=payment.currency
            )
        return Reply(
            422, error_type="not_cancelable", detail=f"payment is {payment.state}", title="No"
        )

    def query(self, payment: Payment | None) -> Reply:
        if payment is None:
            return Reply(404, error_type="not_found", title="Payment not found")
        return Reply(
            200, payment_state=payment.state, amount=payment.amount, currency=payment.currency
        )

    def api_fault(self, key: tuple[str, str]) -> str | None:
        if not self.faults.api_rate or self.rng.random() >= self.faults.api_rate:
            self.last_fault.pop(key, None)
            return None
        fault = self._draw(API_FAULTS)
        if fault == "401" and self.last_fault.get(key) == "401":
            # 401s in a row mean refused credentials (exit 3): a spurious one stays alone
            fault = "429"
        self.last_fault[key] = fault
        return fault


class FakeApi:
    """Stands in for `ApiClient`: one call in, one `Reply` out, over the fake clock."""

    def __init__(self, world: World, timeout: float) -> None:
        self._world = world
        self._timeout = timeout

    async def call(
        self, op: Op, merchant: str, reference: str, token: str, comment: str | None = None
    ) -> Reply:
        w = self._world
        tl, rng = w.timeline, w.rng
        key = (merchant, reference)
        if tl.frozen:
            await hang()
        await asyncio.sleep(rng.uniform(0, w.faults.latency))
        if tl.event(f"send {op.value} {reference}") and not tl.lands():
            await hang()
        payment = w.payments.get(key)
        w.requests += 1
        w.received(op, key, payment)
        now = asyncio.get_running_loop().time()
        if (expiry := w.tokens.get(token, -1.0)) <= now:
            reply = Reply(401, error_type="unauthorized", title="token expired")
            fault: str | None = f"token expired {now - expiry:.1f} s ago"
            w.last_fault[key] = "401"
        elif merchant in w.forbidden:
            # the problem quotes our token: the report must not
            detail = f"Bearer {token} may not act for merchant {merchant}"
            reply, fault = Reply(403, error_type="forbidden", detail=detail), None
        else:
            fault = w.api_fault(key)
            reply = self._answer(op, payment, token, fault)
        if fault is not None:
            w.note(f"{fault} -> {op.value} {reference}")
        if tl.frozen:
            await hang()  # the crash came after the request landed: no answer
        wait = self._timeout if fault in ("stall", "stall applied") else rng.uniform(0, 0.05)
        await asyncio.sleep(wait)
        if tl.event(f"answer {op.value} {reference}"):
            await hang()
        return reply

    def _answer(self, op: Op, payment: Payment | None, token: str, fault: str | None) -> Reply:
        w = self._world
        cancel = op is Op.CANCEL
        match fault:
            case None:
                return w.apply_cancel(payment) if cancel else w.query(payment)
            case "429":
                after = w.rng.choice([None, 0.5, 2.0, 10.0])
                return Reply(429, error_type="too_many_requests", retry_after=after)
            case "503 before":
                return Reply(503, error_type="unavailable", title="Service Unavailable")
            case "502 after":
                if cancel:
                    w.apply_cancel(payment)
                return Reply(502, title="Bad Gateway")
            case "reset before" | "reset after":
                if cancel and fault == "reset after":
                    w.apply_cancel(payment)
                return Reply(None, "disconnected", detail="ServerDisconnectedError")
            case "refused":
                return Reply(None, "connection_error", detail="refused", maybe_sent=False)
            case "stall" | "stall applied":
                if cancel and fault == "stall applied":
                    w.apply_cancel(payment)
                return Reply(None, "timeout", detail="no answer within the timeout")
            case "409":
                return Reply(409, error_type="conflict", detail="a change is in progress")
            case "409 echo":
                return Reply(
                    409, error_type="conflict", detail=f"request had Authorization: Bearer {token}"
                )
            case "422 race" if cancel:
                return Reply(422, error_type="not_cancelable", detail="state changing")
            case "200 to a cancel" if cancel:
                done = w.apply_cancel(payment)
                return Reply(200, payment_state=done.payment_state) if done.status == 201 else done
            case "402" if cancel:
                return Reply(402, error_type="cannot_cancel", detail="held by the acquirer")
            case "401":  # one spurious 401 (a gateway's clock, say): the token stays good
                return Reply(401, error_type="unauthorized")
        return w.apply_cancel(payment) if cancel else w.query(payment)


class _TokenResponse:
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        self.status, self._body, self.headers = status, orjson.dumps(body), headers

    async def read(self) -> bytes:
        return self._body


class _TokenCall:
    def __init__(self, world: World, headers: dict[str, str], seconds: float) -> None:
        self._world, self._headers, self._seconds = world, headers, seconds

    async def __aenter__(self) -> _TokenResponse:
        w = self._world
        tl = w.timeline
        if tl.frozen:
            await hang()
        await asyncio.sleep(w.rng.uniform(0, w.faults.latency))
        if tl.event("token request"):
            await hang()
        w.token_requests += 1
        if self._headers.get("Authorization") != basic_authorization(CLIENT_ID, CLIENT_SECRET):
            return _TokenResponse(401, {"error": "invalid_client"}, {})
        if w.faults.refuse_from is not None and w.token_requests >= w.faults.refuse_from:
            if w.refused_step is None:
                w.refused_step = tl.step
            w.note(f"token request {w.token_requests}: client refused (401)")
            return _TokenResponse(401, {"error": "invalid_client"}, {})
        fault = None
        if w.faults.token_rate and w.rng.random() < w.faults.token_rate:
            fault = w._draw(TOKEN_FAULTS)
            w.note(f"token request {w.token_requests}: {fault}")
        if fault == "stall":
            await asyncio.sleep(self._seconds)
            raise TimeoutError
        if fault == "503":
            return _TokenResponse(503, {}, {})
        if fault == "429":
            return _TokenResponse(429, {}, {"Retry-After": "1"})
        token = _jwt(w.rng)
        w.tokens[token] = asyncio.get_running_loop().time() + w.token_life
        w.issued.append(token)
        return _TokenResponse(
            200, {"access_token": token, "token_type": "Bearer", "expires_in": w.token_life}, {}
        )

    async def __aexit__(self, *exc: object) -> None:
        return None


class FakeAuthSession:
    """What `ClientCredentials` posts to: the world's token endpoint."""

    def __init__(self, world: World) -> None:
        self._world = world

    def post(
        self, url: str, *, data: Any, headers: dict[str, str], timeout: aiohttp.ClientTimeout
    ) -> _TokenCall:
        return _TokenCall(self._world, headers, timeout.total or 15.0)


def _jwt(rng: random.Random) -> str:
    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(doc)).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'n': rng.getrandbits(64)})}.{rng.getrandbits(96):x}"


class Quiet:
    def update(self, snap: Snapshot) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class RunResult:
    """What a finished run says of itself."""

    exit_code: int
    released_total: dict[str, int]
    complete: bool
    abort_reason: str | None


async def start_run(prepared: Prepared, world: World, disk: Disk, run_id: str) -> RunResult:
    """One run over prepared input: `run/main.py`'s edges (report, journal, run records)
    with the sim's disk wrappers, then the very `stages.run_stages` a real run uses, its
    sending side built over the fake API and token endpoint on the sim's clock."""
    s = prepared.settings
    loop = asyncio.get_running_loop()
    clock = getattr(loop, "clock", loop.time)  # the sim's loop: a clock that moves when read
    if prepared.prior.torn_bytes:
        repair_torn_tail(s.report, prepared.prior.torn_bytes)
    columns = prepared.source.columns
    writer = SimReportWriter(
        disk,
        s.report,
        run_id=run_id,
        echo=Echo(s.echo_columns),
        input_columns=[columns.names[i] for i in columns.others] if columns else None,
        clock=clock,
    )
    writer.open()
    prepared.lock.cover()
    started_at = utc_now()
    main._record_start(prepared, s, run_id, started_at)
    journal = SimJournal(disk, journal_path(prepared.lock.real))

    @contextlib.asynccontextmanager
    async def open_sender(
        calls: Calls, journaled: Journal | None, gate: StopGate
    ) -> AsyncIterator[Sender]:
        yield assemble_sender(
            s,
            calls,
            journaled,
            gate,
            FakeApi(world, s.timeout),  # type: ignore[arg-type]
            FakeAuthSession(world),  # type: ignore[arg-type]
            clock=clock,
        )

    admission = prepared.admission()
    admit = admission.chunk

    def chunk(batch: list[Any]) -> list[Any]:
        disk.tl.event(f"admit {len(batch)} rows")  # a crash here: read, nothing sent yet
        return admit(batch)

    admission.chunk = chunk  # type: ignore[method-assign]

    def on_job(job: Job) -> None:
        disk.tl.on_signal = lambda: job.interrupt(signal.SIGTERM)

    try:
        run = await run_stages(
            prepared,
            writer,
            journal,
            open_sender,
            view=Quiet(),
            every=s.progress_seconds,
            admission=admission,
            clock=clock,
            hard_exit=lambda code: None,
            on_job=on_job,
        )
        if disk.tl.frozen:  # crashed while closing: nothing after this happens
            raise asyncio.CancelledError
        main._record_run(prepared, s, run_id, started_at, run)
    finally:
        if disk.tl.frozen:  # the process died: its descriptors close, nothing more is written
            writer.close()
            journal.close()
    return RunResult(run.exit_code, dict(run.released_total), run.complete, run.abort_reason)
