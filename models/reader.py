"""The one reader of the ledger's tables for the layers above ``models/``: what analytics, compliance reports,
risk and live detection read of ``ledger_entries`` and ``event_details`` (left-joined: a row of
``event_details`` is gone once erased), in the columns of ``models.event_frame``.

- By ``seq``, the event frame in bounded chunks (``LedgerReader.chunks``, ``scan_events``, ``export_parquet``),
  so that ten million events never sit in memory at once.
- By time, a period's events (``between``) and what the GDPR section reads besides (``erasures``,
  ``details_texts``): each one indexed range query; the details still held per module and how many are
  older than each module's retention cutoff (``details_held``, one pass over the held details); which of
  some refs a type of event records (``recorded_refs``).
- Past a cursor, the tail live detection follows (``tail``); the newest checkpoint a restore compares with
  (``newest_checkpoint``).
- In one read transaction (``session()``, a ``ReadSession``), what one risk assessment reads: the ledger's
  snapshot (its size and "now") and an identity's newest rows below that size, through
  ``ix_ledger_entries_actor_seq``; ``models.alerts`` and ``models.risk_store`` read on the same session.

The tail and the risk reads hand out rows (tuples), not frames: an assessment reads a handful of rows, usually
none (the history cache asks only for what was appended since), and building a frame would cost more than the
read. Database errors become ``LedgerError``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from polars.io.plugins import register_io_source
from sqlalchemy import Connection, Engine, Select, bindparam, case, func, make_url, select, text

from models.database import DATABASE_ERRORS, create_ledger_engine
from models.event_frame import EVENT_COLUMNS, EVENT_SCHEMA, FRAME_SCHEMA, PERIOD_COLUMNS, scan_parquet_events
from models.tables import CheckpointRow, EventDetails, LedgerEntry
from qerberos.errors import LedgerError

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "ActorRow",
    "IdentityRow",
    "LedgerReader",
    "LedgerSnapshot",
    "ReadSession",
    "TailRow",
    "export_parquet",
    "is_database_url",
    "iter_database_chunks",
    "ledger_size",
    "scan_database_events",
    "scan_events",
]

DEFAULT_CHUNK_ROWS = 250_000
_entries = LedgerEntry.__table__  # type: ignore[attr-defined]
_details = EventDetails.__table__  # type: ignore[attr-defined]
_checkpoints = CheckpointRow.__table__  # type: ignore[attr-defined]
_STORED: dict[str, Any] = {  # each frame column as the tables store it
    "seq": _entries.c.seq,
    "id": _entries.c.id,
    "type": _entries.c.type,
    "ref": _entries.c.ref,
    "squid_id": _entries.c.actor_squid_id,
    "sub_id": _entries.c.actor_sub_id,
    "dao_id": _entries.c.actor_dao_id,
    "layer": _entries.c.layer,
    "verdict": _entries.c.verdict,
    "source": _entries.c.source,
    "occurred_at": _entries.c.occurred_at_ms,
    "received_at": _entries.c.received_at_ms,
    "details": _details.c.details,
    "has_details": case((_details.c.seq.is_(None), 0), else_=1),
}
_STORED_AS_INTEGER = frozenset({"occurred_at", "received_at", "has_details"})
_SIZE = select(func.coalesce(func.max(_entries.c.seq) + 1, 0))
_NEWEST_CHECKPOINT = select(_checkpoints.c.note).order_by(_checkpoints.c.size.desc()).limit(1)
_ERASURES = text(
    "SELECT e.seq, e.occurred_at_ms AS occurred_at, e.actor_squid_id AS squid_id, e.source, d.details, "
    "(SELECT COUNT(*) FROM ledger_entries o JOIN event_details od ON od.seq = o.seq "
    " WHERE o.actor_squid_id = e.actor_squid_id AND o.seq < e.seq AND o.type <> :kind) AS details_left "
    "FROM ledger_entries e LEFT JOIN event_details d ON d.seq = e.seq "
    "WHERE e.type = :kind AND e.occurred_at_ms >= :start AND e.occurred_at_ms < :end ORDER BY e.seq"
)
_ERASURE_SCHEMA: dict[str, pl.DataType] = {
    "seq": pl.Int64(),
    "occurred_at": pl.Int64(),
    "squid_id": pl.String(),
    "source": pl.String(),
    "details": pl.String(),
    "details_left": pl.Int64(),
}
_HELD_SCHEMA: dict[str, pl.DataType] = {
    "layer": pl.String(),
    "held": pl.Int64(),
    "oldest_ms": pl.Int64(),
    "past_retention": pl.Int64(),
}
_TAIL = text(
    "SELECT e.seq, e.actor_squid_id, e.type, e.ref, e.layer, e.verdict, e.occurred_at_ms, e.actor_dao_id, "
    "d.details FROM ledger_entries e LEFT JOIN event_details d ON d.seq = e.seq "
    "WHERE e.seq > :after AND e.seq <= :upto ORDER BY e.seq LIMIT :limit"
)
_SNAPSHOT = select(
    select(func.max(_entries.c.seq)).scalar_subquery(),
    select(func.max(_entries.c.occurred_at_ms)).scalar_subquery(),
    select(_entries.c.received_at_ms).order_by(_entries.c.seq.desc()).limit(1).scalar_subquery(),
)
_ACTOR_ROWS = (
    select(_entries.c.occurred_at_ms, _entries.c.type, _entries.c.layer, _entries.c.verdict, _details.c.details)
    .outerjoin(_details, _details.c.seq == _entries.c.seq)
    .where(
        _entries.c.actor_squid_id == bindparam("identity"),
        _entries.c.seq >= bindparam("start"),
        _entries.c.seq < bindparam("size"),
    )
    .order_by(_entries.c.seq.desc())
    .limit(bindparam("limit"))
)
_ALL_ACTOR_ROWS = (
    select(
        _entries.c.actor_squid_id, _entries.c.occurred_at_ms, _entries.c.type, _entries.c.layer, _entries.c.verdict,
        _details.c.details,
    )
    .outerjoin(_details, _details.c.seq == _entries.c.seq)
    .where(_entries.c.seq < bindparam("size"))
    .order_by(_entries.c.seq)
)  # fmt: skip
_STREAM = {"stream_results": True, "yield_per": 10_000}  # PostgreSQL: a server-side cursor, not 1 M rows at once

#: An identity's row as risk reads it: ``(occurred_at_ms, type, layer, verdict, details)``.
ActorRow = tuple[int, str, str, str, str | None]
#: An identity's row in a pass over the ledger: ``(squid_id, occurred_at_ms, type, layer, verdict, details)``.
IdentityRow = tuple[str, int, str, str, str, str | None]
#: A row of the tail: ``(seq, squid_id, type, ref, layer, verdict, occurred_at_ms, dao_id, details)``.
TailRow = tuple[int, str, str, str, str, str, int, str | None, str | None]


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerSnapshot:
    """The ledger's state an assessment reads: ``size`` entries (seq ``0..size-1``) and its "now"."""

    size: int
    as_of_ms: int


