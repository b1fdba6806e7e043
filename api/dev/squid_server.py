"""A development sQuid: ``python -m api.dev.squid_server --port N --fixture tests/fixtures/squid.json``.

Fixture::

    {"tokens": {"<token>": {"squidId": "...", "subId": "...", "daoId": "...", "expiresAt": "<ISO 8601>"}},
     "keys": {"<squidId>": "<base64 raw Ed25519 public key>"}}

``POST /api/v1/auth/verify`` {token} -> {valid, identity, expiresAt} (expiresAt defaults to one hour ahead);
``POST /api/v1/auth/verify-signature`` {squidId, signature, timestamp, payload} -> {valid}, checking an
Ed25519 signature (base64) over the UTF-8 payload; ``GET /health``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from litestar import Litestar, get, post
from litestar.params import JSONBody

from api.dev import _runner
from api.security.local import verify_ed25519


def create_app(fixture: dict[str, Any]) -> Litestar:
    _runner.check_fixture(fixture, frozenset({"tokens", "keys"}), "sQuid")
    tokens: dict[str, dict[str, Any]] = fixture.get("tokens", {})
    keys: dict[str, str] = fixture.get("keys", {})

    @post("/api/v1/auth/verify", status_code=200)
    async def verify(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        entry = tokens.get(str(data.get("token", "")))
        if entry is None:
            return {"valid": False}
        expires = entry.get("expiresAt") or (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
        identity = {"squidId": entry["squidId"], "subId": entry.get("subId"), "daoId": entry.get("daoId")}
        return {"valid": True, "identity": identity, "expiresAt": expires}

    @post("/api/v1/auth/verify-signature", status_code=200)
    async def verify_signature(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        key = keys.get(str(data.get("squidId", "")))
        signature, payload = data.get("signature"), data.get("payload")
        if key is None or not isinstance(signature, str) or not isinstance(payload, str):
            return {"valid": False}
        return {"valid": verify_ed25519(key, signature, payload.encode())}

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    return Litestar(route_handlers=[verify, verify_signature, health], logging_config=None)


def serve(port: int, fixture: Path, host: str = "127.0.0.1") -> None:
    _runner.serve(create_app, port, fixture, host)


if __name__ == "__main__":
    _runner.main(create_app, "development sQuid", 3010)
