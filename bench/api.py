"""API benchmark: a real ``qerberos serve --workers N`` on a loopback port, loaded by wrk from another process.

``python -m bench api --workers 2 --events 1000000 --duration 20``

Authentication is ON (local mode: a ``bench`` identity holding ``admin``, its bearer token in every request);
the per-caller rate limit is switched off for the run (``QERBEROS_RATE_LIMIT_PER_MINUTE=0``), since one
caller sends everything, unless ``--rate-limit N`` sets one: a limit no run reaches (``--rate-limit
1000000000``) measures what counting costs (with several workers and no Redis, one write to
``QERBEROS_HOME/host-state.db`` a request). wrk (Debian package ``wrk``) generates the load with a Lua
script and shares the machine's cores with the server. Steps:

1. build a temporary ``QERBEROS_HOME`` with ``--events`` stored events (``Ledger.append`` in batches of
   10,000: the 1-million-event store of the read scenarios);
2. start the server as a real process and wait until it answers;
3. run the scenarios, each for ``--duration`` seconds, and print one JSON line each: ``scenario``,
   ``requests_per_s`` (and ``events_per_s`` for batches), ``p50_ms``, ``p90_ms``, ``p99_ms``, ``max_ms``,
   ``errors``, ``server_cpu_ms_per_request`` (CPU of the server's processes per request: steadier than
   throughput when other work shares the cores), the ledger's growth against the 2xx count, and the workers' RSS:
   - ``single``: ``POST /audit``, one event per request, ``--connections`` connections (group commit);
   - ``batch``: ``POST /audit/batch`` of 1,000 events, ``--batch-connections`` connections;
   - ``get``: ``GET /audit/{id}`` of random stored events;
   - ``search``: ``GET /audit?actor=...&limit=100`` (one identity's events, ~200 of the million);
     ``search_actor_type``: ``GET /audit?actor=...&type=...&limit=100`` (two filters: ~25 matches) and
     ``search_layer``: ``GET /audit?layer=...&limit=100`` (a filter matching 1 in 8 events);
   - ``ack``: 2,000 single POSTs from a Python client that keeps every acknowledged id, then checks each
     id is in the ledger (durability by id, not only by count);
4. stop the server (SIGTERM: a graceful stop) and check that the ledger holds at least every acknowledged
   event and that ``qerberos verify`` passes; print the ``summary`` line.

``--stages N`` measures instead, in this process and without HTTP, the CPU of each stage of ``POST /audit/batch``
on the batch the ``batch`` scenario sends (decode and validate, ``NewEvent``s, ``Ledger.append``, metrics, the
answer's views, its JSON), median over N batches appended to an empty ledger (SQLite under a temporary
``QERBEROS_HOME``, or ``QERBEROS_DATABASE_URL`` when set); one JSON line, milliseconds per 1,000 events.

``--reuse DIR`` runs again on a store kept with ``--keep`` (building a million events takes 1.5-5 minutes
here); ``--analyze`` gathers SQLite's planner statistics first (see the two-filter search below).

Figures, with the commands that produced them: README.md, "Benchmarks". To rerun the read scenarios on a
kept store: ``python -m bench api --workers 2 --duration 10 --connections 4 --reuse DIR --scenarios
get,search,search_actor_type``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
from litestar.serialization import encode_json

from api import metrics
from api.controllers import audit
from api.envelope import ok
from api.schemas import BatchCreated, created_view
from models.database import create_ledger_engine
from models.identities import create_identity, create_identity_tables
from models.ledger import Ledger, initialise
from models.reader import LedgerReader
from models.records import Actor, NewEvent
from qerberos.errors import NotFoundError
from qerberos.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
_BUILD_BATCH = 10_000
_TYPES = ("access", "login", "logout", "share", "delete", "upload", "permission.change", "export")
_LAYERS = ("qdrive", "qmail", "qchat", "qwallet", "qsocial", "qmarket", "qindex", "qonsent")
_ACTORS = 5_000
_ACK_REQUESTS = 2_000
_SAMPLE_IDS = 2_000
_BATCH_SIZE = 1_000

_WRK_COMMON = r"""
wrk.headers["Authorization"] = "Bearer " .. os.getenv("QB_TOKEN")
local thread_id = 0
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  thread_id = tonumber(wrk.thread:get("tid")) or 0
  math.randomseed(thread_id * 7919)
