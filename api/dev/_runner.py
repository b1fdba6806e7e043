"""Run a development server (sQuid or Qonsent) built from a JSON fixture, as a module or from the CLI."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from litestar import Litestar

from qerberos.errors import ConfigurationError

AppFactory = Callable[[dict[str, Any]], Litestar]


def check_fixture(fixture: dict[str, Any], keys: frozenset[str], kind: str) -> None:
    """Refuse a fixture with keys this server does not read (``_comment`` and other ``_`` keys aside): one
    written for another format would otherwise load as empty and authenticate nobody."""
    unknown = sorted(key for key in fixture if key not in keys and not key.startswith("_"))
    if unknown:
        raise ConfigurationError(
            f"the {kind} fixture has keys this server does not read: {', '.join(unknown)}"
            f" (it reads {', '.join(sorted(keys))})"
        )


def serve(create_app: AppFactory, port: int, fixture: Path, host: str = "127.0.0.1") -> None:
    uvicorn.run(create_app(json.loads(fixture.read_text())), host=host, port=port, log_level="warning")


def main(create_app: AppFactory, description: str, default_port: int, argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--fixture", type=Path, required=True)
    args = parser.parse_args(argv)
    serve(create_app, args.port, args.fixture, args.host)
