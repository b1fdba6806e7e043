"""Ledger benchmark: append, verify, proofs and memory, each beside its physical limit.

``python -m bench ledger --backend sqlite --events 1000000``
``python -m bench ledger --backend postgres --events 200000``
``python -m bench ledger --backend sqlite --events 10000000 --home DIR`` (proofs and peak memory at 10M; the
build takes 15-40 minutes here, so ``--home`` keeps the log in ``DIR``, and a second run with the same ``DIR``
measures verification, proofs, search and memory on it without building again)

Figures (one JSON object per line):
- ``bare_executemany_rows_per_s``: the same database taking the same rows as the appends (per event its
  ``ledger_entries`` row, its ``event_details`` row and the ``merkle_nodes`` it completes) through a bare
  executemany per table into a second, fresh ledger (same indexes and constraints, a commit per 1,000
  events); counted in events per second, so it compares with ``append_events_per_s`` directly;
- ``bare_copy_rows_per_s`` (PostgreSQL): the same rows through a bare binary COPY, as appends write them
  there: what the server itself takes, the real ceiling of appends on PostgreSQL;
- ``append_events_per_s``: ``Ledger.append`` in batches of 1,000 (of 10,000 beyond a million events, to
  build a 10-million-entry log in one sitting: ``--events 10000000``);
- ``raw_sha256_per_s``, ``sha256_stream_mb_per_s``, ``columnar_read_rows_per_s`` and ``verify_events_per_s``:
  the full re-derivation against its limits: raw leaf hashing, one hashlib call per 300-byte leaf (the issue's
  own yardstick); the hash function's own speed over one long stream, free of any per-call cost (what a
  native verifier could reach at best); and the verifier's read path (ADBC, Arrow columns) taking every
  entry and its details on one core, with no check made;
- ``sqlite_decode_rows_per_s`` (SQLite): SQLite itself decoding every column the verifier reads, with no
  driver between (one aggregate over them): how fast a native verifier could read at best;
- ``verify_ceiling_events_per_s``: what any verifier could reach on every core this process may use if it
  did nothing but read at the faster of those rates and hash each event's SHA-256 blocks (its leaf, chain
  link, salted details and a Merkle node) at stream speed; ``sha256_blocks_per_event`` is counted from the
  rows read;
- ``inclusion_proof_ms``/``consistency_proof_ms``: p50 and p99 of proofs at random positions;
- ``search_by_actor_ms``: p50 and p99 of ``Ledger.search`` by one actor (a page of 100, the total counted: the
  ledger's part of ``GET /audit?actor=``), and its CPU milliseconds per search;
- ``peak_rss_mb``: the process's peak resident memory.

This is the one file outside ``models/`` that names the ledger's tables and writes SQL: its baselines (the bare
inserts and COPY, SQLite's own decoding) measure the database itself, with nothing of ours between, which is
what makes them the physical limits the ledger's figures are compared with.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import random
import resource
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import create_engine, text

from models import merkle
from models.canonical import canonical_json, canonical_record, commit_canonical_details, to_epoch_ms
from models.database import create_ledger_engine, create_schema, insert_rows, sequenced
from models.ledger import Ledger, initialise, time_ordered_id
from models.ledger_columns import ColumnReader
from models.records import Actor, NewEvent, SearchQuery
from models.tables import EventDetails, LedgerEntry, MerkleNode
from models.verification import verify_ledger
from qerberos.settings import load_settings
from qerberos.verifier import HASH_SIZE

_BATCH = 1000
_ACTORS = 500  # events cycle through this many actors: 400 matches an actor in 200,000 events
_BARE_ROWS = 1_000_000  # the bare logs grow with the appended one, up to this many events
_LARGE = 1_000_000  # beyond this many events the log is built in larger batches, to be run once by hand
_LARGE_BATCH = 10_000
_READ_CHUNK = 1 << 14  # the verifier's range
_STREAM = os.urandom(1 << 20)
_STREAM_MB = 256
_SHA256_BLOCK = 64
_DECODED_COLUMNS = (
    "e.id", "e.type", "e.ref", "e.actor_squid_id", "e.actor_sub_id", "e.actor_dao_id", "e.layer", "e.verdict",
    "e.details_commitment", "e.cid", "e.source", "e.canonical", "e.leaf_hash", "e.chain_hash", "d.salt", "d.details",
)  # fmt: skip
_DECODE_ALL = (
    "SELECT sum(e.seq + e.occurred_at_ms + e.received_at_ms"
    + "".join(f" + ifnull(length({column}), 0)" for column in _DECODED_COLUMNS)
    + ") FROM ledger_entries e LEFT JOIN event_details d ON d.seq = e.seq"
)
_TABLES = {
    table.__tablename__: tuple(column.name for column in table.__table__.columns)  # type: ignore[union-attr]
    for table in (LedgerEntry, EventDetails, MerkleNode)
}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench ledger")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--proofs", type=int, default=2000)
    parser.add_argument("--searches", type=int, default=500)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--home", type=Path, help="SQLite: keep the log in this directory and reuse it next time")
    args = parser.parse_args(argv)
    if args.home is not None and args.backend != "sqlite":
        parser.error("--home keeps a SQLite log; PostgreSQL logs live in a schema dropped after the run")
    if args.events < _BATCH:
        parser.error(f"--events must be at least one batch of appends ({_BATCH})")
    if args.proofs < 2 or args.searches < 2:
        parser.error("--proofs and --searches need at least 2 samples each, to take percentiles")

    kept = contextlib.nullcontext(str(args.home.resolve())) if args.home else tempfile.TemporaryDirectory()
    with kept as home, tempfile.TemporaryDirectory() as scratch:
        os.environ["QERBEROS_HOME"] = home
        tag = uuid.uuid4().hex[:8]
        # the benchmarked ledger, then one fresh ledger per bare way of writing the same rows
        schemas = (f"bench_{tag}", f"bench_{tag}_bare", f"bench_{tag}_copy")
        if args.backend == "postgres":
            for schema in schemas:
                _admin(args.postgres_url, f"CREATE SCHEMA {schema}")
            os.environ["QERBEROS_DATABASE_URL"] = _in_schema(args.postgres_url, schemas[0])
            bare_urls = {
                "executemany": _in_schema(args.postgres_url, schemas[1]),
                "copy": _in_schema(args.postgres_url, schemas[2]),
            }
        else:  # fresh each run, beside a kept log too; SQLite has no COPY
            bare_urls = {"executemany": f"sqlite:///{Path(scratch) / 'bare.db'}"}
        try:
            _run(args, bare_urls)
        finally:
            if args.backend == "postgres":
                for schema in schemas:
                    _admin(args.postgres_url, f"DROP SCHEMA {schema} CASCADE")


def _in_schema(url: str, schema: str) -> str:
    return f"{url}?options=-csearch_path%3D{schema}"


def _run(args: argparse.Namespace, bare_urls: dict[str, str]) -> None:
    ledger = initialise(load_settings())
    missing = args.events - ledger.size()
    if missing > 0:
        _build(args, ledger, missing, bare_urls)
    else:
        _report(backend=args.backend, figure="reused", events=ledger.size())
    ledger.checkpoint(force=True)

    sample = [os.urandom(300) for _ in range(100_000)]
    started = time.perf_counter()
    for data in sample:
        hashlib.sha256(b"\x00" + data).digest()
    _report(figure="raw_sha256_per_s", value=round(len(sample) / (time.perf_counter() - started)))
    del sample
    stream_mb_per_s = _stream_rate()
    _report(figure="sha256_stream_mb_per_s", value=stream_mb_per_s)
    read_rows_per_s, blocks_per_event = _read_limit(ledger)
    _report(backend=args.backend, figure="columnar_read_rows_per_s", value=read_rows_per_s)
    if args.backend == "sqlite":
        decode_rows_per_s = _decode_rate(ledger)
        _report(backend=args.backend, figure="sqlite_decode_rows_per_s", value=decode_rows_per_s)
        read_rows_per_s = max(read_rows_per_s, decode_rows_per_s)
    seconds_per_event = 1 / read_rows_per_s + blocks_per_event * _SHA256_BLOCK / (stream_mb_per_s * 1e6)
    ceiling = len(os.sched_getaffinity(0)) / seconds_per_event
    _report(
        backend=args.backend, figure="verify_ceiling_events_per_s", value=round(ceiling),
        sha256_blocks_per_event=round(blocks_per_event, 2),
    )  # fmt: skip
    started = time.perf_counter()
    report = verify_ledger(ledger)
    elapsed = time.perf_counter() - started
    assert report.intact, report
    _report(backend=args.backend, figure="verify_events_per_s", value=round(report.size / elapsed), events=report.size)

    size = ledger.size()
    for kind in ("inclusion", "consistency"):
        timings = []
        for _ in range(args.proofs):
            first = random.randrange(1, size)
            started = time.perf_counter()
            if kind == "inclusion":
                ledger.inclusion_proof(first - 1, size)
            else:
                ledger.consistency_proof(first, size)
            timings.append((time.perf_counter() - started) * 1000)
        cuts = statistics.quantiles(timings, n=100)
        _report(
            backend=args.backend, figure=f"{kind}_proof_ms", p50=round(cuts[49], 3), p99=round(cuts[98], 3), size=size
        )
    _report(backend=args.backend, figure="search_by_actor_ms", **_search_timings(ledger, args.searches), size=size)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _report(backend=args.backend, figure="peak_rss_mb", value=round(peak_mb), events=size)
    ledger.close()


def _build(args: argparse.Namespace, ledger: Ledger, missing: int, bare_urls: dict[str, str]) -> None:
    """Append ``missing`` events, measuring the appends against the bare limits."""
    batch = _BATCH if args.events <= _LARGE else _LARGE_BATCH
    appended = missing // batch * batch
    if not appended:
        raise SystemExit(f"the kept log lacks {missing} events, fewer than a batch of {batch}: ask for more")
    limits = {way: _BareInserts(url, way) for way, url in bare_urls.items()}
    first = ledger.size()  # event n is the log's n-th, also in a kept log that grows
    elapsed = 0.0
    for start in range(first, first + appended, batch):
        events = [_event(n) for n in range(start, start + batch)]
        for bare in limits.values():  # interleaved, so that limits and appends meet the same machine load
            while bare.rows < min(start + batch - first, _BARE_ROWS):
                bare.insert_batch()
        started = time.perf_counter()
        ledger.append(events)
        elapsed += time.perf_counter() - started
    for way, bare in limits.items():
        _report(backend=args.backend, figure=f"bare_{way}_rows_per_s", value=bare.rate(), events=bare.rows)
    _report(
        backend=args.backend, figure="append_events_per_s", value=round(appended / elapsed), batch=batch,
        events=appended,
    )  # fmt: skip


class _BareInserts:
    """A physical limit: the rows an append of 1,000 events writes (their ``ledger_entries`` and
    ``event_details`` rows and the ``merkle_nodes`` they complete), written bare into another, fresh ledger
    in the same database server (same indexes, constraints and durability settings), one commit per 1,000
    events under the same sequencer. ``way`` is how: ``executemany``, a bare driver executemany per table
    (the yardstick issue 2 names), or ``copy`` (PostgreSQL), the binary COPY that appends use there
    (``models.database.row_writer``): the most the server itself takes.

    The rows are those of the appended events (``_event``: the same values, timestamps, details and
    canonical text; only ids, receipt times and hashes differ, as they do between any two appends), made
    outside the timed part, so that memory stays flat and only the database is measured; ``rate`` counts
    events (entries), each with its details and nodes.
    """

    def __init__(self, url: str, way: str) -> None:
        self._engine = create_ledger_engine(url)
        self._way = way
        create_schema(self._engine)
        marker = "?" if self._engine.dialect.paramstyle == "qmark" else "%s"
        self._statements = {
            table: f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([marker] * len(columns))})"
            for table, columns in _TABLES.items()
        }
        self.rows = 0
        self._frontier: dict[merkle.Key, bytes] = {}
        self._elapsed = 0.0

    def insert_batch(self) -> None:
        now_ms = time.time_ns() // 1_000_000
        rows = [_bare_rows(n, now_ms) for n in range(self.rows, self.rows + _BATCH)]
        entries = [entry for entry, _ in rows]
        nodes, self._frontier = merkle.append_batch(self.rows, [row[-2] for row in entries], self._frontier)
        batch: dict[str, list[tuple[Any, ...]]] = {
            "ledger_entries": entries,
            "event_details": [details for _, details in rows],
            "merkle_nodes": nodes,
        }
        started = time.perf_counter()
        with sequenced(self._engine) as connection:
            for table, statement in self._statements.items():
                if self._way == "copy":
                    insert_rows(connection, table, _TABLES[table], batch[table])
                else:
                    connection.exec_driver_sql(statement, batch[table])
        self._elapsed += time.perf_counter() - started
        self.rows += _BATCH

    def rate(self) -> int:
        self._engine.dispose()
        return round(self.rows / self._elapsed)


def _search_timings(ledger: Ledger, count: int) -> dict[str, float]:
    """``Ledger.search`` by one actor (a page of 100, the total counted), as ``GET /audit?actor=`` calls it."""
    actors = [f"did:squid:user{random.randrange(_ACTORS)}" for _ in range(count)]
    timings, cpu = [], 0.0
    for actor in actors:
        started, started_cpu = time.perf_counter(), time.process_time()
        page = ledger.search(SearchQuery(actor=actor, limit=100))
        cpu += time.process_time() - started_cpu
        timings.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(timings, n=100)
    return {"p50": round(cuts[49], 3), "p99": round(cuts[98], 3), "cpu_ms": round(cpu * 1000 / count, 3),
            "matches": page.total_count}  # fmt: skip


def _stream_rate() -> int:
    """SHA-256 over one long stream, in MB/s: the hash function itself, with no per-call cost."""
    digest = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(_STREAM_MB):
        digest.update(_STREAM)
    return round(_STREAM_MB / (time.perf_counter() - started))


def _read_limit(ledger: Ledger) -> tuple[int, float]:
    """Rows per second of reading every entry with its details through the verifier's read path, one range
    at a time on one core; and the SHA-256 blocks verification hashes per event, counted from those rows."""
    size = ledger.size()
    blocks = 0
    elapsed = 0.0
    with ColumnReader.open(ledger.engine.url) as reader:
        for start in range(0, size, _READ_CHUNK):
            started = time.perf_counter()
            entries = reader.entries(start, start + _READ_CHUNK)
            details = reader.details(start, start + _READ_CHUNK)
            elapsed += time.perf_counter() - started
            leaves = pc.add(pc.binary_length(entries["canonical"]), 1)  # 0x00 || canonical
            salted = pc.add(pc.binary_length(details["salt"]), pc.binary_length(details["details"]))
            blocks += _blocks(leaves) + _blocks(salted) + entries.num_rows * _LINK_AND_NODE_BLOCKS
    return round(size / elapsed), blocks / size


def _decode_rate(ledger: Ledger) -> int:
    """Rows per second of SQLite decoding every column the verifier reads, inside SQLite, on one core."""
    size = ledger.size()
    with ledger.engine.connect() as connection:
        started = time.perf_counter()
        connection.exec_driver_sql(_DECODE_ALL).one()
        return round(size / (time.perf_counter() - started))


def _blocks(lengths: pa.ChunkedArray) -> int:
    """SHA-256 blocks hashing messages of these lengths takes (each padded by at least 9 bytes)."""
    return pc.sum(pc.divide(pc.add(lengths, 9 + _SHA256_BLOCK - 1), _SHA256_BLOCK)).as_py() or 0


def _blocks_of(length: int) -> int:
    return (length + 9 + _SHA256_BLOCK - 1) // _SHA256_BLOCK


# per event, a chain link (previous chain hash || leaf hash) and one Merkle node (n - 1 in all)
_LINK_AND_NODE_BLOCKS = _blocks_of(2 * HASH_SIZE) + _blocks_of(1 + 2 * HASH_SIZE)


def _bare_rows(n: int, now_ms: int) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The ``ledger_entries`` and ``event_details`` rows an append writes for ``_event(n)`` at ``seq = n``
    (random hashes: nothing indexes them)."""
    event, salt = _event(n), os.urandom(16)
    actor, event_id = event.actor, str(time_ordered_id(now_ms, os.urandom(10)))
    occurred_at_ms = to_epoch_ms(event.occurred_at or dt.datetime.now(dt.UTC))
    details = canonical_json(event.details)
    commitment = commit_canonical_details(details, salt)
    canonical = canonical_record(
        seq=n, event_id=event_id, type=event.type, ref=event.ref, squid_id=actor.squid_id, sub_id=actor.sub_id,
        dao_id=actor.dao_id, layer=event.layer, verdict=event.verdict, details_commitment=commitment, cid=event.cid,
        occurred_at_ms=occurred_at_ms, received_at_ms=now_ms, source=event.source,
    )  # fmt: skip
    entry = (
        n, event_id, event.type, event.ref, actor.squid_id, actor.sub_id, actor.dao_id, event.layer, event.verdict,
        commitment, event.cid, occurred_at_ms, now_ms, event.source, canonical.decode(), os.urandom(32),
        os.urandom(32),
    )  # fmt: skip
    return entry, (n, salt, details.decode())


def _event(n: int) -> NewEvent:
    """The log's n-th event: one of ``_ACTORS`` identities, a second after the one before (events arrive in
    about the order they occur)."""
    return NewEvent(
        type="access",
        ref=f"file:Qm{n:044d}",
        actor=Actor(f"did:squid:user{n % _ACTORS}", "work", "dao:q"),
        layer="qdrive",
        verdict="ALLOW",
        source="bench",
        details={"ip": f"10.0.{n % 250}.{n % 200}", "size": n},
        occurred_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=n),
    )


def _admin(url: str, statement: str) -> None:
    engine = create_engine("postgresql+psycopg://" + url.split("://", 1)[1], isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(statement))
    engine.dispose()


def _report(**figures: object) -> None:
    print(json.dumps(figures), flush=True)
