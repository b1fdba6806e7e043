"""Ledger benchmark: append, verify, proofs and memory, each beside its physical limit.

``python -m bench ledger --backend sqlite --events 1000000``
``python -m bench ledger --backend postgres --events 200000``

Figures (one JSON object per line):
- ``bare_executemany_rows_per_s``: the same database taking the same rows through a bare executemany;
- ``append_events_per_s``: ``Ledger.append`` in batches of 1,000 (validation, hashing, Merkle nodes);
- ``raw_sha256_per_s`` and ``verify_events_per_s``: the full re-derivation against raw leaf hashing;
- ``proof_p50_ms``/``proof_p99_ms``: inclusion and consistency proofs at random positions;
- ``peak_rss_mb``: the process's peak resident memory.
"""

from __future__ import annotations

import argparse
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

from sqlalchemy import create_engine, text

from models.database import create_ledger_engine, create_schema, sequenced
from models.ledger import initialise
from models.records import Actor, NewEvent
from models.tables import LedgerEntry
from models.verification import verify_ledger
from qerberos.settings import load_settings

_BATCH = 1000
_BARE_ROWS = 100_000
_LARGE = 1_000_000  # beyond this many events the log is built in larger batches, to be run once by hand
_LARGE_BATCH = 10_000
_COLUMNS = tuple(column.name for column in LedgerEntry.__table__.columns)  # type: ignore[attr-defined]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench ledger")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--proofs", type=int, default=2000)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as home:
        os.environ["QERBEROS_HOME"] = home
        tag = uuid.uuid4().hex[:8]
        schemas = (f"bench_{tag}", f"bench_{tag}_bare")  # the benchmarked ledger, the bare measurement's
        if args.backend == "postgres":
            for schema in schemas:
                _admin(args.postgres_url, f"CREATE SCHEMA {schema}")
            os.environ["QERBEROS_DATABASE_URL"] = _in_schema(args.postgres_url, schemas[0])
            bare_url = _in_schema(args.postgres_url, schemas[1])
        else:
            bare_url = f"sqlite:///{Path(home) / 'bare.db'}"
        try:
            _run(args, bare_url)
        finally:
            if args.backend == "postgres":
                for schema in schemas:
                    _admin(args.postgres_url, f"DROP SCHEMA {schema} CASCADE")


def _in_schema(url: str, schema: str) -> str:
    return f"{url}?options=-csearch_path%3D{schema}"


def _run(args: argparse.Namespace, bare_url: str) -> None:
    ledger = initialise(load_settings())
    batch = _BATCH if args.events <= _LARGE else _LARGE_BATCH
    _report(backend=args.backend, figure="bare_executemany_rows_per_s", value=_bare_rate(bare_url))

    events = [_event(n) for n in range(batch)]
    started = time.perf_counter()
    for _ in range(args.events // batch):
        ledger.append(events)
    elapsed = time.perf_counter() - started
    _report(
        backend=args.backend, figure="append_events_per_s", value=round(args.events / elapsed), batch=batch,
        events=args.events,
    )  # fmt: skip
    ledger.checkpoint(force=True)

    sample = [os.urandom(300) for _ in range(100_000)]
    started = time.perf_counter()
    for data in sample:
        hashlib.sha256(b"\x00" + data).digest()
    _report(figure="raw_sha256_per_s", value=round(len(sample) / (time.perf_counter() - started)))
    del sample

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
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _report(backend=args.backend, figure="peak_rss_mb", value=round(peak_mb), events=size)
    ledger.close()


def _bare_rate(url: str) -> int:
    """The physical limit: rows of the ledger's shape through a bare driver executemany into the
    ``ledger_entries`` of a second, fresh ledger in the same database server (same indexes, constraints
    and durability settings), one commit per 1,000 under the same sequencer.

    Each batch's rows are made outside the timed part, so that memory stays flat and only the database
    is measured.
    """
    engine = create_ledger_engine(url)
    create_schema(engine)
    columns = ", ".join(_COLUMNS)
    marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    statement = f"INSERT INTO ledger_entries ({columns}) VALUES ({', '.join([marker] * len(_COLUMNS))})"
    elapsed = 0.0
    for start in range(0, _BARE_ROWS, _BATCH):
        rows = [_bare_row(n) for n in range(start, start + _BATCH)]
        started = time.perf_counter()
        with sequenced(engine) as connection:
            connection.exec_driver_sql(statement, rows)
        elapsed += time.perf_counter() - started
    engine.dispose()
    return round(_BARE_ROWS / elapsed)


def _bare_row(n: int) -> tuple[object, ...]:
    """A ``ledger_entries`` row as an append writes it: random id, 420-character canonical text, hashes."""
    return (
        n, str(uuid.uuid4()), "access", f"file:Qm{n:044d}", f"did:squid:user{n % 500}", "work", "dao:q", "qdrive",
        "ALLOW", "sha256:" + "0" * 64, None, n, n, "bench", "x" * 420, os.urandom(32), os.urandom(32),
    )  # fmt: skip


def _event(n: int) -> NewEvent:
    return NewEvent(
        type="access",
        ref=f"file:Qm{n:044d}",
        actor=Actor(f"did:squid:user{n % 500}", "work", "dao:q"),
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
