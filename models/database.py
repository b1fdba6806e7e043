"""Engines, schema and the append-only guarantees, for SQLite (embedded) and PostgreSQL alike.

History is protected by the database itself: triggers refuse UPDATE and DELETE on the append-only
tables (and TRUNCATE on PostgreSQL), and ``event_details`` refuses UPDATE and any DELETE that no recorded
erasure covers: a row goes only after the log holds the ``gdpr.erasure`` event of its entry's identity
(``Ledger.erase`` appends it first, then deletes). Appends are serialised by one sequencer that the
database enforces: ``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import select
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
from psycopg.types.string import BytesBinaryDumper
from sqlalchemy import Connection, Engine, Selectable, Table, create_engine, event, inspect
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DisconnectionError, IntegrityError, SQLAlchemyError
from sqlmodel import SQLModel

from models.records import ERASURE_REF_PREFIX, ERASURE_TYPE
from models.tables import APPEND_ONLY_TABLES, LEDGER_TABLES
from qerberos.errors import DependencyUnavailableError, LedgerError

logger = logging.getLogger(__name__)

# Arbitrary but fixed: the advisory lock key that every qerberos process takes to append.
_SEQUENCER_LOCK_KEY = 0x71_65_72_62  # "qerb"
_IMMEDIATE = "qerberos_immediate"
_IDLE = psycopg.pq.TransactionStatus.IDLE


def create_ledger_engine(database_url: str) -> Engine:
    """An engine with the durability settings the ledger needs; an SQLite file is private (``private_sqlite``)."""
    url = _driver_url(database_url)
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is not None:
            private_sqlite(path)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=10)
    event.listen(engine, "checkout", _refuse_closed_by_server)
    return engine


def _driver_url(database_url: str) -> str:
    if database_url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + database_url.split("://", 1)[1]
    return database_url


def sqlite_file(database_url: str) -> Path | None:
    """The file of an SQLite URL; ``None`` for another database or an in-memory one."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")
"""A database file and the files SQLite keeps beside it (the main file first)."""


def private_sqlite(path: Path) -> None:
    """The database file created mode 0600 before SQLite creates it (SQLite gives its ``-wal``, ``-shm`` and
    ``-journal`` the mode of the database file): it holds every event's personal details. Group and other
    access are taken from files an earlier version created 0644; a file of another owner is left as it is."""
    if path.parent.is_dir():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    for suffix in SQLITE_SUFFIXES:
        file = Path(f"{path}{suffix}")
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)
                logger.info("%s was readable by others: now mode 600", file)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=60000")
    _write_ahead_log(cursor)
    cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged append survives power loss
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA analysis_limit=1000")  # ANALYZE samples: milliseconds, whatever the size
    cursor.close()


_JOURNAL_MODE_ATTEMPTS = 600


def _write_ahead_log(cursor: Any) -> None:
    """Switch a new database file to WAL. The switch answers "database is locked" at once, without waiting
    out the busy timeout, while another connection opening the same new file holds a lock (processes
    starting together on an empty home), so it is tried again for up to a minute."""
    for attempt in range(_JOURNAL_MODE_ATTEMPTS):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == _JOURNAL_MODE_ATTEMPTS - 1:
                raise
            time.sleep(0.1)


