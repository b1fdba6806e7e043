"""Read seq ranges of the ledger as Arrow columns, for the verifier's bulk pass.

The driver tuples that SQLAlchemy hands out cost more per row than every check on them, so the
verifier reads through ADBC (Apache Arrow's database drivers for SQLite and PostgreSQL): rows arrive as
columns without a Python object per cell. The reader opens its own read-only connection from the
ledger's URL, which lets a forked worker process open one of its own.

Nothing here checks anything. ADBC's SQLite driver infers each column's type from its values, so a
value of an unexpected type (which only tampering can store) raises ``ColumnReadError`` or arrives as
another Arrow type; the verifier treats either as "check this range the exact way".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import adbc_driver_manager
import adbc_driver_postgresql.dbapi
import adbc_driver_sqlite.dbapi
import pyarrow as pa
from sqlalchemy.engine import URL

from models.merkle import Key

_ENTRIES = (
    "SELECT seq, id, type, ref, actor_squid_id, actor_sub_id, actor_dao_id, layer, verdict, details_commitment, cid,"
    " occurred_at_ms, received_at_ms, source, canonical, leaf_hash, chain_hash FROM ledger_entries"
    " WHERE seq >= {start} AND seq < {end} ORDER BY seq"
)
# Details are read on their own, not joined: two range scans cost SQLite less than a probe per entry.
_DETAILS = "SELECT seq, salt, details FROM event_details WHERE seq >= {start} AND seq < {end} ORDER BY seq"
# SQLite's ADBC driver infers a column's type from the first batch of rows: one batch per range, so a
# column that is NULL in its first thousand rows (``cid``, say) still comes back as text.
_SQLITE_BATCH_ROWS = "adbc.sqlite.query.batch_rows"
_SQLITE_INFERENCE_ROWS = 1 << 16
_CHAIN = "SELECT chain_hash FROM ledger_entries WHERE seq = {seq}"
# One index range scan per level, merged in order (SQLite's MERGE, PostgreSQL's Merge Append): one scan for
# an OR of the ranges made PostgreSQL gather and sort the rows, with half as much server CPU again.
_NODE_RANGE = "SELECT level, idx, hash FROM merkle_nodes WHERE level = {level} AND idx >= {low} AND idx <= {high}"
_NODES_ORDER = " ORDER BY level, idx"


class ColumnReadError(Exception):
    """The columnar reader could not open the ledger or read a range of it."""


class ColumnReader:
    """An ADBC connection to the ledger; a context manager that closes it."""

    def __init__(self, connection: Any, statement_options: Mapping[str, str]) -> None:
        self._connection = connection
        self._statement_options = dict(statement_options)

    @classmethod
    def open(cls, url: URL) -> ColumnReader:
        """A reader for the ledger at ``url`` (a SQLAlchemy URL); ``ColumnReadError`` when there is none."""
        backend = url.get_backend_name()
        try:
            if backend == "sqlite":
                if not url.database or url.database == ":memory:":
                    raise ColumnReadError("an in-memory SQLite ledger cannot be opened a second time")
                connection = adbc_driver_sqlite.dbapi.connect(f"file:{url.database}?mode=ro")
                return cls(connection, {_SQLITE_BATCH_ROWS: str(_SQLITE_INFERENCE_ROWS)})
            if backend == "postgresql":
                uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
                return cls(adbc_driver_postgresql.dbapi.connect(uri), {})
        except adbc_driver_manager.Error as exc:
            raise ColumnReadError(f"cannot open the ledger through ADBC: {exc}") from exc
        raise ColumnReadError(f"no columnar reader for {backend}")

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> ColumnReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def entries(self, start: int, end: int) -> pa.Table:
        """``ledger_entries`` rows with ``start <= seq < end``, in seq order."""
        return self._query(_ENTRIES.format(start=int(start), end=int(end)))

    def details(self, start: int, end: int) -> pa.Table:
        """The (unerased) ``event_details`` rows with ``start <= seq < end``, in seq order."""
        return self._query(_DETAILS.format(start=int(start), end=int(end)))

    def chain_hash(self, seq: int) -> bytes | None:
        """The stored chain hash of entry ``seq`` (None when there is no such entry)."""
        values: list[bytes] = self._query(_CHAIN.format(seq=int(seq))).column(0).to_pylist()
        return values[0] if values else None

    def nodes(self, ranges: Sequence[tuple[int, int, int]]) -> pa.Table:
        """Stored Merkle nodes of ``(level, low, high)`` index ranges, ordered by level, then index."""
        scans = (_NODE_RANGE.format(level=int(lv), low=int(lo), high=int(hi)) for lv, lo, hi in ranges)
        return self._query(" UNION ALL ".join(scans) + _NODES_ORDER)

    def node_hashes(self, keys: Sequence[Key]) -> dict[Key, bytes]:
        """Stored Merkle nodes (level >= 1) by key; absent keys are left out."""
        if not keys:
            return {}
        table = self.nodes([(level, index, index) for level, index in keys])
        keys_found = zip(table["level"].to_pylist(), table["idx"].to_pylist(), strict=True)
        return dict(zip(keys_found, table["hash"].to_pylist(), strict=True))

    def _query(self, statement: str) -> pa.Table:
        try:
            with self._connection.cursor() as cursor:
                if self._statement_options:
                    cursor.adbc_statement.set_options(**self._statement_options)
                cursor.execute(statement)
                return cursor.fetch_arrow_table()
        except adbc_driver_manager.Error as exc:
            raise ColumnReadError(f"columnar read failed: {exc}") from exc
