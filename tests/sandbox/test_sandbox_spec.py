"""The sandbox answers the way Bambora's swagger says: every status it gives for cancel
and query is declared for that operation (or falls under `default`), every body
validates against the declared schema, and the Content-Type is right."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from jsonschema import Draft4Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4

from worker.sandbox import SandboxServer

from .conftest import MakeServer
from .support import Answer, Client

SPEC_PATH = Path(__file__).parent / "spec" / "payments-api.swagger.json"
SHARED_SPEC = Path(__file__).resolve().parents[3] / "shared" / "bambora" / SPEC_PATH.name
SPEC: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
SPEC_URI = "urn:bambora:payments-api"
REGISTRY: Registry[Any] = Registry().with_resource(SPEC_URI, DRAFT4.create_resource(SPEC))

OPERATIONS = {
    "get": SPEC["paths"]["/merchants/{merchant}/payments/{payment}/"]["get"],
    "cancel": SPEC["paths"]["/merchants/{merchant}/payments/{payment}/cancel/"]["post"],
}
# PaymentResponse declares no `required`; an answer without these would be useless.
PAYMENT_REQUIRED = ["region", "merchant", "payment", "state", "currency", "amount"]
BAMBORA_TYPES = {
    402: "https://api.bambora.com/definitions/payments/cannot_cancel",
    409: "https://api.bambora.com/definitions/payments/payment_operation_blocked",
    422: "https://api.bambora.com/definitions/payments/invalid_payment_state_transition",
}


def validator(schema_ref: str) -> Draft4Validator:
    """A draft-4 validator for a `#/definitions/...` ref, resolved over the whole spec."""
    schema: dict[str, Any] = {"$ref": SPEC_URI + schema_ref}
    if schema_ref == "#/definitions/PaymentResponse":
        schema = {"allOf": [schema, {"required": PAYMENT_REQUIRED}]}
    return Draft4Validator(schema, registry=REGISTRY)


def declared(operation: str, status: int) -> dict[str, Any]:
    """The swagger response object for this status, falling back to `default`."""
    responses = OPERATIONS[operation]["responses"]
    found = responses.get(str(status)) or responses.get("default")
    assert found is not None, f"{status} is not declared for {operation}"
    return dict(found)


def assert_conforms(operation: str, answer: Answer, status: int) -> None:
    assert answer.status == status, answer.text
    schema_ref = declared(operation, status)["schema"]["$ref"]
    validator(schema_ref).validate(answer.body)
    if status < 300:
        assert schema_ref == "#/definitions/PaymentResponse"
        assert answer.content_type == "application/json"
        assert set(answer.body) <= set(SPEC["definitions"]["PaymentResponse"]["properties"])
    else:
        assert schema_ref == "#/definitions/Error"
        assert answer.content_type == "application/problem+json"
        assert set(answer.body) == {"type", "title", "detail", "status"}
        assert answer.body["status"] == status
        assert answer.body["type"] == BAMBORA_TYPES.get(status, answer.body["type"])
        if status in (400, 401, 403, 429, 500, 503):
            assert answer.body["type"] == "about:blank"
        if status == 404:
            assert answer.body["type"].endswith("/payment_not_found")


#: sha256 of shared/bambora/payments-api.swagger.json when it was copied here.
SPEC_SHA256 = "4b9be9dba3711fd66a0df5ea74f871c37b46520edeb91adf7c2bcf92d3b9443c"


def test_the_copied_spec_is_the_shared_one() -> None:
    assert hashlib.sha256(SPEC_PATH.read_bytes()).hexdigest() == SPEC_SHA256
    # Where shared/ is checked out beside the repo (CI), it must not have moved on.
    if SHARED_SPEC.exists():
        assert json.loads(SHARED_SPEC.read_text(encoding="utf-8")) == SPEC


@pytest.mark.parametrize(
    ("schema_ref", "body"),
    [
        ("#/definitions/Error", {"type": "about:blank", "detail": "", "status": 400}),
        (
            "#/definitions/Error",
            {"type": "about:blank", "title": "x", "detail": "", "status": "400"},
        ),
        ("#/definitions/Error", {"type": "about:blank", "title": "x", "status": 400}),
        ("#/definitions/PaymentResponse", {"merchant": "T1", "payment": "p", "state": "Cancelled"}),
        ("#/definitions/PaymentResponse", {"merchant": "T1", "payment": "p", "amount": 1}),
        (
            "#/definitions/PaymentResponse",
            {
                "region": "emea_0",
                "merchant": "T1",
                "payment": "p",
                "state": "Canceled",
                "currency": "eur",
                "amount": 1,
            },
        ),
        (
            "#/definitions/PaymentResponse",
            {
                "region": "emea_0",
                "merchant": "T1",
                "payment": "p",
                "state": "Canceled",
                "currency": "EUR",
                "amount": -1,
            },
        ),
    ],
)
def test_the_validator_is_live(schema_ref: str, body: dict[str, Any]) -> None:
    # A validator that accepts anything would make every other test here pass.
    with pytest.raises(jsonschema.ValidationError):
        validator(schema_ref).validate(body)


def test_the_validator_accepts_the_swagger_examples() -> None:
    for operation in OPERATIONS.values():
        for response in operation["responses"].values():
            for example in response.get("examples", {}).values():
                validator(response["schema"]["$ref"]).validate(example)


Call = Callable[[Client, SandboxServer], Awaitable[Answer]]


async def _expired(c: Client, s: SandboxServer) -> Answer:
    headers = await c.headers()
    s.expire_tokens()
    return await c.cancel("order-expired", headers=headers)


async def _no_version(c: Client, s: SandboxServer) -> Answer:
    bearer = (await c.headers())["Authorization"]
    return await c.cancel("order-nv", headers={"Authorization": bearer})


async def _no_version_get(c: Client, s: SandboxServer) -> Answer:
    bearer = (await c.headers())["Authorization"]
    return await c.get("order-nv", headers={"Authorization": bearer, "API-Version": "2"})


async def _garbage_token(c: Client, s: SandboxServer) -> Answer:
    # Auth is checked before the version: a bad token and no version is a 401.
    return await c.get("order-g", headers={"Authorization": "Bearer not.a.token"})


async def _read_only(c: Client, s: SandboxServer) -> Answer:
    token = await c.token(scope="read_payment")
    return await c.cancel("order-ro", headers=await c.headers(token))


async def _cancel_only_get(c: Client, s: SandboxServer) -> Answer:
    token = await c.token(scope="cancel_payment")
    return await c.get("order-co", headers=await c.headers(token))


CANCEL_CASES: list[tuple[str, int, Call]] = [
    ("authorized", 201, lambda c, s: c.cancel("order-1")),
    ("with comment", 201, lambda c, s: c.cancel("order-2", {"comment": "end of day"})),
    ("no API-Version", 400, _no_version),
    ("reference too long", 400, lambda c, s: c.cancel("x" * 2001)),
    ("comment too long", 400, lambda c, s: c.cancel("order-3", {"comment": "c" * 257})),
    ("no token", 401, lambda c, s: c.cancel("order-4", headers={"API-Version": "1"})),
    ("expired token", 401, _expired),
    ("cannot cancel", 402, lambda c, s: c.cancel("nocancel-1")),
    ("forbidden", 403, lambda c, s: c.cancel("forbidden-1")),
    ("scope lacks cancel_payment", 403, _read_only),
    ("not found", 404, lambda c, s: c.cancel("unknown-1")),
    ("blocked", 409, lambda c, s: c.cancel("blocked-1")),
    ("captured", 422, lambda c, s: c.cancel("captured-1")),
    ("already canceled", 422, lambda c, s: c.cancel("canceled-1")),
    ("throttled", 429, lambda c, s: c.cancel("throttled-1")),
    ("broken", 503, lambda c, s: c.cancel("broken-1")),
    ("flaky", 503, lambda c, s: c.cancel("flaky-1")),
]

GET_CASES: list[tuple[str, int, Call]] = [
    ("authorized", 200, lambda c, s: c.get("order-1")),
    ("canceled", 200, lambda c, s: c.get("canceled-1")),
    ("API-Version 2", 400, _no_version_get),
    ("garbage token, no version", 401, _garbage_token),
    ("reference too long", 400, lambda c, s: c.get("x" * 2001)),
    ("no token", 401, lambda c, s: c.get("order-4", headers={"API-Version": "1"})),
    ("forbidden", 403, lambda c, s: c.get("forbidden-1")),
    ("scope lacks read_payment", 403, _cancel_only_get),
    ("not found", 404, lambda c, s: c.get("unknown-1")),
    ("throttled", 429, lambda c, s: c.get("throttled-1")),
    ("broken", 503, lambda c, s: c.get("broken-1")),
]


@pytest.mark.parametrize(
    ("operation", "name", "status", "call"),
    [("cancel", *case) for case in CANCEL_CASES] + [("get", *case) for case in GET_CASES],
    ids=[f"cancel-{c[1]}-{c[0]}" for c in CANCEL_CASES] + [f"get-{c[1]}-{c[0]}" for c in GET_CASES],
)
async def test_answers_conform_to_the_swagger(
    operation: str, name: str, status: int, call: Call, client: Client, server: SandboxServer
) -> None:
    answer = await call(client, server)
    assert_conforms(operation, answer, status)
    if status == 429:
        assert answer.headers["Retry-After"] == server.config.retry_after


async def test_cancel_401_is_the_swagger_example(client: Client) -> None:
    answer = await client.cancel("order-1", headers={"API-Version": "1"})
    example = OPERATIONS["cancel"]["responses"]["401"]["examples"]["application/json"]
    assert answer.body == example


async def test_injected_500_conforms(make_server: MakeServer, tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(
        json.dumps([{"merchant": "T1", "payment": "p1", "faults": ["500_after_apply"]}])
    )
    server = await make_server(seed_file=str(seed))
    async with aiohttp.ClientSession() as session:
        answer = await Client(session, server).cancel("p1", merchant="T1")
    assert_conforms("cancel", answer, 500)


@pytest.mark.parametrize("status", [200, 201, 400, 401, 402, 403, 404, 409, 422])
def test_explicit_statuses_are_declared(status: int) -> None:
    # The statuses the sandbox gives on purpose are the spec's own, not `default`.
    ops = [op for op, o in OPERATIONS.items() if str(status) in o["responses"]]
    expected = {
        200: ["get"],
        201: ["cancel"],
        400: ["get", "cancel"],
        401: ["get", "cancel"],
        402: ["cancel"],
        403: ["get", "cancel"],
        404: ["get"],  # cancel's 404 falls under `default`
        409: ["cancel"],
        422: ["cancel"],
    }[status]
    assert ops == expected