class _Reading:
    """Database errors of the reads in its block become ``LedgerError`` (``models.database.database_errors`` with
    this module's wording, and a class, not a generator: the risk reads use it a few times per assessment)."""

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _trace: object) -> None:
        if isinstance(exc, DATABASE_ERRORS):
            raise LedgerError(f"cannot read {self._what}: {exc.__class__.__name__}") from exc


def _select(columns: Sequence[str]) -> Select[Any]:
    joined = _entries.outerjoin(_details, _details.c.seq == _entries.c.seq)
    return select(*(_STORED[name].label(name) for name in columns)).select_from(joined)


def _read_frame(connection: Connection, statement: Select[Any], columns: Sequence[str]) -> pl.DataFrame:
    """The rows of ``statement`` (which selects ``columns``) as a frame of those columns' types."""
    stored = {name: pl.Int64() if name in _STORED_AS_INTEGER else FRAME_SCHEMA[name] for name in columns}
    raw = pl.read_database(statement, connection, schema_overrides=stored)
    return raw.select(_typed(name) for name in columns)


def _typed(name: str) -> pl.Expr:
    column = pl.col(name)
    if name == "has_details":
        return column.cast(pl.Int64) == 1
    if name in _STORED_AS_INTEGER:
        return column.cast(pl.Int64).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")
    return column.cast(FRAME_SCHEMA[name])


