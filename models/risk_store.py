"""Risk history per identity (table ``risk_scores``), each identity's current level (``risk_current``), and
the detection of level changes.

``risk_scores`` keeps one row per distinct assessment: ``identity``, ``score``, ``level``, ``factors``
(JSON text ``[{name, weight, value}]``), ``operation`` (null for an identity assessment),
``computed_at_ms`` (the assessment's "now", ledger time) and ``recorded_at_ms`` (wall clock). Scoring is
deterministic, so asking again with the same ledger state gives the same assessment: it is not stored twice
(same identity, operation, ``computed_at_ms`` and score as the identity's newest row).

``risk_current`` holds each identity's latest *identity* assessment (no operation, no context, all
factors): what ``GET /risk-score?level=`` ranks, and what a level change is measured against. Operation
assessments (a payment from a new country) are kept in the history but do not move the identity's level,
or every risky request would flap it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import polars as pl
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    bindparam,
    desc,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Field, SQLModel

from models.database import connected, create_missing_tables, has_table, is_sqlite, read_frame, sequenced
from models.reader import ReadSession
from qerberos.errors import LedgerError

__all__ = [
    "LEVEL_RANK",
    "CurrentRisk",
    "LevelChange",
    "RiskCurrentRow",
    "RiskRecord",
    "RiskScoreRow",
    "RiskStore",
    "create_risk_tables",
]

LEVEL_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


class RiskScoreRow(SQLModel, table=True):
    __tablename__ = "risk_scores"
    __table_args__ = (Index("ix_risk_scores_identity_id", "identity", "id"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    identity: str = Field(sa_column=Column(String(100), nullable=False))
    score: float = Field(sa_column=Column(Float, nullable=False))
    level: str = Field(sa_column=Column(String(8), nullable=False))
    factors: str = Field(sa_column=Column(Text, nullable=False))
    operation: str | None = Field(default=None, sa_column=Column(String(100)))
    computed_at_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    recorded_at_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


class RiskCurrentRow(SQLModel, table=True):
    __tablename__ = "risk_current"
    __table_args__ = (Index("ix_risk_current_rank_score", "level_rank", "score"),)

    identity: str = Field(sa_column=Column(String(100), primary_key=True))
    score: float = Field(sa_column=Column(Float, nullable=False))
    level: str = Field(sa_column=Column(String(8), nullable=False))
    level_rank: int = Field(sa_column=Column(SmallInteger, nullable=False))
    factors: str = Field(sa_column=Column(Text, nullable=False))
    computed_at_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


_history = RiskScoreRow.__table__  # type: ignore[attr-defined]
_current = RiskCurrentRow.__table__  # type: ignore[attr-defined]
_CURRENT = select(_current).where(_current.c.identity == bindparam("identity"))
_CURRENT_COLUMNS = ("identity", "score", "level", "level_rank", "factors", "computed_at_ms")
_NEWEST = (
    select(_history.c.score, _history.c.operation, _history.c.computed_at_ms)
    .where(_history.c.identity == bindparam("identity"))
    .order_by(_history.c.id.desc())
    .limit(1)
)


def create_risk_tables(engine: Engine) -> None:
    """Create ``risk_scores`` and ``risk_current`` if missing (``qerberos init`` calls this); safe to rerun, beside
    other writers."""
    create_missing_tables(engine, [_history, _current])


@dataclasses.dataclass(frozen=True, slots=True)
class RiskRecord:
    """One assessment to store; ``factors`` are ``(name, weight, value)``."""

    identity: str
    score: float
    level: str
    factors: Sequence[tuple[str, float, float]]
    computed_at_ms: int
    operation: str | None = None

    def factors_json(self) -> str:
        return json.dumps([{"name": n, "weight": w, "value": v} for n, w, v in self.factors], separators=(",", ":"))


@dataclasses.dataclass(frozen=True, slots=True)
class CurrentRisk:
    identity: str
    score: float
    level: str
    factors: Sequence[dict[str, Any]]
    computed_at_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class LevelChange:
    """An identity's level moved: ``previous_level`` is None for an identity never scored before."""

    identity: str
    previous_level: str | None
    previous_score: float | None
    level: str
    score: float

    @property
    def rising(self) -> bool:
        return LEVEL_RANK[self.level] > LEVEL_RANK.get(self.previous_level or "low", 0)


def level_change(previous: CurrentRisk | None, record: RiskRecord) -> LevelChange | None:
    """A change when the level differs from the previous one; a first assessment changes from nothing
    only when it is above ``low`` (an identity starts at low)."""
    previous_level = None if previous is None else previous.level
    if (previous_level or "low") == record.level:
        return None
    return LevelChange(
        record.identity, previous_level, None if previous is None else previous.score, record.level, record.score
    )


class RiskStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        upsert = (sqlite_insert if engine.dialect.name == "sqlite" else pg_insert)(_current)
        self._upsert_current = upsert.on_conflict_do_update(
            index_elements=["identity"], set_={k: upsert.excluded[k] for k in _CURRENT_COLUMNS if k != "identity"}
        )

    @property
    def engine(self) -> Engine:
        return self._engine

    def current(self, identity: str, session: ReadSession | None = None) -> CurrentRisk | None:
        """The identity's current risk, read in ``session`` when given (the caller's transaction, whose database
        errors ``models.reader`` turns into ``LedgerError``)."""
        if session is None:
            with connected(self._engine) as connection:
                row = connection.execute(_CURRENT, {"identity": identity}).first()
        else:
            row = session.connection.execute(_CURRENT, {"identity": identity}).first()
        return None if row is None else _current_of(row)

    def record(self, record: RiskRecord) -> bool:
        """Append ``record`` to the history unless the identity's newest row is the same assessment;
        an identity assessment (``operation`` None) also becomes the identity's current risk.
        Returns whether anything was written."""
        return self.record_many([record]) == 1

    def record_many(self, records: Sequence[RiskRecord]) -> int:
        """``record`` for each, in one transaction; returns how many were written.

        The history rows go in one multi-row insert and the current levels in one multi-row upsert: the
        write-behind writer stores hundreds a second, and each statement costs ~0.1 ms of the API's CPU."""
        now = int(time.time() * 1000)
        try:
            with self._write() as connection:
                rows = [_history_values(record, now) for record in self._fresh(connection, records)]
                if rows:
                    connection.execute(_history.insert(), rows)
                current = {row["identity"]: _current_values(row) for row in rows if row["operation"] is None}
                if current:  # an identity's newest identity assessment wins
                    connection.execute(self._upsert_current, list(current.values()))
        except (SQLAlchemyError, LedgerError) as exc:
            raise LedgerError(f"could not store the risk score: {exc.__class__.__name__}") from exc
        return len(rows)

    @staticmethod
    def _fresh(connection: Connection, records: Sequence[RiskRecord]) -> list[RiskRecord]:
        """The records that differ from the identity's newest row (stored, or earlier in ``records``)."""
        newest: dict[str, tuple[float, str | None, int] | None] = {}
        fresh: list[RiskRecord] = []
        for record in records:
            if record.identity not in newest:
                row = connection.execute(_NEWEST, {"identity": record.identity}).first()
                newest[record.identity] = None if row is None else (row.score, row.operation, row.computed_at_ms)
            key = (record.score, record.operation, record.computed_at_ms)
            if newest[record.identity] != key:
                newest[record.identity] = key
                fresh.append(record)
        return fresh

    def _write(self) -> contextlib.AbstractContextManager[Connection]:
        """SQLite: ``BEGIN IMMEDIATE`` (a read-then-write transaction that began deferred could not upgrade
        its lock under concurrent writers); PostgreSQL: a plain transaction."""
        return sequenced(self._engine) if is_sqlite(self._engine) else self._engine.begin()

    def history(self, identity: str, *, limit: int = 100) -> list[RiskRecord]:
        """Newest first."""
        with connected(self._engine) as connection:
            rows = connection.execute(
                select(_history).where(_history.c.identity == identity).order_by(_history.c.id.desc()).limit(limit)
            ).all()
        return [
            RiskRecord(
                row.identity,
                row.score,
                row.level,
                [(f["name"], f["weight"], f["value"]) for f in json.loads(row.factors)],
                row.computed_at_ms,
                row.operation,
            )
            for row in rows
        ]

    def highest_scores(self, start_ms: int, end_ms: int, limit: int) -> pl.DataFrame | None:
        """``squid_id`` and ``risk``: each identity's highest identity assessment computed in ``[start_ms,
        end_ms)``, the ``limit`` highest first (what compliance reports rank); None without ``risk_scores``."""
        if not has_table(self._engine, "risk_scores"):
            return None
        computed = _history.c.computed_at_ms
        statement = (
            select(_history.c.identity.label("squid_id"), func.max(_history.c.score).label("risk"))
            .where(computed >= start_ms, computed < end_ms, _history.c.operation.is_(None))
            .group_by(_history.c.identity)
            .order_by(desc("risk"), _history.c.identity)
            .limit(limit)
        )
        return read_frame(self._engine, statement, "the risk history")

    def riskiest(self, *, min_level: str = "low", limit: int = 50) -> list[CurrentRisk]:
        """Identities at ``min_level`` or above by their latest identity assessment, riskiest first."""
        statement = (
            select(_current)
            .where(_current.c.level_rank >= LEVEL_RANK[min_level])
            .order_by(_current.c.score.desc(), _current.c.identity)
            .limit(limit)
        )
        with connected(self._engine) as connection:
            return [_current_of(row) for row in connection.execute(statement)]


def _history_values(record: RiskRecord, recorded_at_ms: int) -> dict[str, Any]:
    return {
        "identity": record.identity, "score": record.score, "level": record.level, "factors": record.factors_json(),
        "operation": record.operation, "computed_at_ms": record.computed_at_ms, "recorded_at_ms": recorded_at_ms,
    }  # fmt: skip


def _current_values(history_row: dict[str, Any]) -> dict[str, Any]:
    current = {name: history_row[name] for name in _CURRENT_COLUMNS if name != "level_rank"}
    return {**current, "level_rank": LEVEL_RANK[history_row["level"]]}


def _current_of(row: Any) -> CurrentRisk:
    factors = msgspec.json.decode(row.factors)  # read on every identity assessment: 3x json.loads' speed
    return CurrentRisk(row.identity, float(row.score), row.level, factors, int(row.computed_at_ms))
