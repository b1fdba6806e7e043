"""``python -m bench detection``: live detection latency under load, and scoring throughput with the champion.

1. Latency: a SQLite ledger receives ``--rate`` background events per second (normal traffic of ``--identities``
   identities, appended every 100 ms) while ``LiveDetection`` tails it; every few seconds a brute-force attack
   (12 DENY sign-ins) is appended for a fresh victim, and the time from its last event's append to its alert
   in the ``alerts`` table is measured. Target: under 10 s at 1,000 events/s.
2. Throughput: ``--rows`` feature rows scored by the champion in one call, best of ``--repeat`` calls (target:
   100,000 rows/s or more). The call scores in chunks on every core, so its CPU seconds (all threads) are
   printed too: on a busy machine rows per CPU second are the steadier figure.

Without ``--tracking-uri`` a detector is trained on simulated traffic into a temporary MLflow store first.
Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import polars as pl

from analytics.detectors import load_config
from analytics.rules import load_detection_config
from analytics.simulation import SimulationConfig, simulate
from analytics.window_features import FEATURE_COLUMNS, compute_features
from models.alerts import AlertStore
from models.ledger import initialise
from models.records import Actor, NewEvent
from pipelines.live_detection import LiveDetection
from pipelines.model_registry import ChampionWatcher, load_champion, set_champion, use_tracking_uri
from qerberos.settings import load_settings

_TYPES = (("qdrive", "access"), ("qdrive", "download"), ("qmail", "read"), ("qchat", "message"), ("squid", "login"))


def _emit(line: dict[str, object]) -> None:
    print(json.dumps(line), flush=True)


def _train(root: Path) -> str:

    from pipelines.train import train

    uri = f"sqlite:///{root / 'mlflow.db'}"
    use_tracking_uri(uri)
    result = simulate(SimulationConfig(identities=60, days=7, seed=1))
    features = compute_features(result.events.lazy(), "1h").collect()
    trained = train(features, config=load_config(), tracking_uri=uri, gate=False)
    set_champion(uri, trained.version, tags={"promoted_by": "bench"})
    return uri


def _background(ledger: object, rate: int, identities: int, stop: threading.Event, counter: list[int]) -> None:
    rng = random.Random(7)
    per_tick = max(1, rate // 10)
    next_tick = time.monotonic()
    while not stop.is_set():
        now = dt.datetime.now(dt.UTC)
        batch = []
        for _ in range(per_tick):
            who = rng.randrange(identities)
            layer, kind = rng.choice(_TYPES)
            batch.append(NewEvent(type=kind, ref=f"{layer}:{who}:{rng.randrange(30)}", actor=Actor(f"did:squid:u{who}"),
                                  layer=layer, verdict="ALLOW", source="bench",
                                  details={"ip": f"10.0.{who % 250}.1", "country": "DE"}, occurred_at=now))  # fmt: skip
        ledger.append(batch)  # type: ignore[attr-defined]
        counter[0] += len(batch)
        next_tick += 0.1
        stop.wait(max(0.0, next_tick - time.monotonic()))


def latency(tracking_uri: str, rate: int, identities: int, attacks: int, work: Path) -> None:
    os.environ["QERBEROS_HOME"] = str(work / "home")
    os.environ.pop("QERBEROS_DATABASE_URL", None)
    ledger = initialise(load_settings())
    config = load_detection_config()
    config = dataclasses.replace(config, live=dataclasses.replace(config.live, poll_seconds=0.5))
    detection = LiveDetection(ledger, ChampionWatcher(tracking_uri), config=config, tracking_uri=tracking_uri)
    detection.refresh_model()
    detection.start()
    store = AlertStore(ledger.engine)
    stop, counter = threading.Event(), [0]
    traffic = threading.Thread(target=_background, args=(ledger, rate, identities, stop, counter), daemon=True)
    started = time.monotonic()
    traffic.start()
    latencies = []
    try:
        time.sleep(5)  # warm up: the engine is tailing steady traffic
        for n in range(attacks):
            victim = f"did:squid:victim{n}-{uuid.uuid4().hex[:6]}"
            now = dt.datetime.now(dt.UTC)
            attack = [NewEvent(type="login", ref=f"identity:{victim}", actor=Actor(victim), layer="squid",
                               verdict="DENY", source="bench", details={"ip": "95.24.1.1", "country": "RU"},
                               occurred_at=now + dt.timedelta(milliseconds=i)) for i in range(12)]  # fmt: skip
            ledger.append(attack)
            appended = time.monotonic()
            while not store.active_for(victim) and time.monotonic() - appended < 30:
                time.sleep(0.05)
            latencies.append(time.monotonic() - appended if store.active_for(victim) else float("inf"))
            time.sleep(2)
    finally:
        stop.set()
        traffic.join()
        detection.stop()
        elapsed = time.monotonic() - started
        ledger.close()
    _emit({"bench": "detection.attack_to_alert", "background_events_per_second": round(counter[0] / elapsed, 1),
           "attacks": attacks, "latency_seconds_max": round(max(latencies), 3),
           "latency_seconds_median": round(float(np.median(latencies)), 3), "target_seconds": 10})  # fmt: skip


def throughput(tracking_uri: str, rows: int, repeat: int) -> None:
    detector = load_champion(tracking_uri)
    if detector is None:
        raise SystemExit("no champion in the MLflow store")
    rng = np.random.default_rng(3)
    frame = pl.DataFrame({c: rng.gamma(1.5, 2.0, rows) for c in FEATURE_COLUMNS})
    detector.score(frame.head(100))
    timings = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        detector.score(frame)
        timings.append((time.perf_counter() - wall, time.process_time() - cpu))
    seconds, cpu_seconds = min(timings)
    _emit(
        {
            "bench": "detection.scoring",
            "model_version": detector.version,
            "rows": rows,
            "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu_seconds, 3),
            "rows_per_second": round(rows / seconds),
            "rows_per_cpu_second": round(rows / cpu_seconds),
            "cores": os.cpu_count(),
            "target_rows_per_second": 100_000,
        }
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench detection", description=__doc__)
    parser.add_argument("--tracking-uri", help="MLflow store with a champion (default: train one in a temp dir)")
    parser.add_argument("--rate", type=int, default=1000, help="background events per second")
    parser.add_argument("--identities", type=int, default=2000)
    parser.add_argument("--attacks", type=int, default=5)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="scoring calls; the fastest is reported")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-detection-") as scratch:
        work = Path(scratch)
        uri = args.tracking_uri or _train(work / "mlflow")
        throughput(uri, args.rows, args.repeat)
        latency(uri, args.rate, args.identities, args.attacks, work)
