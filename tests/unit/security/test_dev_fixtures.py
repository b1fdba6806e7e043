"""The dev sQuid and Qonsent read the compose dev profile's fixtures (ops/dev/) and refuse one written for
another format, which would otherwise load as empty and authenticate nobody."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.dev import qonsent_server, squid_server
from qerberos.errors import ConfigurationError

DEV = Path(__file__).resolve().parents[3] / "ops" / "dev"


def _fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DEV / name).read_text(encoding="utf-8"))
    return loaded


def test_the_dev_squid_knows_each_dev_token() -> None:
    with TestClient(squid_server.create_app(_fixture("squid-fixture.json"))) as client:
        identities = {
            token: client.post("/api/v1/auth/verify", json={"token": token}).json().get("identity", {}).get("squidId")
            for token in ("dev-token-admin", "dev-token-qdrive", "dev-token-auditor", "dev-token-nobody")
        }
    assert {
        "dev-token-admin": "did:squid:dev-admin", "dev-token-qdrive": "did:squid:qdrive-service",
        "dev-token-auditor": "did:squid:dev-auditor", "dev-token-nobody": None,
    } == identities  # fmt: skip


def test_the_dev_qonsent_grants_what_the_runbook_lists() -> None:
    checks = {
        ("did:squid:dev-admin", "qerberos", "admin"): True,
        ("did:squid:qdrive-service", "qerberos:audit", "write"): True,
        ("did:squid:qdrive-service", "qerberos:audit", "read"): False,
        ("did:squid:dev-auditor", "qerberos:audit", "read"): True,
        ("did:squid:dev-auditor", "qerberos:compliance", "read"): True,
        ("did:squid:dev-auditor", "qerberos:audit", "write"): False,
    }
    with TestClient(qonsent_server.create_app(_fixture("qonsent-fixture.json"))) as client:
        answers = {
            key: client.post(
                "/api/v1/qonsent/check", json={"identity": key[0], "resource": key[1], "action": key[2]}
            ).json()["data"]["allowed"]
            for key in checks
        }
    assert checks == answers


@pytest.mark.parametrize(
    ("create_app", "fixture"),
    [
        (squid_server.create_app, {"identities": [{"token": "t", "identity": {"squidId": "a"}}]}),
        (qonsent_server.create_app, {"grants": {"a": ["admin"]}}),
    ],
)
def test_a_fixture_in_another_format_is_refused(create_app: Any, fixture: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="does not read"):
        create_app(fixture)
