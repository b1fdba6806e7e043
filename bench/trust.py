"""Trust benchmark: checkpoints cosigned by witnesses, tiles served at scale, a monitor catching up.

``python -m bench trust witness --rounds 100``
``python -m bench trust tiles --home DIR --requests 2000`` (DIR: a kept SQLite home, such as the 10-million-entry
log ``python -m bench ledger --events 10000000 --home DIR`` builds)
``python -m bench trust monitor --events 1000000 [--home DIR]`` (builds the log in DIR, or reuses it)

Figures (one JSON object per line):
- ``witness``: a SQLite log under a temporary home and two ``qerberos witness serve`` processes on loopback
  ports. Each round appends 100 events (not timed), then times what the service does once the checkpoint
  interval has passed: ``Ledger.checkpoint`` (the root, the signer's consistency check, signing, the history
  file and the signer's state, each fsynced, the database row) and ``Witnessing.round`` (both witnesses at
  once: proofs from tiles, their checks, their fsynced state, the cosignatures verified and stored).
  ``checkpoint_cosigned_ms`` p50/p99 (target < 50 ms), split into ``sign_ms`` and ``witness_ms``; the limits
  measured in the same run: ``fsync_ms`` (one small file written and fsynced, then its directory: the
  path makes four such writes in sequence, and the witnesses one each in parallel) and ``http_floor_ms``
  (an empty answer from a witness, over the same keep-alive client);
- ``tiles``: ``qerberos serve`` (one worker) on the kept home; sequential keep-alive GETs of random full
  tiles at level 0 and level 1, p50/p99 (target < 2 ms at 10 M entries); ``tile_read_ms``, the same tiles
  read in process without HTTP; ``http_floor_ms``, ``GET /health/live`` on the same connection;
- ``monitor``: ``qerberos serve`` on a log of ``--events`` entries; ``pipelines.monitor.Monitor`` catching up
  from nothing through ``/checkpoint`` and the level-0 tiles (``catch_up_s``, target < 60 s at 1 M), then
  again with a read token, hashing every entry bundle too (``catch_up_with_entries_s``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx

from bench.api import REPO, _bench_identity, _build_store, _emit, _environment, _free_port, _server
from bench.ledger import _event
from models import keys
from models.cosignatures import CosignatureStore
from models.ledger import Ledger, initialise
from models.tiles import TILE_WIDTH, TileReader, TileRequest, tile_path
from models.witness import create_witness_home
from pipelines.monitor import Monitor
from pipelines.witnessing import Witnessing
from qerberos import verifier
from qerberos.settings import Settings, load_settings

_ROUND_EVENTS = 100
T = TypeVar("T")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench trust")
    parser.add_argument("scenario", choices=["witness", "tiles", "monitor"])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--home", type=Path, help="tiles: the kept home to serve; monitor: where to keep the log")
    args = parser.parse_args(argv)
    if args.scenario == "tiles" and args.home is None:
        parser.error("tiles serves a kept log: --home DIR")
    with tempfile.TemporaryDirectory() as scratch:
        {"witness": _witness, "tiles": _tiles, "monitor": _monitor}[args.scenario](args, Path(scratch))


# --- a checkpoint and its cosignatures ----------------------------------------------------------------------


def _witness(args: argparse.Namespace, root: Path) -> None:
    settings = _settings(_environment(root))
    with initialise(settings) as ledger, contextlib.ExitStack() as stack:
        witnesses = []
        for number in (1, 2):
            state = root / f"witness-{number}"
            key = create_witness_home(state, f"w{number}.bench/witness").verifier_key
            witnesses.append((stack.enter_context(_witness_server(state, ledger.verifier_key())), key))
        sign, cosign, total = asyncio.run(_rounds(ledger, witnesses, args.rounds))
        published = CosignatureStore(ledger.engine).published(witnessed=True) or ""
        cosigned = len(verifier.verify_cosignatures(published, [key for _, key in witnesses], 2))
        with httpx.Client() as client:
            floor = _timings(lambda _: client.get(f"{witnesses[0][0]}/{'0' * 64}/checkpoint"), range(200))
    _emit("witness", figure="checkpoint_cosigned_ms", **_cuts(total), rounds=args.rounds, cosignatures=cosigned)
    _emit("witness", figure="sign_ms", **_cuts(sign))
    _emit("witness", figure="witness_ms", **_cuts(cosign))
    _emit("witness", figure="fsync_ms", **_cuts(_timings(lambda _: _fsync(root), range(200))))
    _emit("witness", figure="http_floor_ms", **_cuts(floor))


async def _rounds(
    ledger: Ledger, witnesses: list[tuple[str, str]], rounds: int
) -> tuple[list[float], list[float], list[float]]:
    witnessing = Witnessing(witnesses, timeout=5)
    sign, cosign, total = [], [], []
    try:
        for number in range(rounds + 1):  # the first round warms connections and caches up
            ledger.append([_event(n) for n in range(number * _ROUND_EVENTS, (number + 1) * _ROUND_EVENTS)])
            started = time.perf_counter()
            ledger.checkpoint(force=True)
            signed = time.perf_counter()
            await witnessing.round(ledger)
            done = time.perf_counter()
            if number:
                sign.append((signed - started) * 1000)
                cosign.append((done - signed) * 1000)
                total.append((done - started) * 1000)
    finally:
        await witnessing.aclose()
    return sign, cosign, total


def _fsync(root: Path) -> None:
    path = root / "fsync-probe"
    keys.write_atomically(path, os.urandom(512), 0o644)


# --- tiles --------------------------------------------------------------------------------------------------


def _tiles(args: argparse.Namespace, root: Path) -> None:
    home = args.home.resolve()
    env = _served_home(root, home)
    settings = _settings(env)
    with Ledger.from_settings(settings) as ledger:
        size = ledger.size()
        reader = TileReader(ledger.engine)
        for level in (0, 1):
            full = size // TILE_WIDTH ** (level + 1)
            if not full:
                continue
            picks = [TileRequest(level, random.randrange(full)) for _ in range(args.requests)]
            read = _timings(reader.read, picks)
            _emit("tiles", figure="tile_read_ms", level=level, **_cuts(read), size=size)
    with _server(settings, 1, env), httpx.Client(base_url=f"http://127.0.0.1:{settings.port}") as client:
        for level in (0, 1):
            full = size // TILE_WIDTH ** (level + 1)
            if not full:
                continue
            paths = [f"/tile/{tile_path(TileRequest(level, random.randrange(full)))}" for _ in range(args.requests)]
            served = _timings(lambda path: client.get(path).raise_for_status(), paths)
            _emit("tiles", figure="tile_served_ms", level=level, **_cuts(served), size=size)
        floor = _timings(lambda _: client.get("/health/live").raise_for_status(), range(args.requests))
        _emit("tiles", figure="http_floor_ms", **_cuts(floor))


def _served_home(root: Path, home: Path) -> dict[str, str]:
    """The bench server's environment on a kept home, under the origin its keys were made for."""
    (origin,) = {key.name for key in keys.list_keys(home) if key.active}
    return _environment(root) | {"QERBEROS_HOME": str(home), "QERBEROS_LOG_ORIGIN": origin}


