"""Redis shared by two app instances: one rate limit and one replay memory for both.

Redis runs at 127.0.0.1:6379 (db 0); each test uses its own key prefix and deletes its keys. A missing Redis
fails the test (it runs on every machine of this project), never skips it.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from litestar.testing import TestClient
from sqlalchemy import Engine

from api.security import build_security
from models.identities import create_identity
from qerberos.settings import load_settings
from tests.unit.security.helpers import make_app, respellings, sign
from tests.unit.security.test_local_mode import PUBLIC_KEY

REDIS_URL = os.environ.get("QERBEROS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

pytestmark = pytest.mark.redis


@pytest.fixture
def prefix() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    prefix = f"qerberos-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


def two_apps(
    engine: Engine, prefix: str, per_minute: int, failures_per_minute: int = 60
) -> tuple[TestClient, TestClient]:  # type: ignore[type-arg]
    settings = dataclasses.replace(
        load_settings(),
        auth_mode="local",
        redis_url=REDIS_URL,
        rate_limit_per_minute=per_minute,
        auth_failures_per_minute=failures_per_minute,
    )
    apps = [make_app(build_security(settings, engine=engine, redis_prefix=prefix)) for _ in range(2)]
    return TestClient(apps[0]), TestClient(apps[1])


def test_two_instances_share_one_rate_limit_through_redis(engine: Engine, prefix: str) -> None:
    _, token = create_identity(engine, "reader", ["audit:read"])
    _, other = create_identity(engine, "other", ["audit:read"])
    headers = {"Authorization": f"Bearer {token}"}
    first, second = two_apps(engine, prefix, per_minute=5)
    with first as a, second as b:
        admitted = [a.get("/audit", headers=headers).status_code for _ in range(3)]
        admitted += [b.get("/audit", headers=headers).status_code for _ in range(2)]
        refused_b = b.get("/audit", headers=headers)
        refused_a = a.get("/audit", headers=headers)
        other_caller = b.get("/audit", headers={"Authorization": f"Bearer {other}"})
    assert [200] * 5 == admitted
    assert (429, "RATE_LIMIT_EXCEEDED") == (refused_b.status_code, refused_b.json()["code"])
    assert 429 == refused_a.status_code
    assert 1 <= int(refused_a.headers["retry-after"]) <= 60
    assert 200 == other_caller.status_code


def test_a_signature_used_on_one_instance_is_refused_on_the_other(engine: Engine, prefix: str) -> None:
    create_identity(engine, "writer", ["audit:read"], squid_id="alice", public_key=PUBLIC_KEY)
    headers = sign("GET", "/audit")
    first, second = two_apps(engine, prefix, per_minute=100)
    with first as a, second as b:
        assert 200 == a.get("/audit", headers=headers).status_code
        replay = b.get("/audit", headers=headers)
    assert (401, "SIGNATURE_INVALID") == (replay.status_code, replay.json()["code"])


def test_no_respelling_of_a_signature_used_on_one_instance_passes_on_the_other(engine: Engine, prefix: str) -> None:
    create_identity(engine, "writer", ["audit:read"], squid_id="alice", public_key=PUBLIC_KEY)
    headers = sign("GET", "/audit")
    first, second = two_apps(engine, prefix, per_minute=1000, failures_per_minute=0)  # 95 failures
    with first as a, second as b:
        assert 200 == a.get("/audit", headers=headers).status_code
        again = [b.get("/audit", headers=headers | {"x-sig": text}) for text in respellings(headers["x-sig"])]
    assert [(401, "SIGNATURE_INVALID")] * len(again) == [(r.status_code, r.json()["code"]) for r in again]


def test_failed_authentications_are_counted_once_for_both_instances(engine: Engine, prefix: str) -> None:
    wrong = {"Authorization": "Bearer qrb_wrong"}
    first, second = two_apps(engine, prefix, per_minute=1000, failures_per_minute=5)
    with first as a, second as b:
        statuses = [a.get("/audit", headers=wrong).status_code for _ in range(6)]
        # b learns from the count its first failure returns: one more failure than the limit, never more
        statuses += [b.get("/audit", headers=wrong).status_code for _ in range(3)]
    assert [401] * 5 + [429] + [401] + [429] * 2 == statuses