end
function done(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""

_WRK_SINGLE = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local verdicts = {"ALLOW", "DENY", "WARN"}
function request()
  counter = counter + 1
  local body = string.format(
    '{"type":"access","ref":"file:bench-%d-%d","actor":{"squidId":"did:squid:user%d","subId":"work"},' ..
    '"layer":"qdrive","verdict":"%s","details":{"operation":"download","n":%d}}',
    thread_id, counter, counter % 997, verdicts[counter % 3 + 1], counter)
  return wrk.format(nil, "/audit", nil, body)
end
"""

_WRK_BATCH = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local items = {}
for i = 1, %(size)d do
  items[i] = string.format(
    '{"type":"access","ref":"file:batch-%%d","actor":{"squidId":"did:squid:user%%d"},"layer":"qdrive",' ..
    '"verdict":"ALLOW","details":{"operation":"download","n":%%d}}', i, i %% 997, i)
end
wrk.body = "[" .. table.concat(items, ",") .. "]"
wrk.path = "/audit/batch"
"""

_WRK_PATHS = r"""
local paths = {%(paths)s}
function request()
  counter = counter + 1
  return wrk.format("GET", paths[math.random(#paths)])
end
"""


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench api")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--events", type=int, default=1_000_000, help="events stored before the load starts")
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk scenario")
    parser.add_argument("--connections", type=int, default=32, help="connections of single, get and search")
    parser.add_argument("--batch-connections", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--scenarios",
        default="single,batch,get,search,search_actor_type,search_layer,ack",
        help="comma-separated, in order",
    )
    parser.add_argument("--rate-limit", type=int, default=0, help="requests per caller per minute (0: no limit)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (and print it)")
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="run SQLite's ANALYZE on the store first (planner statistics; qerberos does not gather them itself)",
    )
    parser.add_argument("--reuse", type=Path, help="a directory kept by --keep: its store is used as it is")
    parser.add_argument("--stages", type=int, metavar="N", help="CPU per stage of the batch route over N batches")
    args = parser.parse_args(argv)
    if args.stages:
        with tempfile.TemporaryDirectory(prefix="qerberos-bench-api-") as directory:
            _batch_stages(Path(directory), args.stages)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed (Debian: apt-get install -y wrk)")
    root = args.reuse or Path(tempfile.mkdtemp(prefix="qerberos-bench-api-"))
    try:
        _run(args, root)
    finally:
        if args.keep or args.reuse:
            print(json.dumps({"kept": str(root)}), flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)


