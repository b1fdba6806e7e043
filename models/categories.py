"""The stored categories of ledger events (``analytics.taxonomy``): derived data, never part of a signed record.

``event_categories`` holds one row per event (``seq``, OCSF ``class_uid``, ``activity_id``, ``status_id``) for the
events ``[0, classified_upto)``; ``event_class_counts`` holds how many of them are of each class, and
``taxonomy_state`` the digest of the taxonomy they were computed with and ``classified_upto``. Unlike the
ledger's tables these are not append-only: a new taxonomy (another digest) replaces them (``reset``), and
``pipelines.categories.catch_up`` recomputes history from the ledger, which still holds every input of the
classification (type, layer, verdict and the details not erased).

Writers do not lock each other out: ``append`` moves ``classified_upto`` only from the value it read, in the
transaction that inserts the rows, so two processes catching up at once write each range once, and the one that
loses the race writes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sqlalchemy import BigInteger, Column, Engine, Integer, SmallInteger, String, delete, func, select, update
from sqlmodel import Field, SQLModel

from models.database import create_missing_tables, database_errors, insert_rows, reading

__all__ = ["CategoryRow", "CategoryStore", "ClassificationState"]

#: ``(seq, class_uid, activity_id, status_id)``
CategoryRow = tuple[int, int, int, int]


class EventCategory(SQLModel, table=True):
    __tablename__ = "event_categories"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    class_uid: int = Field(sa_column=Column(Integer, nullable=False, index=True))
    activity_id: int = Field(sa_column=Column(Integer, nullable=False))
    status_id: int = Field(sa_column=Column(SmallInteger, nullable=False))


class EventClassCount(SQLModel, table=True):
    __tablename__ = "event_class_counts"

    class_uid: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    events: int = Field(sa_column=Column(BigInteger, nullable=False))


class TaxonomyState(SQLModel, table=True):
    __tablename__ = "taxonomy_state"

    id: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    digest: str = Field(sa_column=Column(String(71), nullable=False))
    classified_upto: int = Field(sa_column=Column(BigInteger, nullable=False))


_categories = EventCategory.__table__  # type: ignore[attr-defined]
_counts = EventClassCount.__table__  # type: ignore[attr-defined]
_state = TaxonomyState.__table__  # type: ignore[attr-defined]
_TABLES = (_categories, _counts, _state)
_STATE_ID = 1


@dataclasses.dataclass(frozen=True, slots=True)
class ClassificationState:
    """Which taxonomy (``digest``, None before any) the stored categories come from, and up to which ``seq``."""

    digest: str | None
    classified_upto: int


class CategoryStore:
    """The stored categories of the ledger at ``engine`` (see the module doc)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(self) -> None:
        create_missing_tables(self._engine, _TABLES)

    def state(self) -> ClassificationState:
        with database_errors("the taxonomy state"), reading(self._engine) as connection:
            row = connection.execute(select(_state.c.digest, _state.c.classified_upto)).first()
        return ClassificationState(None, 0) if row is None else ClassificationState(row[0], int(row[1]))

    def reset(self, digest: str) -> None:
        """Forget every stored category: history is to be classified again by the taxonomy of ``digest``."""
        with database_errors("the stored categories"), self._engine.begin() as connection:
            connection.execute(delete(_categories))
            connection.execute(delete(_counts))
            connection.execute(delete(_state))
            connection.execute(_state.insert().values(id=_STATE_ID, digest=digest, classified_upto=0))

    def append(self, state: ClassificationState, rows: Sequence[CategoryRow], upto: int) -> bool:
        """Store the categories of the events ``[state.classified_upto, upto)`` (``rows``) if the store is still at
        ``state``; False (nothing written) when another writer moved it meanwhile."""
        if state.digest is None:
            raise ValueError("reset the store with a taxonomy's digest first")
        with database_errors("the stored categories"), self._engine.begin() as connection:
            moved = connection.execute(
                update(_state)
                .where(
                    _state.c.id == _STATE_ID,
                    _state.c.digest == state.digest,
                    _state.c.classified_upto == state.classified_upto,
                )
                .values(classified_upto=upto)
            ).rowcount
            if moved != 1:
                return False
            insert_rows(connection, "event_categories", ("seq", "class_uid", "activity_id", "status_id"), rows)
            per_class: dict[int, int] = {}
            for _, class_uid, _, _ in rows:
                per_class[class_uid] = per_class.get(class_uid, 0) + 1
            known = set(connection.execute(select(_counts.c.class_uid)).scalars())
            for class_uid, events in per_class.items():
                if class_uid in known:
                    connection.execute(
                        update(_counts).where(_counts.c.class_uid == class_uid).values(events=_counts.c.events + events)
                    )
                else:
                    connection.execute(_counts.insert().values(class_uid=class_uid, events=events))
        return True

    def class_counts(self) -> dict[int, int]:
        """How many classified events there are of each class (``class_uid``)."""
        with database_errors("the class counts"), reading(self._engine) as connection:
            return {int(uid): int(n) for uid, n in connection.execute(select(_counts.c.class_uid, _counts.c.events))}

    def categories(self, start: int, end: int) -> dict[int, tuple[int, int, int]]:
        """The stored ``(class_uid, activity_id, status_id)`` of the events ``start <= seq < end``."""
        statement = select(_categories).where(_categories.c.seq >= start, _categories.c.seq < end)
        with database_errors("the stored categories"), reading(self._engine) as connection:
            return {int(seq): (int(c), int(a), int(s)) for seq, c, a, s in connection.execute(statement)}

    def stored(self) -> int:
        with database_errors("the stored categories"), reading(self._engine) as connection:
            return int(connection.execute(select(func.count()).select_from(_categories)).scalar_one())
