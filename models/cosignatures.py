"""The witnesses' cosignatures of the log's checkpoints, beside the checkpoints in the ledger's database.

Each row is one witness's cosignature line for the checkpoint of one size, stored after it verified
(``pipelines/witnessing.py``); the table is append-only like the checkpoints. What the log publishes at
``GET /checkpoint`` is read here: the newest checkpoint with every cosignature it gathered, and, when the
log has witnesses, the newest one they cosigned (a tree no witness has seen yet is not published).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from models.database import fetch_all, fetch_rows, is_sqlite, reading
from models.tables import CheckpointCosignature
from qerberos.errors import LedgerError
from qerberos.verifier import Cosignature

__all__ = ["CosignatureStore"]

_cosignatures = CheckpointCosignature.__table__  # type: ignore[attr-defined]
_NEWEST = "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1"
_NEWEST_WITNESSED = (
    "SELECT size, note FROM checkpoints c WHERE EXISTS"
    " (SELECT 1 FROM checkpoint_cosignatures s WHERE s.size = c.size) ORDER BY size DESC LIMIT 1"
)
_LINES = "SELECT line FROM checkpoint_cosignatures WHERE size = ? ORDER BY witness, key_id"
_SIZES = "SELECT witness, max(size) FROM checkpoint_cosignatures GROUP BY witness"
# the oldest checkpoint a witness has not cosigned: the first one above the largest it cosigned
_FIRST_AFTER = "SELECT min(created_at_ms) FROM checkpoints WHERE size > ?"


class CosignatureStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, size: int, cosignatures: Sequence[tuple[Cosignature, str]]) -> None:
        """Keep verified cosignatures of the checkpoint of ``size`` with their lines; a witness's first one
        of a size stays (a re-submission's newer timestamp is not kept)."""
        rows = [
            {"size": size, "witness": c.name, "key_id": c.key_id, "cosigned_at": c.timestamp, "line": line}
            for c, line in cosignatures
        ]
        if not rows:
            return
        dialect_insert = sqlite_insert if is_sqlite(self._engine) else pg_insert
        try:
            with self._engine.begin() as connection:
                connection.execute(dialect_insert(_cosignatures).values(rows).on_conflict_do_nothing())
        except SQLAlchemyError as exc:
            raise LedgerError("could not store cosignatures") from exc

    def sizes(self) -> dict[str, int]:
        """The largest checkpoint size each witness (by key name) has cosigned."""
        with reading(self._engine) as connection:
            return {str(witness): int(size) for witness, size in fetch_rows(connection, _SIZES, ())}

    def newest(self) -> tuple[int, str] | None:
        """The size and signed note of the newest checkpoint, as the log signed it (no cosignatures)."""
        with reading(self._engine) as connection:
            rows = fetch_rows(connection, _NEWEST, ())
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def published(self, *, witnessed: bool) -> str | None:
        """The checkpoint the log publishes, its cosignature lines appended: the newest, or with ``witnessed``
        the newest one a witness cosigned (the newest, before any was); None before the first checkpoint."""
        with reading(self._engine) as connection:
            rows = fetch_rows(connection, _NEWEST_WITNESSED, ()) if witnessed else []
            rows = rows or fetch_rows(connection, _NEWEST, ())
            if not rows:
                return None
            ((size, note),) = rows
            lines = fetch_rows(connection, _LINES, (size,))
        return str(note) + "".join(str(line) for (line,) in lines)

    def lag_seconds(self, witnesses: Sequence[str]) -> dict[str, float]:
        """For each witness (by key name): how long the oldest checkpoint it has not cosigned has waited;
        0 when it cosigned the newest."""
        cosigned = self.sizes()
        queries = [(_FIRST_AFTER, (cosigned.get(name, -1),)) for name in witnesses]
        with reading(self._engine) as connection:
            found = fetch_all(connection, queries) if queries else []
        now = time.time()
        return {
            name: 0.0 if created_ms is None else max(0.0, now - created_ms / 1000)
            for name, ((created_ms,),) in zip(witnesses, found, strict=True)
        }
