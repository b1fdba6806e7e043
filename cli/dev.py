"""``qerberos dev squid|qonsent``: the development sQuid and Qonsent servers (never for production).

Each serves the fixture it is given (``--fixture``: there is no default, so that a server never starts from
a file that happens to lie in the working directory) on ``--host`` (default ``QERBEROS_HOST``) and
``--port``. The compose file's ``dev`` profile runs them with ``ops/dev/*-fixture.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli._common import reported_errors
from qerberos.settings import get_settings

dev_app = typer.Typer(help="Development servers implementing the sQuid and Qonsent contracts.", no_args_is_help=True)

FixtureOption = Annotated[Path, typer.Option(exists=True, dir_okay=False, help="JSON fixture file")]
HostOption = Annotated[str | None, typer.Option(help="address to listen on [QERBEROS_HOST]")]


def register(app: typer.Typer) -> None:
    app.add_typer(dev_app, name="dev")


@dev_app.command("squid")
def squid(fixture: FixtureOption, port: int = 3010, host: HostOption = None) -> None:
    """Serve sQuid's /api/v1/auth/verify and /verify-signature from the fixture's tokens and keys."""
    from api.dev.squid_server import serve

    with reported_errors():
        serve(port, fixture, host or get_settings().host)


@dev_app.command("qonsent")
def qonsent(fixture: FixtureOption, port: int = 3020, host: HostOption = None) -> None:
    """Serve Qonsent's /api/v1/qonsent/check from the fixture's policies."""
    from api.dev.qonsent_server import serve

    with reported_errors():
        serve(port, fixture, host or get_settings().host)
