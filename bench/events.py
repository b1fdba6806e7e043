"""Benchmarks of the published events and of the MCP tools (issue 19).

``python -m bench events publish [--rate 9000] [--seconds 20] [--url nats://127.0.0.1:4222]``
    Publishing lag at the batch-ingest rate: ``qerberos publish`` runs as its own process against the NATS
    server at ``--url`` (a stream of its own, deleted afterwards), while this process appends ``--rate`` events
    a second in batches of 1,000 (``Ledger.append``, the batch route's own call; the API's measured batch rate
    is about 9,200 events/s here) to a temporary ``QERBEROS_HOME`` (SQLite, or ``QERBEROS_DATABASE_URL``).
    Every 100 ms it reads the lag the way ``/metrics`` does (``PublishCursor.lag``: how long the oldest
    unpublished entry has waited). One JSON line: events appended, their rate, lag p50/p99/max in seconds, how
    long after the last append the publisher had caught up.

``python -m bench events mcp [--calls 2000]``
    ``qerberos.audit`` over streamable HTTP: a real ``qerberos mcp --transport http`` (local mode, a bearer token
    holding ``admin``, rate limit off), driven by the MCP SDK's client, one call after another over one session.
    One JSON line: calls, their rate, p50/p90/p99/max in milliseconds (the round trip, client included); a second
    line, the same for ``POST /audit`` on the same server, one request after another (what the tool adds to it).

Target (issue 19): publishing lag under 2 s at the batch-ingest rate; ``qerberos.audit`` p99 under 20 ms.
Figures with the commands: README.md, "Benchmarks".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.records import NewEvent

ROOT = Path(__file__).resolve().parents[1]
BATCH = 1000


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench events")
    commands = parser.add_subparsers(dest="command", required=True)
    publish = commands.add_parser("publish", help="publishing lag at the batch-ingest rate")
    publish.add_argument("--rate", type=int, default=9000, help="events appended a second")
    publish.add_argument("--seconds", type=float, default=20)
    publish.add_argument("--url", default="nats://127.0.0.1:4222")
    mcp = commands.add_parser("mcp", help="qerberos.audit latency over streamable HTTP")
    mcp.add_argument("--calls", type=int, default=2000)
    arguments = parser.parse_args(argv)
    if arguments.command == "publish":
        _publish(arguments.rate, arguments.seconds, arguments.url)
    else:
        _mcp(arguments.calls)


@contextlib.contextmanager
def _home(**settings: str) -> Iterator[dict[str, str]]:
    """A temporary QERBEROS_HOME, prepared; the environment of a qerberos process on it."""
    with tempfile.TemporaryDirectory(prefix="qerberos-bench-events-") as directory:
        env = os.environ | {
            "QERBEROS_HOME": f"{directory}/home", "QERBEROS_LOG_DIR": f"{directory}/logs",
            "QERBEROS_LIVE_DETECTION": "off", "QERBEROS_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT), **settings,
        }  # fmt: skip
        os.environ.update(env)
        from qerberos.settings import get_settings

        get_settings.cache_clear()
        yield env


def _qerberos(env: dict[str, str], *arguments: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import cli; cli.main()", *arguments], cwd=ROOT, env=env)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _publish(rate: int, seconds: float, url: str) -> None:
    from models.publish_cursor import PublishCursor
    from models.schema import prepare
    from qerberos.settings import get_settings

    stream = f"BENCH_{uuid.uuid4().hex[:8].upper()}"
    with _home(QERBEROS_EVENTS_URL=url, QERBEROS_EVENTS_STREAM=stream, QERBEROS_PUBLISHER_METRICS_PORT="0") as env:
        ledger = prepare(get_settings())
        publisher = _qerberos(env, "publish")
        cursor, lags, done = PublishCursor(ledger.engine), [], threading.Event()

        def sample() -> None:
            while not done.is_set():
                lag = cursor.lag()
                waited = 0.0 if lag.oldest_received_at_ms is None else time.time() - lag.oldest_received_at_ms / 1000
                lags.append(max(0.0, waited))
                time.sleep(0.1)

        try:
            ledger.append([_event(0)])  # the publisher's stream exists before the clock starts
            while cursor.position() < 0:
                time.sleep(0.1)
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started, appended = time.monotonic(), 0
            while (elapsed := time.monotonic() - started) < seconds:
                ledger.append([_event(appended + n) for n in range(BATCH)])
                appended += BATCH
                time.sleep(max(0.0, appended / rate - (time.monotonic() - started)))
            ingest_seconds = elapsed
            last = ledger.size() - 1
            while cursor.position() < last:
                time.sleep(0.02)
            caught_up = time.monotonic() - started - ingest_seconds
            done.set()
            sampler.join()
        finally:
            _stop(publisher)
            asyncio.run(_delete_stream(url, stream))
            ledger.close()
    ordered = sorted(lags)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    print(json.dumps({
        "scenario": "publish", "events": appended, "events_per_s": round(appended / ingest_seconds),
        "lag_p50_s": round(statistics.median(ordered), 3), "lag_p99_s": round(p99, 3),
        "lag_max_s": round(ordered[-1], 3),
        "caught_up_after_last_append_s": round(caught_up, 3), "samples": len(ordered),
    }))  # fmt: skip


def _event(n: int) -> NewEvent:
    from models.records import Actor, NewEvent

    return NewEvent(type="access", ref=f"file:doc-{n}", actor=Actor(f"did:squid:user-{n % 1000}"),
                    layer="qdrive", verdict="ALLOW", source="local:bench", details={"n": n})  # fmt: skip


async def _delete_stream(url: str, stream: str) -> None:
    import nats

    with contextlib.suppress(Exception):
        connection = await nats.connect(url, connect_timeout=2)
        try:
            await connection.jetstream().delete_stream(stream)
        finally:
            await connection.close()


def _mcp(calls: int) -> None:
    from tests.conftest import free_port  # a loopback port that is free

    port = free_port()
    with _home(QERBEROS_MCP_PORT=str(port), QERBEROS_RATE_LIMIT_PER_MINUTE="0", QERBEROS_AUTH_MODE="local") as env:
        from models.identities import create_identity
        from models.schema import prepare
        from qerberos.settings import get_settings

        ledger = prepare(get_settings())
        token = create_identity(ledger.engine, "bench", ["admin"])[1]
        ledger.close()
        server = _qerberos(env, "mcp", "--transport", "http")
        try:
            _wait_ready(port, server)
            durations = asyncio.run(_audit_calls(f"http://127.0.0.1:{port}/mcp", token, calls))
            baseline = _rest_posts(f"http://127.0.0.1:{port}/audit", token, calls)
        finally:
            _stop(server)
    _print_latencies("mcp_audit_http", durations)
    _print_latencies("rest_post_audit_same_server", baseline)


def _print_latencies(scenario: str, durations: list[float]) -> None:
    ordered = sorted(durations)

    def at(share: float) -> float:
        return round(ordered[int(share * (len(ordered) - 1))] * 1000, 2)

    print(json.dumps({
        "scenario": scenario, "calls": len(ordered), "calls_per_s": round(len(ordered) / sum(ordered)),
        "p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "max_ms": round(ordered[-1] * 1000, 2),
    }))  # fmt: skip


def _rest_posts(url: str, token: str, calls: int) -> list[float]:
    """The same events through ``POST /audit``, one after another over one connection: the REST route's own
    latency on the same server, which the MCP figure includes."""
    import httpx

    durations: list[float] = []
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for n in range(calls + 100):
            body = {"type": "access", "ref": f"file:rest-{n}", "actor": {"squidId": f"did:squid:user-{n % 50}"},
                    "layer": "qdrive", "verdict": "ALLOW"}  # fmt: skip
            started = time.perf_counter()
            client.post(url, json=body).raise_for_status()
            if n >= 100:
                durations.append(time.perf_counter() - started)
    return durations


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("qerberos mcp exited")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit("qerberos mcp did not start")


async def _audit_calls(url: str, token: str, calls: int) -> list[float]:
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    durations: list[float] = []
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        for n in range(calls + 100):  # the first 100 warm up
            arguments = {"type": "access", "ref": f"file:doc-{n}", "actor": {"squidId": f"did:squid:user-{n % 50}"},
                         "layer": "qdrive", "verdict": "ALLOW"}  # fmt: skip
            started = time.perf_counter()
            result = await session.call_tool("qerberos.audit", arguments)
            if result.is_error:
                raise SystemExit(f"qerberos.audit failed: {result.content}")
            if n >= 100:
                durations.append(time.perf_counter() - started)
    return durations
