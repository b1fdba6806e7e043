"""The event frame of TEAM.md as a Polars LazyFrame, from a Parquet export or from the ledger's database.

A database is read in bounded chunks of ``seq`` (``ledger_entries`` left-joined to ``event_details``, whose
rows are gone once erased), so ten million events never sit in memory at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import sqlalchemy as sa
from polars.io.plugins import register_io_source

from qerberos.errors import LedgerError

logger = logging.getLogger(__name__)

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "seq": pl.Int64(),
    "id": pl.String(),
    "type": pl.String(),
    "ref": pl.String(),
    "squid_id": pl.String(),
    "sub_id": pl.String(),
    "dao_id": pl.String(),
    "layer": pl.String(),
    "verdict": pl.String(),
    "occurred_at": pl.Datetime("ms", "UTC"),
    "details": pl.String(),
}
DEFAULT_CHUNK_ROWS = 250_000
_CHUNK_QUERY = sa.text(
    "SELECT e.seq, e.id, e.type, e.ref, e.actor_squid_id AS squid_id, e.actor_sub_id AS sub_id, "
    "e.actor_dao_id AS dao_id, e.layer, e.verdict, e.occurred_at_ms, d.details "
    "FROM ledger_entries e LEFT JOIN event_details d ON d.seq = e.seq "
    "WHERE e.seq >= :low AND e.seq < :high ORDER BY e.seq"
)
_RAW_SCHEMA = {**{k: v for k, v in EVENT_SCHEMA.items() if k != "occurred_at"}, "occurred_at_ms": pl.Int64()}


def is_database_url(source: str) -> bool:
    return source.startswith(("sqlite:", "postgres://", "postgresql://", "postgresql+"))


def _engine(url: str) -> sa.Engine:
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return sa.create_engine(url)


def scan_parquet_events(path: str | Path) -> pl.LazyFrame:
    """An event frame from a Parquet export (a file, a directory or a glob), cast to the frame's types."""
    return pl.scan_parquet(path).select(pl.col(name).cast(dtype) for name, dtype in EVENT_SCHEMA.items())


def iter_database_chunks(url: str, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pl.DataFrame]:
    """The ledger's events in ``seq`` order, ``chunk_rows`` at a time, as event frames."""
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            size = connection.execute(sa.text("SELECT COALESCE(MAX(seq) + 1, 0) FROM ledger_entries")).scalar_one()
            for low in range(0, int(size), chunk_rows):
                raw = pl.read_database(
                    _CHUNK_QUERY,
                    connection,
                    execute_options={"parameters": {"low": low, "high": low + chunk_rows}},
                    schema_overrides=_RAW_SCHEMA,
                )
                yield raw.select(
                    *(pl.col(k).cast(v) for k, v in EVENT_SCHEMA.items() if k != "occurred_at"),
                    occurred_at=pl.col("occurred_at_ms").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
                ).select(list(EVENT_SCHEMA))
    except sa.exc.SQLAlchemyError as exc:
        raise LedgerError(f"cannot read the ledger at {engine.url.render_as_string(hide_password=True)}") from exc
    finally:
        engine.dispose()


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
