"""A development Qonsent: ``python -m api.dev.qonsent_server --port N --fixture tests/fixtures/qonsent.json``.

Fixture::

    {"policies": [{"identity": "<squidId>", "resource": "qerberos:audit", "actions": ["write", "read"]}]}

``POST /api/v1/qonsent/check`` {resource, identity, action, context} -> {status: "ok", data{allowed, reason}};
anything not listed is denied; ``GET /health``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Litestar, get, post
from litestar.params import JSONBody

from api.dev import _runner


def create_app(fixture: dict[str, Any]) -> Litestar:
    _runner.check_fixture(fixture, frozenset({"policies"}), "Qonsent")
    grants: set[tuple[str, str, str]] = {
        (policy["identity"], policy["resource"], action)
        for policy in fixture.get("policies", [])
        for action in policy.get("actions", [])
    }

    @post("/api/v1/qonsent/check", status_code=200)
    async def check(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        key = (str(data.get("identity")), str(data.get("resource")), str(data.get("action")))
        allowed = key in grants
        reason = "granted by policy" if allowed else "no policy grants this"
        return {"status": "ok", "data": {"allowed": allowed, "reason": reason}}

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    return Litestar(route_handlers=[check, health], logging_config=None)


def serve(port: int, fixture: Path, host: str = "127.0.0.1") -> None:
    _runner.serve(create_app, port, fixture, host)


if __name__ == "__main__":
    _runner.main(create_app, "development Qonsent", 3020)