def _run(args: argparse.Namespace, root: Path) -> None:
    env = _environment(root, args.rate_limit)
    os.environ.update(env)
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # serve sets its own (under QERBEROS_HOME) for N > 1
    settings = load_settings()
    started = time.perf_counter()
    if args.reuse is None:
        token = _build_store(settings, args.events)
    else:
        token = _bench_identity(settings)
        args.events = _ledger_size(settings)
    if args.analyze:
        _analyze(settings)
    _emit(
        "store",
        events=args.events,
        seconds=round(time.perf_counter() - started, 1),
        reused=bool(args.reuse),
        analyzed=args.analyze,
    )
    lua = root / "lua"
    lua.mkdir(mode=0o700, exist_ok=True)
    sample = _sample(settings)
    run_env = {**os.environ, **env, "QB_TOKEN": token}
    acknowledged = 0
    failures: list[str] = []
    with _server(settings, args.workers, run_env) as server:
        _emit("started", workers=args.workers, worker_rss_mb=_worker_rss(server))
        for scenario in [name.strip() for name in args.scenarios.split(",") if name.strip()]:
            if scenario == "ack":
                acknowledged += _ack(settings, token, args.connections, failures, server)
                continue
            script = _script(scenario, sample, lua)
            connections = args.batch_connections if scenario == "batch" else args.connections
            before = _ledger_size(settings)
            cpu_before = _worker_cpu(server)
            result = _wrk(script, settings, connections, args.threads, args.duration, run_env)
            cpu_used = _worker_cpu(server) - cpu_before
            after = _ledger_size(settings)
            ok = result["requests"] - result["non2xx"]
            line: dict[str, Any] = {
                "scenario": scenario,
                "workers": args.workers,
                "connections": connections,
                "requests": result["requests"],
                "requests_per_s": round(result["requests"] / (result["duration_us"] / 1e6), 1),
                "p50_ms": result["p50_us"] / 1000,
                "p90_ms": result["p90_us"] / 1000,
                "p99_ms": result["p99_us"] / 1000,
                "max_ms": result["max_us"] / 1000,
                "server_cpu_ms_per_request": round(cpu_used * 1000 / max(1, result["requests"]), 3),
                "errors": {k: result[k] for k in ("non2xx", "connect", "read", "write", "timeout")},
                "worker_rss_mb": _worker_rss(server),
            }
            if scenario in ("single", "batch"):
                per_request = _BATCH_SIZE if scenario == "batch" else 1
                acked_events = ok * per_request
                acknowledged += acked_events
                line["events_per_s"] = round(acked_events / (result["duration_us"] / 1e6), 1)
                line["acknowledged_events"] = acked_events
                line["ledger_growth"] = after - before
                if after - before < acked_events:
                    failures.append(f"{scenario}: ledger grew by {after - before} < {acked_events} acknowledged")
            _emit(**line)
        rss = _worker_rss(server)
    size = _ledger_size(settings)
    verify = subprocess.run(
        [str(Path(sys.executable).with_name("qerberos")), "verify"],
        env=run_env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if size - args.events < acknowledged:
        failures.append(f"ledger holds {size - args.events} new events < {acknowledged} acknowledged")
    if verify.returncode != 0:
        failures.append(f"qerberos verify exited {verify.returncode}: {verify.stdout[-300:]} {verify.stderr[-300:]}")
    _emit(
        "summary",
        workers=args.workers,
        ledger_size=size,
        acknowledged_new_events=acknowledged,
        worker_rss_mb_at_end=rss,
        verify_exit=verify.returncode,
        failures=failures,
    )
    if failures:
        sys.exit(1)


def _batch_stages(root: Path, batches: int) -> None:
    """Where the batch route's CPU goes: each stage as ``AuditController.log_batch`` runs it, timed apart."""
    os.environ.update(_environment(root))
    source = "local:bench"
    body = _batch_body()
    timings: dict[str, list[float]] = {}

    def timed(stage: str, work: Callable[..., Any], *args: Any) -> Any:
        started = time.process_time()
        value = work(*args)
        timings.setdefault(stage, []).append(time.process_time() - started)
        return value

    with initialise(load_settings()) as ledger:
        for _ in range(batches):
            requests = timed("decode", audit._decode_batch, body, "application/json")
            events = timed("new_events", lambda items: [item.to_new_event(source) for item in items], requests)
            results = timed("append", ledger.append, events)
            timed("metrics", metrics.record_ingested, results)
            views = timed("views", lambda items: [created_view(item) for item in items], results)
            data = BatchCreated(count=len(views), created=len(views), events=views)
            timed("encode", lambda answer: encode_json(ok(answer)), data)
    per_thousand = {
        f"{stage}_ms": round(statistics.median(spent) * 1e6 / _BATCH_SIZE, 2) for stage, spent in timings.items()
    }
    total = sum(per_thousand.values())
    _emit(
        "batch_stages", batches=batches, **per_thousand, total_ms=round(total, 2), events_per_cpu_s=round(1e6 / total)
    )


def _batch_body() -> bytes:
    """The body of the ``batch`` scenario (the same text its Lua script builds)."""
    items = [
        f'{{"type":"access","ref":"file:batch-{i}","actor":{{"squidId":"did:squid:user{i % 997}"}},"layer":"qdrive",'
        f'"verdict":"ALLOW","details":{{"operation":"download","n":{i}}}}}'
        for i in range(1, _BATCH_SIZE + 1)
    ]
    return ("[" + ",".join(items) + "]").encode()


def _environment(root: Path, rate_limit: int = 0) -> dict[str, str]:
    return {
        "QERBEROS_HOME": str(root / "home"),
        "QERBEROS_HOST": "127.0.0.1",
        "QERBEROS_PORT": str(_free_port()),
        "QERBEROS_AUTH_MODE": "local",
        "QERBEROS_RATE_LIMIT_PER_MINUTE": str(rate_limit),
        "QERBEROS_LOG_LEVEL": "WARNING",
        "QERBEROS_LOG_DIR": str(root / "logs"),
        "QERBEROS_CHECKPOINT_INTERVAL": "5",
        "QERBEROS_LOG_ORIGIN": "bench.qerberos.local/audit",
        "QERBEROS_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        "QERBEROS_LIVE_DETECTION": "off",  # as API replicas run in production, beside one `qerberos detect`
    }


def _build_store(settings: Settings, count: int) -> str:
    """``count`` events appended in batches of 10,000; the bench identity; its token."""
    rng = random.Random(7)
    base_ms = 1_767_225_600_000  # 2026-01-01
    with initialise(settings) as ledger:
        for start in range(0, count, _BUILD_BATCH):
            batch = [_stored_event(rng, base_ms, n) for n in range(start, min(count, start + _BUILD_BATCH))]
            ledger.append(batch)
    return _bench_identity(settings)


def _analyze(settings: Settings) -> None:
    """Fresh planner statistics on either backend before measuring (the benchmark's own preparation of the
    database, as its baselines measure the database itself; ``models.database.refresh_statistics`` runs only on
    SQLite, where PostgreSQL's autovacuum would catch up at a moment of its own)."""
    engine = create_ledger_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()


def _bench_identity(settings: Settings) -> str:
    """A new ``admin`` identity for this run; its bearer token."""
    engine = create_ledger_engine(settings.database_url)
    try:
        create_identity_tables(engine)
        return create_identity(engine, f"bench-{uuid.uuid4().hex[:8]}", ["admin"])[1]
    finally:
        engine.dispose()


def _stored_event(rng: random.Random, base_ms: int, n: int) -> NewEvent:
    return NewEvent(
        type=rng.choice(_TYPES),
        ref=f"file:doc-{n}",
        actor=Actor(f"did:squid:user{rng.randrange(_ACTORS)}", "work"),
        layer=rng.choice(_LAYERS),
        verdict=rng.choice(("ALLOW", "ALLOW", "ALLOW", "DENY", "WARN")),
        source="local:bench",
        details={"operation": "download", "n": n, "bytes": rng.randrange(1 << 20)},
        occurred_at=dt.datetime.fromtimestamp((base_ms + n * 1000) / 1000, dt.UTC),
    )


def _sample(settings: Settings) -> dict[str, list[str]]:
    """Random stored ids and (actor, type) pairs for the read scenarios."""
    with Ledger.from_settings(settings) as ledger:
        size = ledger.size()
        seqs = random.Random(11).sample(range(size), min(size, _SAMPLE_IDS)) if size else []
        ids = [str(ledger.get_by_seq(seq).id) for seq in seqs]
    rng = random.Random(13)
    return {
        "get": [f"/audit/{event_id}" for event_id in ids] or [f"/audit/{uuid.uuid4()}"],
        "search": [f"/audit?actor=did:squid:user{rng.randrange(_ACTORS)}&limit=100" for _ in range(500)],
        "search_actor_type": [
            f"/audit?actor=did:squid:user{rng.randrange(_ACTORS)}&type={rng.choice(_TYPES)}&limit=100"
            for _ in range(500)
        ],
        "search_layer": [f"/audit?layer={layer}&limit=100" for layer in _LAYERS],
    }


def _script(scenario: str, sample: dict[str, list[str]], directory: Path) -> Path:
    if scenario == "single":
        body = _WRK_SINGLE
    elif scenario == "batch":
        body = _WRK_BATCH % {"size": _BATCH_SIZE}
    elif scenario in sample:
        body = _WRK_PATHS % {"paths": ",".join(json.dumps(path) for path in sample[scenario])}
    else:
        sys.exit(f"unknown scenario {scenario!r}")
    path = directory / f"{scenario}.lua"
    path.write_text(_WRK_COMMON + body)
    return path


def _wrk(script: Path, settings: Settings, connections: int, threads: int, duration: int, env: dict[str, str]) -> Any:
    command = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{settings.port}",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    for line in done.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line.removeprefix("WRKJSON "))
    raise RuntimeError(f"wrk printed no summary: {done.stdout[-500:]} {done.stderr[-500:]}")


class _Server:
    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    def workers(self) -> list[psutil.Process]:
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            return []
        # with one worker uvicorn serves in the process itself; with several, the children serve
        return [child for child in children if "multiprocessing.resource_tracker" not in " ".join(child.cmdline())]


@contextlib.contextmanager
def _server(settings: Settings, workers: int, env: dict[str, str]) -> Iterator[_Server]:
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    log = open(settings.log_dir / "bench-server.log", "ab")  # noqa: SIM115 (closed in finally)
    command = [sys.executable, "-m", "cli.serve", "serve", "--workers", str(workers)]
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=log, start_new_session=True)
    server = _Server(process)
    try:
        deadline = time.monotonic() + 60
        while not _answers(settings):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start (exit {process.poll()})")
            time.sleep(0.2)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _answers(settings: Settings) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{settings.port}/health/live", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _worker_cpu(server: _Server) -> float:
    """CPU seconds (user + system) used so far by the server's processes: a figure the shared cores do not
    distort as much as throughput."""
    total = 0.0
    for process in [psutil.Process(server.process.pid), *server.workers()]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _worker_rss(server: _Server) -> list[float]:
    processes = server.workers() or [psutil.Process(server.process.pid)]
    sizes = []
    for process in processes:
        try:
            sizes.append(round(process.memory_info().rss / 2**20, 1))
        except psutil.Error:
            continue
    return sizes