def _refuse_closed_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Hand out no pooled PostgreSQL connection that the server has closed (a restart, a terminated backend).

    An idle connection has nothing to read unless the server spoke first: it says why it closes and then
    closes. One non-blocking ``poll`` finds that, where ``pool_pre_ping`` spent a round trip to the server
    on every checkout; the pool replaces a connection refused here with a fresh one.
    """
    if dbapi_connection.closed:
        raise DisconnectionError("connection closed")
    poller = select.poll()  # not select.select: a busy process may hold descriptors past its limit of 1024
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):
        raise DisconnectionError("the server spoke on an idle connection: it is closing it")


def _begin_sqlite(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(_IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def refresh_statistics(engine: Engine) -> None:
    """Give SQLite's planner fresh statistics (PostgreSQL's autovacuum does this by itself).

    Without them a search filtered on actor and type picked the type index and scanned: ~8 s a page at
    1M events, against ~14 ms with them. The ledger calls this each time its size doubles.
    """
    if is_sqlite(engine):
        with database_errors("refreshing the planner's statistics"), engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")


RowWriter = Callable[[tuple[Any, ...]], None]


@contextlib.contextmanager
def row_writer(connection: Connection, table: str, columns: Sequence[str]) -> Iterator[RowWriter]:
    """Write positional rows in bulk inside the caller's transaction: the hot path of every append.

    PostgreSQL takes a binary ``COPY ... FROM STDIN`` (psycopg 3): one streamed command with the same
    constraints, triggers and all-or-nothing transaction as INSERT, measured here at 1.5-2x the appends per
    second of a pipelined executemany; the binary format spares both sides the text encoding and parsing of
    integers and hashes (~20% of the server's CPU per row). Each row goes out as it is written, so the server
    inserts and indexes the rows while the caller is still computing the next ones. SQLite, which runs in
    this process and gains nothing from streaming, takes the rows in one bare driver ``executemany`` when the
    block ends. A block that raises writes nothing (the COPY is aborted).
    """
    names = ", ".join(columns)
    if connection.dialect.name == "sqlite":
        rows: list[tuple[Any, ...]] = []
        yield rows.append
        if rows:
            markers = ", ".join(["?"] * len(columns))
            connection.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({markers})", rows)
        return
    psycopg_connection: Any = connection.connection.driver_connection
    with (
        psycopg_connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        # by type name, bytea would take the DB-API's dumper (Python, to accept ``psycopg.Binary``): ~1 us a value
        cursor.adapters.register_dumper(None, BytesBinaryDumper)
        copy.set_types(_postgres_types(table, tuple(columns)))
        yield copy.write_row


@functools.cache
def _postgres_types(table: str, columns: tuple[str, ...]) -> list[str]:
    """The PostgreSQL type of each column (``bigint``, ``varchar``, ...), as a binary COPY must declare it."""
    table_columns = SQLModel.metadata.tables[table].columns
    dialect = PGDialect()  # type: ignore[no-untyped-call]
    return [table_columns[name].type.compile(dialect=dialect).split("(")[0].lower() for name in columns]


def insert_rows(connection: Connection, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
    """``row_writer`` for rows already at hand."""
    with row_writer(connection, table, columns) as write:
        for row in rows:
            write(row)


def fetch_rows(connection: Connection, statement: str, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Rows as plain tuples from the driver's own cursor, for bulk reads (no SQLAlchemy row objects).

    ``statement`` uses ``?`` placeholders (and no other question mark).
    """
    (rows,) = fetch_all(connection, [(statement, parameters)])
    return rows


Query = tuple[str, Sequence[Any]]
"""A statement with ``?`` placeholders (and no other question mark) and the values of its placeholders."""
DRIVER_ERRORS = (sqlite3.Error, psycopg.Error)
"""What ``fetch_rows`` and ``fetch_all`` raise: the drivers' own errors (they bypass SQLAlchemy's wrapping)."""
DATABASE_ERRORS = (SQLAlchemyError, *DRIVER_ERRORS)
"""Every error a database can raise through SQLAlchemy or a driver's own cursor."""


def fetch_all(connection: Connection, queries: Sequence[Query]) -> list[list[tuple[Any, ...]]]:
    """The rows of each query, as ``fetch_rows`` reads them, in one round trip to PostgreSQL.

    PostgreSQL runs the queries in order, each in a snapshot of its own as in READ COMMITTED; psycopg's
    pipeline mode sends them together, with the BEGIN that opens the transaction if one is due (which psycopg
    would otherwise send alone and wait for), and waits once. SQLite runs in this process: there the queries
    simply run one after the other.
    """
    if connection.dialect.name == "sqlite":
        return [
            _rows(connection.connection.cursor().execute(statement, tuple(values))) for statement, values in queries
        ]
    psycopg_connection: Any = connection.connection.driver_connection
    opens_transaction = not psycopg_connection.autocommit and psycopg_connection.info.transaction_status == _IDLE
    if len(queries) == 1 and not opens_transaction:
        ((statement, values),) = queries
        return [_rows(psycopg_connection.cursor().execute(statement.replace("?", "%s"), tuple(values)))]
    with psycopg_connection.pipeline():
        cursors = [
            psycopg_connection.cursor().execute(statement.replace("?", "%s"), tuple(values))
            for statement, values in queries
        ]
    return [_rows(cursor) for cursor in cursors]


def _rows(cursor: Any) -> list[tuple[Any, ...]]:
    try:
        return list(cursor.fetchall())
    finally:
        cursor.close()


def create_missing_tables(engine: Engine, tables: Sequence[Table]) -> None:
    """Create those of ``tables`` that are missing, holding the sequencer (``sequenced``): on SQLite the check
    for each table and its creation are one write transaction, where a deferred one failed ("database is
    locked") when another writer, the service's periodic checkpoint, committed between them; on PostgreSQL two
    processes starting at once do not create the same table twice."""
    with sequenced(engine) as connection:
        SQLModel.metadata.create_all(connection, tables=list(tables))


def has_table(engine: Engine, name: str) -> bool:
    """Whether the database holds table ``name`` (False when it cannot be asked)."""
    try:
        return inspect(engine).has_table(name)
    except SQLAlchemyError:
        return False


def read_frame(engine: Engine, statement: Selectable, what: str) -> pl.DataFrame:
    """The rows of one read-only ``statement`` as a Polars frame; a database error is ``LedgerError`` (about
    ``what``)."""
    try:
        with engine.connect() as connection:
            return pl.read_database(statement, connection)
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot read {what}: {exc.__class__.__name__}") from exc


@contextlib.contextmanager
def database_errors(what: str) -> Iterator[None]:
    """The block's database errors (``DATABASE_ERRORS``: a lost server, a dropped schema, a full disk) become
    ``LedgerError``, which the API answers 503 (retryable), with ``what`` failed and the driver's first line
    in its message for the log. Errors of the block's own code pass unchanged."""
    try:
        yield
    except DATABASE_ERRORS as exc:
        raise LedgerError(f"{what} failed: {_first_line(exc)}") from exc


_DATA_ERRORS = (
    DataError,
    IntegrityError,
    sqlite3.DataError,
    sqlite3.IntegrityError,
    psycopg.DataError,
    psycopg.IntegrityError,
)


def refused_for_its_data(exc: BaseException | None) -> bool:
    """Whether a database error refused what was written (a value it cannot store, a constraint), as opposed
    to refusing to write at all (a full disk, a lost server, a missing table)."""
    return isinstance(exc, _DATA_ERRORS)


def unusable_database_cause(exc: BaseException) -> str | None:
    """The driver's first line when ``exc``, or an exception behind it, is the database failing as a whole
    (unreachable, refusing the login, locked, its schema missing) rather than refusing a row for its data;
    None when no database error is behind ``exc``."""
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DATABASE_ERRORS) and not refused_for_its_data(current):
            return _first_line(current)
        current = current.__cause__ or current.__context__
    return None


