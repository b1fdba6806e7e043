"""Small builders shared by the ledger tests."""

from __future__ import annotations

import datetime as dt
import uuid

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
