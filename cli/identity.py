"""``qerberos identity create|list|disable``: the local-mode callers (``QERBEROS_AUTH_MODE=local``)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer

from cli._common import reported_errors
from qerberos.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

identity_app = typer.Typer(help="Local identities: their permissions and tokens.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(identity_app, name="identity")


def _engine() -> Engine:
    from models.database import create_ledger_engine
    from models.identities import create_identity_tables

    engine = create_ledger_engine(get_settings().database_url)
    create_identity_tables(engine)
    return engine


@identity_app.command("create")
def create(
    name: str,
    permission: Annotated[list[str], typer.Option("--permission", "-p", help="repeat for each permission")],
    squid_id: Annotated[str | None, typer.Option(help="the squidId it acts as (default: NAME)")] = None,
    public_key: Annotated[str | None, typer.Option(help="base64 Ed25519 public key for signed requests")] = None,
) -> None:
    """Create an identity and print its token once (only its SHA-256 is stored)."""
    from models.identities import create_identity

    with reported_errors():
        identity, token = create_identity(_engine(), name, permission, squid_id=squid_id, public_key=public_key)
    typer.echo(f"created identity {identity.name} (squidId {identity.squid_id})", err=True)
    typer.echo("its token, shown only now; keep it secret:", err=True)
    typer.echo(token)


@identity_app.command("list")
def list_() -> None:
    """Name, squidId, permissions, creation time and state of every identity (never a token)."""
    from models.identities import list_identities

    with reported_errors():
        identities = list_identities(_engine())
    for identity in identities:
        created = dt.datetime.fromtimestamp(identity.created_at_ms / 1000, dt.UTC).isoformat(timespec="seconds")
        state = "disabled" if identity.disabled else "active"
        key = " ed25519" if identity.public_key else ""
        permissions = ",".join(sorted(identity.permission_set))
        typer.echo(f"{identity.name}\t{identity.squid_id}\t{permissions}\t{created}\t{state}{key}")


@identity_app.command("disable")
def disable(name: str) -> None:
    """Refuse the identity's credentials from now on (within a few seconds on running servers)."""
    from models.identities import set_disabled

    with reported_errors():
        set_disabled(_engine(), name)
    typer.echo(f"disabled identity {name}")
