"""Footprint benchmark: what ``qerberos --help`` costs, and the resident memory of an API process.

``python -m bench footprint --events 1000000``

1. ``qerberos --help``: wall time, CPU time (user + system: steadier than wall time on a shared machine)
   and peak RSS of the process, median of ``--runs`` runs;
2. for live detection ``off`` (a replica) and ``embedded`` (the one-machine default): a real ``qerberos
   serve`` (one worker) on a fresh ``QERBEROS_HOME`` (SQLite), its RSS once it answers, then after
   ``--events`` events ingested through ``POST /audit/batch`` (1,000 a request), and the RSS of the whole
   process tree at the end. One JSON line per measurement.

``--tracking-uri`` points the servers at an MLflow store that has a champion (else each has a fresh, empty
store): embedded detection then loads it, and its idle figure is taken once ``qerberos_detector_model_loaded``
says so (``champion_loaded``).

Figures, with the command that produced them: README.md, "Benchmarks".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

QERBEROS = str(Path(sys.executable).parent / "qerberos")
BATCH = 1000
STARTUP_SECONDS = 600.0


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench footprint")
    parser.add_argument("--events", type=int, default=1_000_000, help="events ingested before the last RSS")
    parser.add_argument("--runs", type=int, default=3, help="runs of qerberos --help")
    parser.add_argument("--modes", default="off,embedded", help="live detection modes to measure")
    parser.add_argument("--tracking-uri", help="an MLflow store with a champion, for the servers to load")
    args = parser.parse_args(argv)
    _help_cost(args.runs)
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory(prefix="qerberos-footprint-") as root:
            _serve_rss(Path(root), mode, args.events, args.tracking_uri)


def _emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _help_cost(runs: int) -> None:
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        subprocess.run([QERBEROS, "--help"], capture_output=True, check=True)
        walls.append(time.perf_counter() - began)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    _emit(measure="help", wall_s=round(statistics.median(walls), 2), cpu_s=round(statistics.median(cpus), 2),
          peak_rss_mb=round(peak_mb, 1), load_average=os.getloadavg()[0])  # fmt: skip


def _tree_rss_mb(pid: int) -> float:
    process = psutil.Process(pid)
    members = [process, *process.children(recursive=True)]
    total: int = sum(member.memory_info().rss for member in members)
    return round(total / 2**20, 1)


def _serve_rss(root: Path, mode: str, events: int, tracking_uri: str | None) -> None:
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("QERBEROS_")}
    env |= {"QERBEROS_HOME": str(root / "home"), "QERBEROS_LOG_DIR": str(root / "logs"), "QERBEROS_PORT": str(port),
            "QERBEROS_LIVE_DETECTION": mode, "QERBEROS_RATE_LIMIT_PER_MINUTE": "0", "QERBEROS_LOG_LEVEL": "WARNING",
            "QERBEROS_CHECKPOINT_INTERVAL": "60"}  # fmt: skip
    if tracking_uri:
        env["QERBEROS_MLFLOW_TRACKING_URI"] = tracking_uri
    subprocess.run([QERBEROS, "init"], env=env, capture_output=True, check=True)
    token = (root / "home" / "admin.token").read_text().strip()
    with (root / "serve.log").open("wb") as log:
        server = subprocess.Popen([QERBEROS, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(base, server)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
            loaded = tracking_uri is not None and mode != "off" and _wait_for_champion(client)
            _emit(measure="serve", live_detection=mode, events=0, rss_mb=_tree_rss_mb(server.pid),
                  champion_loaded=loaded)  # fmt: skip
            began = time.perf_counter()
            for start in range(0, events, BATCH):
                batch = [_event(n) for n in range(start, min(start + BATCH, events))]
                client.post("/audit/batch", json=batch).raise_for_status()
            _emit(measure="serve", live_detection=mode, events=events, rss_mb=_tree_rss_mb(server.pid),
                  ingest_s=round(time.perf_counter() - began, 1))  # fmt: skip
    finally:
        server.terminate()
        server.wait(120)


def _wait(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"qerberos serve exited with {server.returncode}")
        try:
            if httpx.get(f"{base}/health/live", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("qerberos serve did not answer")


def _wait_for_champion(client: httpx.Client) -> bool:
    """Whether the server's metrics say a model is loaded within ``STARTUP_SECONDS``."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if "qerberos_detector_model_loaded 1.0" in client.get("/metrics").text:
            return True
        time.sleep(1.0)
    return False


def _event(n: int) -> dict[str, Any]:
    return {
        "type": ("access", "login", "share")[n % 3],
        "ref": f"file:doc-{n % 5000}",
        "actor": {"squidId": f"did:squid:user{n % 500}"},
        "layer": ("qdrive", "qmail", "qwallet")[n % 3],
        "verdict": ("ALLOW", "ALLOW", "DENY")[n % 3],
        "details": {"n": n},
    }


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
