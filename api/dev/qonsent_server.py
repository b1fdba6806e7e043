"""A development Qonsent: ``python -m api.dev.qonsent_server --port N --fixture tests/fixtures/qonsent.json``.

Fixture::

    {"policies": [{"identity": "<squidId>", "resource": "qerberos:audit", "actions": ["write", "read"]}]}

``POST /api/v1/qonsent/check`` {resource, identity, action, context} -> {status: "ok", data{allowed, reason}};
anything not listed is denied; ``GET /health``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import uvicorn
from litestar import Litestar, get, post
from litestar.params import JSONBody


def create_app(fixture: dict[str, Any]) -> Litestar:
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
    uvicorn.run(create_app(json.loads(fixture.read_text())), host=host, port=port, log_level="warning")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="development Qonsent")
    parser.add_argument("--port", type=int, default=3020)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--fixture", type=Path, required=True)
    args = parser.parse_args(argv)
    serve(args.port, args.fixture, args.host)


if __name__ == "__main__":
    main()