class ReadSession:
    """Reads on one connection, in one transaction: every read sees the same ledger prefix (what a risk
    assessment needs, on PostgreSQL's read-committed statements too, since each read is bounded by the
    snapshot's size). ``connection`` is for the other stores of ``models/`` reading in the same transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def snapshot(self, *, rounding_ms: int, future_skew_ms: int) -> LedgerSnapshot:
        """The ledger's size and "now": the newest ``occurred_at_ms`` (``ix_ledger_entries_occurred``) but never
        later than the newest receipt time (the primary key's last row) plus ``future_skew_ms``, so a client's
        far-future timestamp cannot freeze time; rounded *up* to ``rounding_ms``, so that no event or alert of the
        newest minute falls after "now" and out of the score. Now is 0 for an empty ledger."""
        with _Reading("the ledger's snapshot"):
            last_seq, newest, received = self.connection.execute(_SNAPSHOT).one()
        if last_seq is None:
            return LedgerSnapshot(0, 0)
        now = min(int(newest), int(received) + future_skew_ms)
        return LedgerSnapshot(int(last_seq) + 1, -(-now // rounding_ms) * rounding_ms)

    def actor_rows(self, identity: str, *, start: int, size: int, limit: int) -> list[ActorRow]:
        """The identity's newest ``limit`` rows with ``start <= seq < size``, oldest first."""
        bound = {"identity": identity, "start": start, "size": size, "limit": limit}
        with _Reading("an identity's events"):
            rows = self.connection.execute(_ACTOR_ROWS, bound).all()
        return list(reversed(rows))

    def all_actor_rows(self, size: int) -> Iterator[IdentityRow]:
        """Every row with ``seq < size``, in seq order, streamed in one pass over the ledger."""
        with _Reading("the ledger's events"):
            yield from self.connection.execution_options(**_STREAM).execute(_ALL_ACTOR_ROWS, {"size": size})


class LedgerReader:
    """Reads of the ledger at ``engine`` (see the module doc). ``from_url`` opens an engine of its own,
    which ``close`` disposes of."""

    def __init__(self, engine: Engine, *, owns_engine: bool = False) -> None:
        self._engine = engine
        self._owns_engine = owns_engine

    @classmethod
    def from_url(cls, url: str) -> LedgerReader:
        return cls(create_ledger_engine(url), owns_engine=True)

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()

    def __enter__(self) -> LedgerReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def session(self) -> Iterator[ReadSession]:
        """One connection and transaction for several reads (``ReadSession``)."""
        with _Reading("the ledger"):
            connection = self._engine.connect()
        with connection:
            yield ReadSession(connection)

    def size(self) -> int:
        with _Reading("the ledger's size"), self._engine.connect() as connection:
            return int(connection.execute(_SIZE).scalar_one())

    def newest_checkpoint(self) -> str | None:
        """The signed note of the largest stored checkpoint (not verified), None when there is none."""
        with _Reading("the ledger's checkpoints"), self._engine.connect() as connection:
            note = connection.execute(_NEWEST_CHECKPOINT).scalar()
        return None if note is None else str(note)

    def chunks(self, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pl.DataFrame]:
        """The event frame in ``seq`` order, ``chunk_rows`` at a time (each chunk the range ``[low, low +
        chunk_rows)``), all read in one transaction."""
        where = f"the ledger at {self._engine.url.render_as_string(hide_password=True)}"
        with _Reading(where), self._engine.connect() as connection:
            size = int(connection.execute(_SIZE).scalar_one())
            for low in range(0, size, chunk_rows):
                statement = _select(EVENT_COLUMNS).where(_entries.c.seq >= low, _entries.c.seq < low + chunk_rows)
                yield _read_frame(connection, statement.order_by(_entries.c.seq), EVENT_COLUMNS)

    def between(self, start_ms: int, end_ms: int, columns: Sequence[str] = PERIOD_COLUMNS) -> pl.DataFrame:
        """The events with ``start_ms <= occurred_at_ms < end_ms`` (``ix_ledger_entries_occurred``), any order."""
        occurred = _entries.c.occurred_at_ms
        statement = _select(columns).where(occurred >= start_ms, occurred < end_ms)
        with _Reading("the ledger's events for the period"), self._engine.connect() as connection:
            return _read_frame(connection, statement, columns)

    def erasures(self, start_ms: int, end_ms: int, erasure_type: str) -> pl.DataFrame:
        """Each erasure event (type ``erasure_type``) of the period in seq order: ``seq``, ``occurred_at`` (ms),
        ``squid_id``, ``source``, ``details`` and ``details_left``, how many of the identity's earlier events
        (other than erasures) still hold details."""
        parameters = {"kind": erasure_type, "start": start_ms, "end": end_ms}
        with _Reading("the ledger's erasures"), self._engine.connect() as connection:
            rows = connection.execute(_ERASURES, parameters).all()
        return pl.DataFrame([tuple(row) for row in rows], schema=_ERASURE_SCHEMA, orient="row")

    def details_held(self, cutoffs: Mapping[str, int], default_cutoff: int | None) -> pl.DataFrame:
        """Per module (``layer``) whose events still hold details: ``held``, ``oldest_ms`` and
        ``past_retention``, how many occurred before the module's cutoff (``cutoffs``, else ``default_cutoff``;
        None: no cutoff, 0)."""
        occurred = _entries.c.occurred_at_ms
        cutoff = (
            case(
                *(
                    (_entries.c.layer == module, bindparam(f"cutoff_{n}", ms))
                    for n, (module, ms) in enumerate(cutoffs.items())
                ),
                else_=bindparam("cutoff_default", -(2**62) if default_cutoff is None else default_cutoff),
            )
            if cutoffs
            else bindparam("cutoff_default", -(2**62) if default_cutoff is None else default_cutoff)
        )
        statement = (
            select(
                _entries.c.layer,
                func.count().label("held"),
                func.min(occurred).label("oldest_ms"),
                func.sum(case((occurred < cutoff, 1), else_=0)).label("past_retention"),
            )
            .select_from(_entries.join(_details, _details.c.seq == _entries.c.seq))
            .group_by(_entries.c.layer)
        )
        with _Reading("the ledger's details"), self._engine.connect() as connection:
            rows = connection.execute(statement).all()
        return pl.DataFrame([tuple(row) for row in rows], schema=_HELD_SCHEMA, orient="row")

    def recorded_refs(self, event_type: str, refs: Iterable[str]) -> set[str]:
        """Which of ``refs`` an event of ``event_type`` records, at any time (``ix_ledger_entries_type_seq``)."""
        wanted = sorted(set(refs))
        found: set[str] = set()
        with _Reading("the ledger's events"), self._engine.connect() as connection:
            for low in range(0, len(wanted), 500):
                statement = select(_entries.c.ref).where(
                    _entries.c.type == event_type, _entries.c.ref.in_(wanted[low : low + 500])
                )
                found.update(str(ref) for (ref,) in connection.execute(statement))
        return found

    def details_texts(self, seqs: Iterable[int]) -> list[str]:
        """The details (JSON text) still held of the events ``seqs``."""
        statement = select(_details.c.details).where(_details.c.seq.in_([int(seq) for seq in seqs]))
        with _Reading("the ledger's details"), self._engine.connect() as connection:
            return [details for (details,) in connection.execute(statement)]

    def tail(self, after: int, limit: int, *, upto: int | None = None) -> list[TailRow]:
        """Up to ``limit`` rows with ``after < seq <= upto`` (no bound without ``upto``), in seq order."""
        bound = {"after": after, "upto": 2**62 if upto is None else upto, "limit": limit}
        with _Reading("the ledger's tail"), self._engine.connect() as connection:
            return list(connection.execute(_TAIL, bound))


# -- the event frame from a URL or a Parquet export --------------------------------------------------------


def is_database_url(source: str) -> bool:
    return source.startswith(("sqlite:", "postgres://", "postgresql://", "postgresql+"))


def ledger_size(url: str) -> int:
    """How many events the ledger at ``url`` holds; 0 for a SQLite file that does not exist yet (reading it does
    not create it)."""
    database = make_url(url).database
    if url.startswith("sqlite:") and database and database != ":memory:" and not Path(database).exists():
        return 0
    with LedgerReader.from_url(url) as reader:
        return reader.size()


def iter_database_chunks(url: str, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pl.DataFrame]:
    """The events of the ledger at ``url`` in ``seq`` order, ``chunk_rows`` at a time, as event frames."""
    with LedgerReader.from_url(url) as reader:
        yield from reader.chunks(chunk_rows=chunk_rows)


def scan_database_events(url: str, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> pl.LazyFrame:
    """An event frame read lazily from the ledger's database, chunk by chunk, when the query runs.

    Each run of the query reads the database again: to run several queries, ``export_parquet`` first.
    """

    def source(
        with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None, _batch: int | None
    ) -> Iterator[pl.DataFrame]:
        produced = 0
        for chunk in iter_database_chunks(url, chunk_rows=chunk_rows):
            if with_columns is not None:
                chunk = chunk.select(with_columns)
            if predicate is not None:
                chunk = chunk.filter(predicate)
            if n_rows is not None:
                chunk = chunk.head(n_rows - produced)
            produced += chunk.height
            yield chunk
            if n_rows is not None and produced >= n_rows:
                return

    return register_io_source(source, schema=EVENT_SCHEMA)


def export_parquet(url: str, out: Path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Path:
    """Copy the ledger's events into one Parquet file, one chunk in memory at a time."""
    import pyarrow.parquet as pq

    writer: pq.ParquetWriter | None = None
    try:
        for chunk in iter_database_chunks(url, chunk_rows=chunk_rows):
            table = chunk.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(out, table.schema, compression="zstd")
            writer.write_table(table)
        if writer is None:
            pl.DataFrame(schema=EVENT_SCHEMA).write_parquet(out)
    finally:
        if writer is not None:
            writer.close()
    return out


def scan_events(source: str | Path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> pl.LazyFrame:
    """The event frame from a database URL (``sqlite:///...``, ``postgresql://...``) or a Parquet path."""
    if isinstance(source, str) and is_database_url(source):
        return scan_database_events(source, chunk_rows=chunk_rows)
    return scan_parquet_events(source)
