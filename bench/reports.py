"""Compliance report benchmark: one full report (notebook, HTML, PDF, JSON, CSV, hash in the ledger) over a
ledger of N simulated events; the target is under 60 s for 1 million.

``python -m bench reports --events 1000000`` (SQLite; ``--backend postgres`` for PostgreSQL)

Figures (one JSON object per line): ``simulated_events`` and ``build_ledger_s`` (``Ledger.append`` in
batches of 10,000), ``report_s`` (the whole ``run_report``) with its steps, ``report_events`` (events in the
report's period), ``peak_rss_mb`` of this process (the kernel runs in its own).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

_BATCH = 10_000


def _report(**figures: Any) -> None:
    print(json.dumps(figures), flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench reports")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--framework", default="custom", choices=["gdpr", "soc2", "iso27001", "custom"])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as home:
        os.environ["QERBEROS_HOME"] = home
        os.environ["QERBEROS_LOG_ORIGIN"] = "bench.qerberos.local/audit"
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        if args.backend == "postgres":
            _admin(args.postgres_url, f"CREATE SCHEMA {schema}")
            os.environ["QERBEROS_DATABASE_URL"] = f"{args.postgres_url}?options=-csearch_path%3D{schema}"
        try:
            _run(args, Path(home))
        finally:
            if args.backend == "postgres":
                _admin(args.postgres_url, f"DROP SCHEMA {schema} CASCADE")


def _admin(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(statement)


def _run(args: argparse.Namespace, home: Path) -> None:
    from analytics.simulation import SimulationConfig, simulate
    from models.ledger import initialise
    from pipelines.reports import ReportRequest, run_report
    from qerberos.settings import load_settings
    from tests.integration.compliance.helpers import new_events

    settings = load_settings()
    ledger = initialise(settings)
    days = 30
    identities = max(2, round(args.events / (days * 18)))  # ~18 events per identity-day (weekends are quieter)
    began = time.perf_counter()
    events = simulate(SimulationConfig(identities, days, seed=1)).events.head(args.events)
    _report(figure="simulated_events", value=events.height, seconds=round(time.perf_counter() - began, 2))
    began = time.perf_counter()
    batch = []
    for event in new_events(events):
        batch.append(event)
        if len(batch) == _BATCH:
            ledger.append(batch)
            batch = []
    if batch:
        ledger.append(batch)
    ledger.checkpoint(force=True)
    _report(figure="build_ledger_s", value=round(time.perf_counter() - began, 2), events=ledger.size())
    start, end = events["occurred_at"].min(), events["occurred_at"].max()
    if not isinstance(start, dt.datetime) or not isinstance(end, dt.datetime):
        raise SystemExit("the simulation made no events: ask for more with --events")
    request = ReportRequest(args.framework, start, end + dt.timedelta(milliseconds=1))
    steps: dict[str, float] = {}

    def mark(step: str, *_counts: int) -> None:
        steps.setdefault(step, time.perf_counter())

    began = time.perf_counter()
    result = run_report(
        request,
        settings,
        ledger=ledger,
        tracking_uri="",
        progress=mark,
    )
    total = time.perf_counter() - began
    marks = list(steps.items())
    durations = {name: round(marks[i + 1][1] - at, 2) for i, (name, at) in enumerate(marks[:-1])}
    summary = json.loads((result.directory / "summary.json").read_text())
    _report(
        figure="report_s",
        value=round(total, 2),
        target_s=60,
        backend=args.backend,
        framework=args.framework,
        report_events=summary["activity"]["totalEvents"],
        integrity=summary["integrity"]["status"],
        steps=durations,
        pdf=result.manifest["pdf"],
    )
    _report(figure="peak_rss_mb", value=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    ledger.close()
