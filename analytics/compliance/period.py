"""The report's period and the ledger rows it reads: events in ``[start, end)`` by ``occurred_at_ms``.

The event frame of TEAM.md (without ``id`` and ``details``, which no section needs for every event), plus
``received_at`` and ``has_details`` (False once erased). One indexed range query, not a scan of the ledger.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import polars as pl
import sqlalchemy as sa

from qerberos.errors import LedgerError, ValidationError

PERIOD_SCHEMA: dict[str, pl.DataType] = {
    "seq": pl.Int64(),
    "type": pl.String(),
    "ref": pl.String(),
    "squid_id": pl.String(),
    "sub_id": pl.String(),
    "dao_id": pl.String(),
    "layer": pl.String(),
    "verdict": pl.String(),
    "source": pl.String(),
    "occurred_at": pl.Datetime("ms", "UTC"),
    "received_at": pl.Datetime("ms", "UTC"),
    "has_details": pl.Boolean(),
}
_EVENTS = sa.text(
    "SELECT e.seq, e.type, e.ref, e.actor_squid_id AS squid_id, e.actor_sub_id AS sub_id, "
    "e.actor_dao_id AS dao_id, e.layer, e.verdict, e.source, e.occurred_at_ms, e.received_at_ms, "
    "CASE WHEN d.seq IS NULL THEN 0 ELSE 1 END AS has_details "
    "FROM ledger_entries e LEFT JOIN event_details d ON d.seq = e.seq "
    "WHERE e.occurred_at_ms >= :start AND e.occurred_at_ms < :end"
)


@dataclasses.dataclass(frozen=True, slots=True)
class Period:
    """A half-open interval of UTC instants: ``start`` included, ``end`` excluded."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValidationError("period bounds must carry a time zone")
        if self.end <= self.start:
            raise ValidationError("the period must end after it starts", details={"start": str(self.start)})

    @classmethod
    def parse(cls, start: str | dt.datetime, end: str | dt.datetime) -> Period:
        return cls(parse_instant(start), parse_instant(end))

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)

    def to_json(self) -> dict[str, str]:
        return {"startDate": iso(self.start), "endDate": iso(self.end)}


def parse_instant(value: str | dt.datetime) -> dt.datetime:
    """An ISO 8601 date or date-time; naive values are UTC; a bare date is its midnight."""
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValidationError("not an ISO 8601 date-time", details={"value": value}) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def iso(moment: dt.datetime) -> str:
    """``2026-01-05T00:00:00.000Z``, the contract's spelling."""
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def load_events(engine: sa.Engine, period: Period) -> pl.DataFrame:
    """The period's events (any order; sections sort where order matters)."""
    try:
        with engine.connect() as connection:
            raw = pl.read_database(
                _EVENTS,
                connection,
                execute_options={"parameters": {"start": period.start_ms, "end": period.end_ms}},
                schema_overrides={"occurred_at_ms": pl.Int64(), "received_at_ms": pl.Int64(), "seq": pl.Int64()},
            )
    except sa.exc.SQLAlchemyError as exc:
        raise LedgerError("cannot read the ledger's events for the report") from exc
    if raw.is_empty():
        return pl.DataFrame(schema=PERIOD_SCHEMA)
    return raw.select(
        *(pl.col(name).cast(PERIOD_SCHEMA[name]) for name in ("seq", "type", "ref", "squid_id", "sub_id", "dao_id")),
        *(pl.col(name).cast(PERIOD_SCHEMA[name]) for name in ("layer", "verdict", "source")),
        occurred_at=_utc(pl.col("occurred_at_ms")),
        received_at=_utc(pl.col("received_at_ms")),
        has_details=pl.col("has_details").cast(pl.Int64) == 1,
    )


def _utc(column: pl.Expr) -> pl.Expr:
    return column.cast(pl.Int64).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")


def query(engine: sa.Engine, statement: str, **parameters: Any) -> list[sa.Row[*tuple[Any, ...]]]:
    """Run one read-only statement; database errors become ``LedgerError``."""
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(statement), parameters).all())
    except sa.exc.SQLAlchemyError as exc:
        raise LedgerError(f"report query failed: {statement.split()[0]} ...") from exc


def has_table(engine: sa.Engine, name: str) -> bool:
    try:
        return sa.inspect(engine).has_table(name)
    except sa.exc.SQLAlchemyError:
        return False
