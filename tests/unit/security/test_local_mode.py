"""Local mode end to end through a Litestar app: identities in SQLite, no other service."""

from __future__ import annotations

import base64
import dataclasses
import json
import time

import anyio
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine

from api.security import build_security, ensure_admin
from models.identities import create_identity, set_disabled
from qerberos.settings import load_settings
from tests.unit.security.helpers import BASE64_ALPHABET, TEST_SEED, call, make_app, respellings, sign

PUBLIC_KEY = base64.b64encode(
    Ed25519PrivateKey.from_private_bytes(TEST_SEED).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
).decode()


@pytest.fixture
def tokens(engine: Engine) -> dict[str, str]:
    return {
        "writer": create_identity(
            engine, "writer", ["qerberos:audit:write", "audit:read"], squid_id="alice", public_key=PUBLIC_KEY
        )[1],
        "reader": create_identity(engine, "reader", ["audit:read"])[1],
        "root": create_identity(engine, "root", ["admin"])[1],
    }


def client_for(engine: Engine, per_minute: int = 1000, failures_per_minute: int = 60) -> TestClient:  # type: ignore[type-arg]
    return TestClient(app_for(engine, per_minute, failures_per_minute))


def app_for(engine: Engine, per_minute: int = 1000, failures_per_minute: int = 60) -> Litestar:
    settings = dataclasses.replace(
        load_settings(),
        auth_mode="local",
        redis_url=None,
        rate_limit_per_minute=per_minute,
        auth_failures_per_minute=failures_per_minute,
    )
    return make_app(build_security(settings, engine=engine))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_health_is_public_and_everything_else_needs_a_caller(engine: Engine) -> None:
    with client_for(engine) as client:
        assert 200 == client.get("/health").status_code
        response = client.get("/audit")
    assert (401, "SQUID_IDENTITY_MISSING") == (response.status_code, response.json()["code"])


def test_a_local_token_authenticates_as_its_identity(engine: Engine, tokens: dict[str, str]) -> None:
    with client_for(engine) as client:
        response = client.get("/audit", headers=bearer(tokens["reader"]))
    assert 200 == response.status_code
    assert {"source": "local:reader", "subId": None, "scheme": "bearer"} == response.json()


def test_unknown_malformed_and_disabled_tokens_are_refused(engine: Engine, tokens: dict[str, str]) -> None:
    set_disabled(engine, "reader")
    with client_for(engine) as client:
        unknown = client.get("/audit", headers=bearer("qrb_nope"))
        basic = client.get("/audit", headers={"Authorization": "Basic abc"})
        disabled = client.get("/audit", headers=bearer(tokens["reader"]))
    assert ["SQUID_IDENTITY_INVALID"] * 3 == [r.json()["code"] for r in (unknown, basic, disabled)]


def test_a_missing_permission_is_refused_and_admin_implies_all(engine: Engine, tokens: dict[str, str]) -> None:
    with client_for(engine) as client:
        denied = client.post("/audit", headers=bearer(tokens["reader"]), json={})
        admitted = client.post("/audit", headers=bearer(tokens["root"]), json={"a": 1})
    assert (403, "QONSENT_DENIED") == (denied.status_code, denied.json()["code"])
    assert 201 == admitted.status_code


def test_signed_request_with_local_key_reaches_handler_with_its_body(engine: Engine, tokens: dict[str, str]) -> None:
    body = json.dumps({"type": "access"}).encode()
    headers = sign("POST", "/audit", body, sub_id="s1") | {"content-type": "application/json"}
    with client_for(engine) as client:
        first = client.post("/audit", content=body, headers=headers)
        replay = client.post("/audit", content=body, headers=headers)
    assert 201 == first.status_code
    assert {"source": "local:writer", "length": len(body), "json": {"type": "access"}} == first.json()
    assert (401, "SIGNATURE_INVALID") == (replay.status_code, replay.json()["code"])


def test_no_respelling_of_a_used_signature_passes(engine: Engine, tokens: dict[str, str]) -> None:
    body = b'{"type":"access"}'
    headers = sign("POST", "/audit", body) | {"content-type": "application/json"}
    with client_for(engine, failures_per_minute=0) as client:  # 95 failures from one address
        first = client.post("/audit", content=body, headers=headers)
        again = [
            client.post("/audit", content=body, headers=headers | {"x-sig": text})
            for text in respellings(headers["x-sig"])
        ]
    assert 201 == first.status_code
    assert [(401, "SIGNATURE_INVALID")] * len(again) == [(r.status_code, r.json()["code"]) for r in again]


def test_a_signature_spelled_otherwise_than_canonically_is_refused_on_first_use(
    engine: Engine, tokens: dict[str, str]
) -> None:
    headers = sign("GET", "/audit")
    signature = headers["x-sig"]  # 64 bytes: 86 characters, "==", the last character's low 4 bits unused
    stray_bit = signature[:85] + BASE64_ALPHABET[BASE64_ALPHABET.index(signature[85]) ^ 1] + "=="
    with client_for(engine) as client:
        refused = [client.get("/audit", headers=headers | {"x-sig": text}) for text in (signature[:-1], stray_bit)]
        canonical = client.get("/audit", headers=headers)
    assert [(401, "SIGNATURE_INVALID")] * 2 == [(r.status_code, r.json()["code"]) for r in refused]
    assert 200 == canonical.status_code


