"""Small builders shared by the ledger tests."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Connection, text

from models.database import is_sqlite
from models.ledger import Ledger
from models.records import Actor, NewEvent


def event(
    n: int = 0,
    *,
    actor: str = "did:squid:alice",
    event_id: uuid.UUID | None = None,
    verdict: str = "ALLOW",
    details: dict[str, object] | None = None,
    source: str = "test",
) -> NewEvent:
    return NewEvent(
        type="access",
        ref=f"file:doc-{n}",
        actor=Actor(actor, "work", "dao:research"),
        layer="qdrive",
        verdict=verdict,  # type: ignore[arg-type]
        source=source,
        details={"n": n, "ip": "10.0.0.7"} if details is None else details,
        id=event_id,
        occurred_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=n),
    )


def as_attacker(ledger: Ledger, *statements: str) -> None:
    """Run SQL as someone with the database's owner rights would: the guards dropped first."""
    with ledger.engine.begin() as connection:
        drop_guards(connection, sqlite=is_sqlite(ledger.engine))
        for statement in statements:
            connection.execute(text(statement))


def drop_guards(connection: Connection, *, sqlite: bool) -> None:
    if sqlite:
        for (name,) in connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).all():
            connection.execute(text(f"DROP TRIGGER {name}"))
    else:
        connection.execute(text("DROP FUNCTION qerberos_refuse_change() CASCADE"))
        connection.execute(text("DROP FUNCTION qerberos_refuse_unrecorded_erasure() CASCADE"))
