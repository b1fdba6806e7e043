"""Remote mode over real sockets: the dev sQuid and Qonsent run as separate processes."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from api.security import build_security
from qerberos.settings import Settings, load_settings
from tests.conftest import free_port
from tests.integration.security.servers import dev_server, stop
from tests.unit.security.helpers import make_app, respellings, sign


@pytest.fixture(scope="module")
def squid_url() -> Iterator[str]:
    with dev_server("squid") as (url, _process):
        yield url


@pytest.fixture(scope="module")
def qonsent_url() -> Iterator[str]:
    with dev_server("qonsent") as (url, _process):
        yield url


def remote_settings(squid_url: str, qonsent_url: str, **changes: Any) -> Settings:
    return dataclasses.replace(
        load_settings(),
        auth_mode="remote",
        squid_url=squid_url,
        qonsent_url=qonsent_url,
        redis_url=None,
        rate_limit_per_minute=1000,
        security_timeout=1.0,
        **changes,
    )


def client(settings: Settings) -> TestClient:  # type: ignore[type-arg]
    return TestClient(make_app(build_security(settings)))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def code(response: Any) -> tuple[int, str]:
    return response.status_code, response.json().get("code", "")


def test_bearer_token_verified_by_squid_becomes_the_caller(squid_url: str, qonsent_url: str) -> None:
    with client(remote_settings(squid_url, qonsent_url)) as c:
        response = c.get("/audit", headers=bearer("dev-token-alice"))
    assert 200 == response.status_code
    assert {"source": "squid:alice", "subId": "alice-sub", "scheme": "bearer"} == response.json()


def test_each_authentication_failure_has_its_code(squid_url: str, qonsent_url: str) -> None:
    good = sign("GET", "/audit")
    with client(remote_settings(squid_url, qonsent_url)) as c:
        outcomes = [
            code(c.get("/audit")),
            code(c.get("/audit", headers={"x-squid-id": "alice", "x-ts": good["x-ts"]})),
            code(c.get("/audit", headers=good | {"x-ts": "2023-01-01T00:00:00Z"})),
            code(c.get("/audit", headers=bearer("unknown-token"))),
            code(c.get("/audit", headers=bearer("dev-token-expired"))),
            code(c.get("/audit", headers=good | {"x-sig": good["x-sig"][::-1]})),
        ]
    assert [
        (401, "SQUID_IDENTITY_MISSING"),
        (401, "SIGNATURE_MISSING"),
        (401, "TIMESTAMP_INVALID"),
        (401, "SQUID_IDENTITY_INVALID"),
        (401, "SQUID_IDENTITY_INVALID"),
        (401, "SIGNATURE_INVALID"),
    ] == outcomes


def test_signed_request_verified_by_squid_then_replay_refused(squid_url: str, qonsent_url: str) -> None:
    body = b'{"type":"access"}'
    headers = sign("POST", "/audit", body, dao_id="dao-1") | {"content-type": "application/json"}
    with client(remote_settings(squid_url, qonsent_url)) as c:
        first = c.post("/audit", content=body, headers=headers)
        replay = c.post("/audit", content=body, headers=headers)
    assert 201 == first.status_code
    assert {"source": "squid:alice", "length": len(body), "json": {"type": "access"}} == first.json()
    assert (401, "SIGNATURE_INVALID") == code(replay)


def test_no_respelling_of_a_signature_verified_by_squid_passes(squid_url: str, qonsent_url: str) -> None:
    body = b'{"type":"access"}'
    headers = sign("POST", "/audit", body) | {"content-type": "application/json"}
    with client(remote_settings(squid_url, qonsent_url, auth_failures_per_minute=0)) as c:  # 95 failures
        first = c.post("/audit", content=body, headers=headers)
        again = [
            c.post("/audit", content=body, headers=headers | {"x-sig": text}) for text in respellings(headers["x-sig"])
        ]
    assert 201 == first.status_code
    assert [(401, "SIGNATURE_INVALID")] * len(again) == [code(response) for response in again]


def test_qonsent_decides_permissions_and_admin_implies_all(squid_url: str, qonsent_url: str) -> None:
    with client(remote_settings(squid_url, qonsent_url)) as c:
        reader_writes = c.post("/audit", headers=bearer("dev-token-bob"), json={})
        nobody_reads = c.get("/audit", headers=bearer("dev-token-mallory"))
        admin_writes = c.post("/audit", headers=bearer("dev-token-carol"), json={})
    assert (403, "QONSENT_DENIED") == code(reader_writes)
    assert (403, "QONSENT_DENIED") == code(nobody_reads)
    assert 201 == admin_writes.status_code


def test_squid_unreachable_is_dependency_unavailable(qonsent_url: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with client(remote_settings(dead, qonsent_url)) as c:
        assert (503, "DEPENDENCY_UNAVAILABLE") == code(c.get("/audit", headers=bearer("dev-token-alice")))


def test_qonsent_down_serves_cached_decisions_for_the_grace_time_only(squid_url: str) -> None:
    with dev_server("qonsent") as (url, process):
        settings = remote_settings(squid_url, url, qonsent_cache_ttl=0.2, qonsent_grace=1.5)
        with client(settings) as c:
            assert 200 == c.get("/audit", headers=bearer("dev-token-alice")).status_code  # decision cached
            stop(process)
            time.sleep(0.3)  # past the TTL: Qonsent is asked, is down, the cached decision answers
            cached = c.get("/audit", headers=bearer("dev-token-alice"))
            never_asked = c.post("/audit", headers=bearer("dev-token-alice"), json={})
            time.sleep(1.5)  # past TTL + grace
            expired = c.get("/audit", headers=bearer("dev-token-alice"))
    assert 200 == cached.status_code
    assert (503, "DEPENDENCY_UNAVAILABLE") == code(never_asked)
    assert (503, "DEPENDENCY_UNAVAILABLE") == code(expired)
