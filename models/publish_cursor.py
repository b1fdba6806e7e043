"""The event publisher's durable cursor over the ledger's sequence (table ``publish_cursor``).

``publish_cursor`` keeps, per named publisher, the last ledger ``seq`` whose events the broker acknowledged.
The publisher advances it only after the acknowledgements, so a crash or a broker outage republishes from the
cursor (at least once) and never skips an event. ``PublishCursor.lag`` is what ``/metrics`` reports: how many
entries wait, and since when the oldest of them does.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from sqlalchemy import BigInteger, Column, Connection, Engine, String, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, SQLModel

from models.database import connected, create_missing_tables, database_errors, fetch_rows

__all__ = ["PublishCursor", "PublishLag", "create_publish_tables"]


class PublishCursorRow(SQLModel, table=True):
    __tablename__ = "publish_cursor"

    name: str = Field(sa_column=Column(String(50), primary_key=True))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))


_cursor = PublishCursorRow.__table__  # type: ignore[attr-defined]
_LAG = "SELECT (SELECT max(seq) FROM ledger_entries), (SELECT received_at_ms FROM ledger_entries WHERE seq = ?)"


@contextlib.contextmanager
def _write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction that, on SQLite, takes the write lock up front (``BEGIN IMMEDIATE``, the ledger's
    switch in ``models.database``): it waits for a concurrent append instead of failing to upgrade a read lock."""
    options = {"qerberos_immediate": True} if engine.dialect.name == "sqlite" else {}
    with engine.connect().execution_options(**options) as connection, connection.begin():
        yield connection


def create_publish_tables(engine: Engine) -> None:
    """Create ``publish_cursor``; safe to run again, beside other writers."""
    create_missing_tables(engine, [_cursor])


@dataclasses.dataclass(frozen=True, slots=True)
class PublishLag:
    """``behind``: ledger entries not yet published; ``oldest_received_at_ms``: when the first of them was
    appended (None when nothing waits)."""

    behind: int
    oldest_received_at_ms: int | None


class PublishCursor:
    """The cursor of the publisher ``name`` over the ledger of ``engine``."""

    def __init__(self, engine: Engine, name: str = "events") -> None:
        self._engine = engine
        self._name = name

    def position(self) -> int:
        """The last ledger ``seq`` published (-1 before the first)."""
        with connected(self._engine) as connection:
            seq = connection.execute(select(_cursor.c.seq).where(_cursor.c.name == self._name)).scalar()
        return -1 if seq is None else int(seq)

    def advance(self, seq: int) -> None:
        """Record that every entry up to ``seq`` was acknowledged by the broker."""
        insert = sqlite_insert if self._engine.dialect.name == "sqlite" else pg_insert
        statement = insert(_cursor).values(name=self._name, seq=seq)
        statement = statement.on_conflict_do_update(index_elements=["name"], set_={"seq": statement.excluded.seq})
        with database_errors("saving the publish cursor"), _write_transaction(self._engine) as connection:
            connection.execute(statement)

    def lag(self) -> PublishLag:
        position = self.position()
        with connected(self._engine) as connection:
            ((last, oldest),) = fetch_rows(connection, _LAG, (position + 1,))
        behind = 0 if last is None else max(0, int(last) - position)
        return PublishLag(behind, None if behind == 0 or oldest is None else int(oldest))