def _ack(settings: Settings, token: str, connections: int, failures: list[str], server: _Server) -> int:
    """Single POSTs whose every acknowledged id is then looked up in the ledger."""
    ids = asyncio.run(_post_many(settings, token, connections))
    with Ledger.from_settings(settings) as ledger:
        missing = [event_id for event_id in ids if not _stored(ledger, event_id)]
    if missing:
        failures.append(f"ack: {len(missing)} acknowledged ids not in the ledger, e.g. {missing[:3]}")
    _emit("ack", requests=_ACK_REQUESTS, acknowledged=len(ids), missing=len(missing), worker_rss_mb=_worker_rss(server))
    return len(ids)


async def _post_many(settings: Settings, token: str, connections: int) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=connections)
    next_index = iter(range(_ACK_REQUESTS))
    ids: list[str] = []
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{settings.port}", headers=headers, limits=limits, timeout=30
    ) as client:

        async def one_connection() -> None:
            for n in next_index:
                body = {
                    "type": "access",
                    "ref": f"file:ack-{n}",
                    "actor": {"squidId": f"did:squid:user{n % 97}"},
                    "layer": "qdrive",
                    "verdict": "ALLOW",
                    "details": {"n": n},
                }
                answer = await client.post("/audit", json=body)
                if answer.status_code == 201:
                    ids.append(answer.json()["data"]["id"])

        await asyncio.gather(*(one_connection() for _ in range(connections)))
    return ids


def _stored(ledger: Ledger, event_id: str) -> bool:
    try:
        ledger.get(uuid.UUID(event_id))
    except NotFoundError:
        return False
    return True


def _ledger_size(settings: Settings) -> int:
    with LedgerReader.from_url(settings.database_url) as reader:
        return reader.size()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _emit(scenario: str, **fields: Any) -> None:
    print(json.dumps({"scenario": scenario, **fields}), flush=True)