def _first_line(exc: BaseException) -> str:
    """The class and first line of the driver's message: never the SQL text or parameters SQLAlchemy adds."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0][:200]}" if lines else type(cause).__name__


@contextlib.contextmanager
def connected(engine: Engine) -> Iterator[Connection]:
    """A connection (PostgreSQL: in a transaction SQLAlchemy begins on first use) whose database errors,
    from connecting to closing, become ``LedgerError``: every read of the models goes through this or
    ``reading``, so no read path answers an unmapped driver error."""
    with database_errors("database read"), engine.connect() as connection:
        yield connection


@contextlib.contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """``connected`` for a few reads: on PostgreSQL outside any transaction (autocommit), so that neither a
    BEGIN nor the ROLLBACK of returning it to the pool costs a round trip; each statement reads a snapshot
    of its own, as it would in a READ COMMITTED transaction."""
    with connected(engine) as connection:
        if not is_sqlite(engine):
            connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection


@contextlib.contextmanager
def one_snapshot(engine: Engine) -> Iterator[Connection]:
    """``connected`` whose statements all read one snapshot, so that a page and its total agree while others
    write: on PostgreSQL a REPEATABLE READ transaction; on SQLite the deferred transaction ``connected`` begins
    already reads one snapshot of the WAL from its first statement to its end."""
    with connected(engine) as connection:
        if not is_sqlite(engine):
            connection.execution_options(isolation_level="REPEATABLE READ")
        yield connection


@contextlib.contextmanager
def sequenced(engine: Engine) -> Iterator[Connection]:
    """A write transaction that holds the ledger's one sequencer until it commits or rolls back."""
    with database_errors("ledger write"):
        if is_sqlite(engine):
            with engine.connect().execution_options(**{_IMMEDIATE: True}) as connection, connection.begin():
                yield connection
        else:
            with engine.begin() as connection:
                fetch_rows(connection, "SELECT pg_advisory_xact_lock(?)", (_SEQUENCER_LOCK_KEY,))  # BEGIN rides along
                yield connection