# --- the monitor ----------------------------------------------------------------------------------------------


def _monitor(args: argparse.Namespace, root: Path) -> None:
    home = (args.home or root / "home").resolve()
    kept = (keys.keys_dir(home) / "keys.json").is_file()
    env = _served_home(root, home) if kept else _environment(root) | {"QERBEROS_HOME": str(home)}
    settings = _settings(env)
    missing = args.events
    if kept:
        with Ledger.from_settings(settings) as ledger:
            missing -= ledger.size()
    if missing > 0:
        started = time.perf_counter()
        _build_store(settings, missing)
        _emit("monitor", figure="built", events=missing, seconds=round(time.perf_counter() - started, 1))
    token = _bench_identity(settings)
    with Ledger.from_settings(settings) as ledger:
        ledger.checkpoint(force=True)
        key, size = ledger.verifier_key(), ledger.size()
    with _server(settings, 1, env):
        url = f"http://127.0.0.1:{settings.port}"
        for figure, with_token in (("catch_up_s", None), ("catch_up_with_entries_s", token)):
            started = time.perf_counter()
            with Monitor(url, root / f"state-{figure}", [key], token=with_token) as monitor:
                accepted = monitor.round().size
            _emit("monitor", figure=figure, value=round(time.perf_counter() - started, 2), entries=accepted)
    assert accepted == size


# --- helpers --------------------------------------------------------------------------------------------------


def _settings(env: dict[str, str]) -> Settings:
    os.environ.update(env)
    return load_settings()


def _timings(call: Callable[[T], object], arguments: Iterable[T]) -> list[float]:
    """Milliseconds of ``call(argument)`` for each argument, one after the other."""
    timings = []
    for argument in arguments:
        started = time.perf_counter()
        call(argument)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _cuts(timings: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(timings, n=100)
    return {"p50_ms": round(cuts[49], 3), "p99_ms": round(cuts[98], 3), "max_ms": round(max(timings), 3)}


@contextlib.contextmanager
def _witness_server(state: Path, log_key: str) -> Iterator[str]:
    """``qerberos witness serve`` as a process of its own on a loopback port; its URL."""
    port = _free_port()
    command = [sys.executable, "-c", "from cli import main; main()", "witness", "serve"]
    command += ["--state", str(state), "--log", log_key, "--port", str(port)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{url}/{'0' * 64}/checkpoint", timeout=1)
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the witness did not start (exit {process.poll()})")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