def test_a_signed_request_of_an_unknown_identity_is_refused_before_its_body_is_read(engine: Engine) -> None:
    app = app_for(engine)
    headers = sign("POST", "/audit", squid_id="nobody") | {"content-type": "application/json"}

    answer = anyio.run(lambda: call(app, "POST", "/audit", headers, body_chunks=128, chunk=bytes(64 * 1024)))

    assert (401, "SQUID_IDENTITY_INVALID", 0) == (answer.status, answer.body["code"], answer.receives)


def test_failed_authentication_from_one_address_is_refused_after_the_limit(
    engine: Engine, tokens: dict[str, str]
) -> None:
    with client_for(engine, failures_per_minute=60) as client:
        wrong = [client.get("/audit", headers=bearer(f"qrb_wrong-{n}")) for n in range(300)]
        valid_from_there = client.get("/audit", headers=bearer(tokens["reader"]))
    assert [401] * 60 + [429] * 240 == [response.status_code for response in wrong]
    assert "RATE_LIMIT_EXCEEDED" == wrong[-1].json()["code"]
    assert 1 <= int(wrong[-1].headers["retry-after"]) <= 60
    assert 429 == valid_from_there.status_code  # the address waits out its minute, whoever asks


def test_failed_signatures_for_one_identity_are_refused_after_the_limit_from_any_address(
    engine: Engine, tokens: dict[str, str]
) -> None:
    app = app_for(engine, failures_per_minute=5)

    async def run() -> list[tuple[int, str]]:
        forged = sign("GET", "/audit") | {"x-sig": sign("GET", "/other")["x-sig"]}
        answers = [await call(app, "GET", "/audit", forged, client=f"192.0.2.{n}") for n in range(6)]
        answers.append(await call(app, "GET", "/audit", sign("GET", "/audit"), client="192.0.2.100"))
        answers.append(await call(app, "GET", "/audit", bearer(tokens["reader"]), client="192.0.2.100"))
        return [(answer.status, answer.body["code"] if answer.status != 200 else "") for answer in answers]

    assert [(401, "SIGNATURE_INVALID")] * 5 + [(429, "RATE_LIMIT_EXCEEDED")] * 2 + [(200, "")] == anyio.run(run)


def test_an_ipv6_client_is_limited_by_its_64_block(engine: Engine) -> None:
    app = app_for(engine, failures_per_minute=3)

    async def run() -> list[int]:
        wrong = bearer("qrb_wrong")
        statuses = [(await call(app, "GET", "/audit", wrong, client=f"2001:db8::{n}")).status for n in range(1, 4)]
        statuses.append((await call(app, "GET", "/audit", wrong, client="2001:db8::ffff:1")).status)
        statuses.append((await call(app, "GET", "/audit", wrong, client="2001:db8:0:1::1")).status)
        return statuses

    assert [401, 401, 401, 429, 401] == anyio.run(run)


def test_signed_header_failures_have_their_own_codes(engine: Engine, tokens: dict[str, str]) -> None:
    good = sign("GET", "/audit")
    stale = sign("GET", "/audit", ts=str(int((time.time() - 600) * 1000)))
    with client_for(engine) as client:
        codes = [
            client.get("/audit", headers={k: v for k, v in good.items() if k != "x-sig"}).json()["code"],
            client.get("/audit", headers=good | {"x-ts": "not-a-time"}).json()["code"],
            client.get("/audit", headers=stale).json()["code"],
            client.get("/audit", headers=good | {"x-dao-id": "swapped"}).json()["code"],
            client.get("/audit?x=1", headers=good).json()["code"],
            client.get("/audit", headers=sign("GET", "/audit", squid_id="nobody")).json()["code"],
        ]
    expected = [
        "SIGNATURE_MISSING",
        "TIMESTAMP_INVALID",
        "TIMESTAMP_INVALID",
        "SIGNATURE_INVALID",
        "SIGNATURE_INVALID",
        "SQUID_IDENTITY_INVALID",
    ]
    assert expected == codes


def test_rate_limit_is_per_caller_and_answers_429_with_retry_after(engine: Engine, tokens: dict[str, str]) -> None:
    with client_for(engine, per_minute=2) as client:
        statuses = [client.get("/audit", headers=bearer(tokens["reader"])).status_code for _ in range(2)]
        refused = client.get("/audit", headers=bearer(tokens["reader"]))
        other = client.get("/audit", headers=bearer(tokens["root"]))
        health = [client.get("/health").status_code for _ in range(3)]
    assert [200, 200] == statuses
    assert (429, "RATE_LIMIT_EXCEEDED") == (refused.status_code, refused.json()["code"])
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert 200 == other.status_code
    assert [200, 200, 200] == health


def test_ensure_admin_creates_the_admin_once(engine: Engine) -> None:
    token = ensure_admin(engine)
    assert token is not None and token.startswith("qrb_")
    assert ensure_admin(engine) is None
    with client_for(engine) as client:
        assert 201 == client.post("/audit", headers=bearer(token), json={}).status_code
