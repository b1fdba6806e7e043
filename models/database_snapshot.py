"""A consistent copy of the ledger's database, and what it holds: the database side of ``qerberos backup`` and
``qerberos restore``.

``snapshot_sqlite`` copies a SQLite database in one read transaction; ``snapshot_postgres`` runs ``pg_dump``
on the snapshot of a ``REPEATABLE READ`` transaction it exports. Both answer the copy's tree size, Merkle
root and signed checkpoints (``DatabaseSnapshot``), read from the very same state that was copied.
``tree_head`` reads a connection's size and root; ``libpq_url`` and ``run_pg_tool`` serve ``pg_dump`` and
``pg_restore``. For a restore: ``restore_postgres_dump`` loads a dump into a schema, ``current_schema`` and
``run_admin_statement`` are the admin statements around it, ``make_self_contained`` folds a SQLite WAL into its file.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import psycopg
from sqlalchemy import Connection, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from models import merkle
from models.tables import CheckpointRow, LedgerEntry, MerkleNode
from qerberos.errors import ConfigurationError, DependencyUnavailableError, LedgerError

__all__ = [
    "DatabaseSnapshot",
    "current_schema",
    "libpq_url",
    "make_self_contained",
    "restore_postgres_dump",
    "run_admin_statement",
    "run_pg_tool",
    "snapshot_postgres",
    "snapshot_sqlite",
    "tree_head",
]

_entries = LedgerEntry.__table__  # type: ignore[attr-defined]
_nodes = MerkleNode.__table__  # type: ignore[attr-defined]
_checkpoints = CheckpointRow.__table__  # type: ignore[attr-defined]


def tree_head(connection: Connection) -> tuple[int, bytes]:
    """The ledger's size and Merkle root as this connection sees it (O(log n) rows)."""
    last = connection.execute(select(_entries.c.seq).order_by(_entries.c.seq.desc()).limit(1)).scalar()
    size = 0 if last is None else int(last) + 1
    wanted = merkle.root_keys(size)
    found: dict[tuple[int, int], bytes] = {}
    leaves = [index for level, index in wanted if level == 0]
    if leaves:
        rows = connection.execute(select(_entries.c.seq, _entries.c.leaf_hash).where(_entries.c.seq.in_(leaves)))
        found.update({(0, row.seq): row.leaf_hash for row in rows})
    for level, index in wanted:
        if level > 0:
            node = connection.execute(
                select(_nodes.c.hash).where(_nodes.c.level == level, _nodes.c.idx == index)
            ).scalar()
            if node is not None:
                found[(level, index)] = node
    return size, merkle.root(size, found)


def libpq_url(database_url: str) -> str:
    """The URL as libpq (pg_dump, pg_restore, psycopg) reads it: no SQLAlchemy driver suffix."""
    scheme, _, rest = database_url.partition("://")
    if scheme.startswith("postgres"):
        return f"postgresql://{rest}"
    raise ConfigurationError(f"not a PostgreSQL URL: {scheme}://...")


