"""``qerberos dev squid|qonsent``: the development sQuid and Qonsent servers (never for production)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

dev_app = typer.Typer(help="Development servers implementing the sQuid and Qonsent contracts.", no_args_is_help=True)

FixtureOption = Annotated[Path, typer.Option(exists=True, dir_okay=False, help="JSON fixture file")]


def register(app: typer.Typer) -> None:
    app.add_typer(dev_app, name="dev")


@dev_app.command("squid")
def squid(
    fixture: FixtureOption = Path("tests/fixtures/squid.json"),
    port: int = 3010,
    host: str = "127.0.0.1",
) -> None:
    """Serve sQuid's /api/v1/auth/verify and /verify-signature from the fixture's tokens and keys."""
    from api.dev.squid_server import serve

    serve(port, fixture, host)


@dev_app.command("qonsent")
def qonsent(
    fixture: FixtureOption = Path("tests/fixtures/qonsent.json"),
    port: int = 3020,
    host: str = "127.0.0.1",
) -> None:
    """Serve Qonsent's /api/v1/qonsent/check from the fixture's policies."""
    from api.dev.qonsent_server import serve

    serve(port, fixture, host)
