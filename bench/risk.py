"""Risk-scoring benchmark: ``GET /risk-score/{identity}`` and ``POST /risk-score`` under a fixed request rate.

``python -m bench risk --events 1000000 --identities 10000 --rate 500 --seconds 10 [--home DIR]``

Builds a SQLite store (``Ledger.append`` in batches of 10,000: every identity gets ~``events/identities``
events over 14 days, 3 % of them denied, from 1-2 home addresses and devices; ``--home`` keeps it for the next
run), starts a real uvicorn (``--workers`` processes, the risk controller without authentication, history
stored write-behind; each worker primes its history cache before serving, as the served app does in the
background) on 127.0.0.1, and drives it from this process at ``--rate`` requests/s, open loop: each request
has a scheduled start, and its latency counts from that start, so a stalled server is not hidden by a waiting
client (no coordinated omission). Identities are drawn at random, so most requests score an identity for the
first time at this ledger state (a history write).

Figures (one JSON object per line): ``store`` (build time, size), then per route ``p50_ms``, ``p99_ms``,
``max_ms``, ``throughput_rps``, ``errors`` and ``server_cpu_ms_per_request`` (CPU of the server processes
over the route's requests: what a request costs whatever else runs on the machine). ``--in-process N``
runs no server: CPU per ``RiskService.assess`` for N identity and N operation assessments after priming.

Measured 2026-11-27 on the 2 shared cores while other engineers' tests and benchmarks ran (load average
3-5), the 1 M event / 10,000 identity store reused, before (4602e0c) and after back to back:
- ``--in-process 2000``: CPU per assessment 5.72 ms -> 0.42 ms (identity), 4.13 ms -> 0.47 ms (operation);
  priming reads the ledger in 6-12 s per process and holds ~35 MB.
- ``--rate 500 --seconds 10``: before, the workers saturate (185 requests/s answered, p99 17 s) at 6.3 and
  5.9 ms of server CPU per request; after, 499/s answered, GET p50 3.0 / p99 39 ms, POST p50 9.8 / p99 119 ms,
  1.5 and 1.9 ms of server CPU per request (HTTP alone, a stubbed assessment: ~0.7 ms). The p99 figures
  here are the shared machine's; measure the target on a quiet one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psutil
from litestar import Litestar

from models.ledger import Ledger, initialise
from models.records import Actor, NewEvent
from qerberos.settings import load_settings

_BATCH = 10_000
_START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
_COUNTRIES = ("DE", "FR", "ES", "GB", "US", "JP")
_DEVICES = ("web-firefox", "web-chrome", "ios-app", "android-app")
_TYPES = (("squid", "login"), ("qdrive", "access"), ("qdrive", "download"), ("qwallet", "payment"), ("qmail", "read"))
_OPERATIONS = ("payment", "admin_operation", "file_access", "transfer", "download")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench risk")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--identities", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second, per route")
    parser.add_argument("--seconds", type=float, default=10.0, help="load duration per route")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--connections", type=int, default=64, help="client keep-alive connections")
    parser.add_argument("--home", type=Path, default=None, help="reuse (or keep) the store in this directory")
    parser.add_argument(
        "--in-process", type=int, default=0, metavar="N",
        help="no server: CPU per assessment of N identity and N operation assessments in this process",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.home is not None:
        _run(args, args.home.resolve())
        return
    with tempfile.TemporaryDirectory() as home:
        _run(args, Path(home))


def _run(args: argparse.Namespace, home: Path) -> None:
    os.environ["QERBEROS_HOME"] = str(home)
    ledger = initialise(load_settings())
    if ledger.size() < args.events:
        started = time.perf_counter()
        _build_store(ledger, args.events, args.identities)
        _report(figure="store", build_s=round(time.perf_counter() - started, 1), events=ledger.size(),
                identities=args.identities)  # fmt: skip
    if args.in_process:
        _assess_in_process(ledger, args.in_process, args.identities)
        ledger.close()
        return
    ledger.close()
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.risk:bench_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(args.workers), "--log-level", "warning", "--no-access-log"],
        env={**os.environ, "QERBEROS_HOME": str(home)},
    )  # fmt: skip
    try:
        _wait_ready(port)
        asyncio.run(_drive(port, args, psutil.Process(server.pid)))
    finally:
        server.terminate()
        server.wait(timeout=30)


def _assess_in_process(ledger: Ledger, count: int, identities: int) -> None:
    """The assessment's own CPU (reads, factors, history write-behind), without HTTP: ``RiskService.assess``
    as the controller calls it, after priming as the served app does."""
    from analytics.risk import OperationContext
    from pipelines.risk import build_risk_service

    service = build_risk_service(ledger.engine, ledger, write_behind=True)
    started = time.perf_counter()
    service.prime()
    _report(figure="prime", seconds=round(time.perf_counter() - started, 1))
    rng = random.Random(7)
    bodies = [_post_body(rng, identities) for _ in range(count)]
    calls = {
        "identity (GET)": [functools.partial(service.assess, body["identity"]) for body in bodies],
        "operation (POST)": [
            functools.partial(service.assess, body["identity"], operation=body["operation"], context=body["context"],
                              access=OperationContext.of_request(body["context"]))
            for body in bodies
        ],
    }  # fmt: skip
    for assessment, assess_calls in calls.items():
        cpu = time.process_time()
        for call in assess_calls:
            call()
        service.flush()
        cpu_ms = (time.process_time() - cpu) * 1000 / count
        _report(assessment=assessment, assessments=count, cpu_ms_per_assessment=round(cpu_ms, 3))
    service.close()


def _post_body(rng: random.Random, identities: int) -> dict[str, Any]:
    return {
        "identity": f"did:squid:user{rng.randrange(identities):05d}",
        "operation": rng.choice(_OPERATIONS),
        "context": {"ipAddress": f"10.0.0.{rng.randrange(4)}", "country": rng.choice(_COUNTRIES),
                    "deviceId": rng.choice(_DEVICES)},
    }  # fmt: skip


def _build_store(ledger: Ledger, events: int, identities: int) -> None:
    rng = random.Random(5)
    homes = [(rng.choice(_COUNTRIES), rng.sample(_DEVICES, 2), rng.randrange(6, 12)) for _ in range(identities)]
    period_ms = 14 * 86_400_000
    batch: list[NewEvent] = []
    for n in range(events):
        who = n % identities
        country, devices, hour = homes[who]
        layer, type_ = _TYPES[rng.randrange(len(_TYPES))]
        day_ms = (n * period_ms // events) // 86_400_000 * 86_400_000
        occurred = _START + dt.timedelta(
            milliseconds=day_ms + (hour + rng.randrange(9)) * 3_600_000 + rng.randrange(3_600_000)
        )
        batch.append(
            NewEvent(
                type=type_, ref=f"{layer}:{who}:{n % 37}", actor=Actor(f"did:squid:user{who:05d}"), layer=layer,
                verdict="DENY" if rng.random() < 0.03 else "ALLOW", source="bench",
                details={"ip": f"10.{who % 250}.{who // 250}.{rng.randrange(2)}", "country": country,
                         "device": devices[rng.randrange(2)]},
                occurred_at=occurred,
            )
        )  # fmt: skip
        if len(batch) == _BATCH:
            ledger.append(batch)
            batch = []
    if batch:
        ledger.append(batch)


def bench_app() -> Litestar:
    """The app uvicorn serves: the risk controller over the store in ``QERBEROS_HOME`` (no authentication)."""
    from api.controllers.risk import RiskController
    from api.errors import EXCEPTION_HANDLERS
    from pipelines.risk import build_risk_service

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        ledger = Ledger.from_settings(load_settings())
        app.state.risk = build_risk_service(ledger.engine, ledger, write_behind=True)
        app.state.risk.prime()  # before serving, as the served app does in the background
        try:
            yield
        finally:
            app.state.risk.close()
            ledger.close()

    return Litestar(route_handlers=[RiskController], exception_handlers=EXCEPTION_HANDLERS, lifespan=[lifespan])  # type: ignore[arg-type]


async def _drive(port: int, args: argparse.Namespace, server: psutil.Process) -> None:
    rng = random.Random(7)

    def get() -> bytes:
        return _request("GET", f"/risk-score/did:squid:user{rng.randrange(args.identities):05d}")

    def post() -> bytes:
        return _request("POST", "/risk-score", json.dumps(_post_body(rng, args.identities)).encode())

    for route, make in (("GET /risk-score/{identity}", get), ("POST /risk-score", post)):
        cpu_before = _cpu_seconds(server)
        figures = await _open_loop(port, make, args.rate, args.seconds, args.connections)
        cpu_ms = (_cpu_seconds(server) - cpu_before) * 1000 / figures["requests"]
        _report(route=route, **figures, server_cpu_ms_per_request=round(cpu_ms, 3))


def _cpu_seconds(server: psutil.Process) -> float:
    """CPU time (user + system) of the server and its workers so far: what a request costs, whatever else
    runs on the machine (wall-clock latencies depend on that)."""
    return sum(sum(process.cpu_times()[:2]) for process in (server, *server.children(recursive=True)))


def _request(method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _open_loop(port: int, make: Any, rate: float, seconds: float, connections: int) -> dict[str, Any]:
    """A minimal HTTP/1.1 keep-alive client (httpx's pool is the bottleneck at hundreds of requests in flight):
    a dispatcher queues each request at its scheduled start; ``connections`` workers send and time them."""
    count = int(rate * seconds)
    requests = [make() for _ in range(count)]
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (item := await queue.get()) is not None:
            scheduled, raw = item
            writer.write(raw)
            status_line = await reader.readline()
            if not status_line:  # the server closed the connection: count it, reconnect
                errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append((loop.time() - scheduled) * 1000)
            errors += int(status_line.split()[1]) != 200
        writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = loop.time() + 0.2
    for i, raw in enumerate(requests):
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        queue.put_nowait((scheduled, raw))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = loop.time() - start
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "requests": count, "rate_rps": rate, "p50_ms": round(cuts[49], 2), "p99_ms": round(cuts[98], 2),
        "max_ms": round(max(latencies), 2), "throughput_rps": round(count / elapsed, 1), "errors": errors,
    }  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 180  # the workers prime their history cache first
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/risk-score/did:squid:warmup", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("the bench server did not start")


def _report(**figures: object) -> None:
    print(json.dumps(figures), flush=True)