def run_pg_tool(arguments: list[str]) -> str:
    """Run pg_dump or pg_restore and return its output; its complaint becomes a LedgerError."""
    tool = arguments[0]
    if shutil.which(tool) is None:
        raise DependencyUnavailableError(f"{tool} is not installed (Debian package postgresql-client)")
    completed = subprocess.run(arguments, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise LedgerError(f"{tool} failed (exit {completed.returncode}): {completed.stderr.strip()[-2000:]}")
    return completed.stdout


def snapshot_sqlite(database_url: str, target: Path) -> DatabaseSnapshot:
    """Copy the SQLite database at ``database_url`` to ``target`` in one read transaction."""
    path = Path(make_url(database_url).database or "")
    if not path.is_file():
        raise ConfigurationError(f"no ledger database at {path}: run `qerberos init`")
    target.parent.mkdir(parents=True)
    try:
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
        copy = sqlite3.connect(target)
        try:
            # pages=-1: the whole database in one step, under one read transaction, so it is one snapshot
            # (a step-wise copy restarts whenever another connection writes, and could chase a busy log).
            source.backup(copy, pages=-1)
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
            source.close()
    except sqlite3.Error as exc:
        raise LedgerError(f"SQLite backup failed: {exc}") from exc
    engine = create_engine(f"sqlite:///{target}", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return _read_snapshot(connection, None)
    finally:
        engine.dispose()


def snapshot_postgres(database_url: str, target: Path) -> DatabaseSnapshot:
    """``pg_dump`` the ledger's schema to ``target`` (custom format) from the snapshot it reads itself."""
    url = libpq_url(database_url)
    target.parent.mkdir(parents=True)
    engine = create_engine("postgresql+psycopg://" + url.split("://", 1)[1], poolclass=NullPool)
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection:
            snapshot_id = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            schema = connection.execute(text("SELECT current_schema()")).scalar()
            if schema is None:
                raise ConfigurationError("no ledger schema on the database's search_path: run `qerberos init`")
            snapshot = _read_snapshot(connection, str(schema))
            # The exporting transaction stays open while pg_dump reads from the very same snapshot.
            run_pg_tool(
                ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--schema={schema}",
                 f"--snapshot={snapshot_id}", f"--file={target}", f"--dbname={url}"]
            )  # fmt: skip
            connection.rollback()
            return snapshot
    except SQLAlchemyError as exc:
        raise DependencyUnavailableError(f"PostgreSQL backup failed: {exc.__class__.__name__}") from exc
    finally:
        engine.dispose()


@dataclasses.dataclass(frozen=True, slots=True)
class DatabaseSnapshot:
    """The copied ledger's size, root and signed checkpoints (oldest first), and its PostgreSQL schema."""

    size: int
    root: bytes
    notes: list[str]
    schema: str | None


def _read_snapshot(connection: Connection, schema: str | None) -> DatabaseSnapshot:
    try:
        size, root = tree_head(connection)
        notes = [
            str(n) for n in connection.execute(select(_checkpoints.c.note).order_by(_checkpoints.c.size)).scalars()
        ]
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot read the ledger in the snapshot: {exc.__class__.__name__}") from exc
    return DatabaseSnapshot(size, root, notes, schema)


def restore_postgres_dump(url: str, dump: Path, schema: str, *, clean: bool) -> None:
    """pg_restore of the dump's objects into ``schema`` (created if missing), in one transaction.

    The schema itself is left out of the restore list: it may already exist (``public`` always does), and
    ``--clean`` then drops and recreates the objects in it, never the schema.
    """
    run_admin_statement(url, f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    toc = run_pg_tool(["pg_restore", "--list", str(dump)])
    keep = [line for line in toc.splitlines() if not re.search(r"\b(SCHEMA|COMMENT) - (SCHEMA )?\S+ ", line)]
    with tempfile.NamedTemporaryFile("w", suffix=".list", encoding="utf-8") as listing:
        listing.write("\n".join(keep) + "\n")
        listing.flush()
        options = ["--clean", "--if-exists"] if clean else []
        run_pg_tool(["pg_restore", *options, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
                     f"--use-list={listing.name}", f"--dbname={url}", str(dump)])  # fmt: skip


def current_schema(url: str) -> str:
    """The schema the ledger lives in for this URL: the first entry of its search_path."""
    try:
        with psycopg.connect(url, connect_timeout=10) as connection:
            row = connection.execute("SELECT current_schema(), current_setting('search_path')").fetchone()
    except psycopg.Error as exc:
        raise LedgerError(f"cannot reach the target database: {exc.__class__.__name__}") from exc
    assert row is not None
    if row[0] is not None:
        return str(row[0])
    entries = [entry.strip().strip('"') for entry in str(row[1]).split(",")]
    return next((entry for entry in entries if entry and entry != "$user"), "public")


def run_admin_statement(url: str, statement: str) -> None:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as connection:
            connection.execute(statement.encode())
    except psycopg.Error as exc:
        raise LedgerError(f"{statement.split(' (')[0]} failed: {exc}") from exc


def make_self_contained(path: Path) -> None:
    """Fold a SQLite database's WAL into its file and leave WAL mode: one file, no log beside it."""
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("PRAGMA journal_mode=DELETE")
    connection.close()