def is_outage(exc: BaseException) -> bool:
    """Whether a failed write failed as a whole (the database down, locked or full, its schema gone) rather
    than refusing one row for its data (``refused_for_its_data``) or failing in code of ours."""
    if isinstance(exc, LedgerError | DependencyUnavailableError):
        return not refused_for_its_data(exc.__cause__)
    return isinstance(exc, DATABASE_ERRORS) and not refused_for_its_data(exc)


def create_schema(engine: Engine) -> None:
    """Create the ledger tables, their indexes (also those added since a table was made) and their guards;
    safe to run again, also by several processes starting at once: all of it is one transaction holding the
    sequencer, where PostgreSQL refused the second of two concurrent ``CREATE OR REPLACE FUNCTION`` ("tuple
    concurrently updated") and a replica starting beside another exited."""
    tables = [model.__table__ for model in LEDGER_TABLES]  # type: ignore[union-attr]
    with sequenced(engine) as connection:
        SQLModel.metadata.create_all(connection, tables=tables)
        for table in tables:
            for index in table.indexes:
                index.create(connection, checkfirst=True)
        if is_sqlite(engine):
            _sqlite_guards(connection)
        else:
            _postgres_guards(connection)


def _sqlite_guards(connection: Connection) -> None:
    for table in APPEND_ONLY_TABLES:
        for operation in ("UPDATE", "DELETE"):
            connection.exec_driver_sql(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {operation} refused'); END"
            )
    connection.exec_driver_sql(
        "CREATE TRIGGER IF NOT EXISTS event_details_no_update BEFORE UPDATE ON event_details "
        "BEGIN SELECT RAISE(ABORT, 'event_details can only be erased, never changed'); END"
    )
    connection.exec_driver_sql(
        "CREATE TRIGGER IF NOT EXISTS event_details_erased_only BEFORE DELETE ON event_details "
        f"WHEN NOT EXISTS ({_ERASURE_OF_OLD}) BEGIN SELECT RAISE(ABORT, '{_UNRECORDED_ERASURE}'); END"
    )


_ERASURE_OF_OLD = (
    "SELECT 1 FROM ledger_entries owner JOIN ledger_entries erasure"
    f" ON erasure.type = '{ERASURE_TYPE}' AND erasure.ref = '{ERASURE_REF_PREFIX}' || owner.actor_squid_id"
    " AND erasure.seq > owner.seq WHERE owner.seq = OLD.seq"
)
"""The recorded erasure that allows deleting the details row OLD: a later ``gdpr.erasure`` of its identity."""
_UNRECORDED_ERASURE = "event_details rows are deleted only by a recorded erasure (qerberos erase)"


_PG_GUARD_FUNCTION = """
CREATE OR REPLACE FUNCTION qerberos_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%% is append-only: %% refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
"""


_PG_ERASURE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION qerberos_refuse_unrecorded_erasure() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS ({_ERASURE_OF_OLD}) THEN
        RAISE EXCEPTION '{_UNRECORDED_ERASURE}' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END $$;
"""


def _postgres_guards(connection: Connection) -> None:
    connection.exec_driver_sql(_PG_GUARD_FUNCTION)
    connection.exec_driver_sql(_PG_ERASURE_FUNCTION)
    guards = [(table, "UPDATE OR DELETE") for table in APPEND_ONLY_TABLES] + [("event_details", "UPDATE")]
    for table, operations in guards:
        connection.exec_driver_sql(
            f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE {operations} ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION qerberos_refuse_change()"
        )
    connection.exec_driver_sql(
        "CREATE OR REPLACE TRIGGER event_details_erased_only BEFORE DELETE ON event_details "
        "FOR EACH ROW EXECUTE FUNCTION qerberos_refuse_unrecorded_erasure()"
    )
    for table in (*APPEND_ONLY_TABLES, "event_details"):
        connection.exec_driver_sql(
            f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION qerberos_refuse_change()"
        )
