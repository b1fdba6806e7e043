"""``qerberos`` commands as real processes on loopback ports (the witness, the log's API), and forked logs."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from sqlalchemy import select

from models.database import create_ledger_engine, create_schema
from models.ledger import Ledger
from models.signing import LogSigner
from models.tables import LEDGER_TABLES
from tests.conftest import free_port
from tests.integration.security.servers import stop

ROOT = Path(__file__).resolve().parents[3]
QERBEROS = [sys.executable, "-c", "from cli import main; main()"]


@contextlib.contextmanager
def qerberos_process(
    args: list[str], ready: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``qerberos ARGS`` running until the block ends; ready once ``GET ready`` answers at all."""
    process = subprocess.Popen(
        [*QERBEROS, *args],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)} | (env or {}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"qerberos {args[0]} exited: {process.stderr.read().decode() if process.stderr else ''}"
                )
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(ready, timeout=0.5)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"qerberos {args[0]} did not answer at {ready}")
            time.sleep(0.05)
        yield process
    finally:
        stop(process)


@contextlib.contextmanager
def witness_server(state: Path, log_keys: list[str]) -> Iterator[str]:
    """``qerberos witness serve`` for ``log_keys``; its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["witness", "serve", "--state", str(state), "--port", str(port)]
    for key in log_keys:
        args += ["--log", key]
    with qerberos_process(args, f"{url}/{'0' * 64}/checkpoint"):
        yield url


def fork(ledger: Ledger, source_home: Path, home: Path, database_url: str) -> Ledger:
    """A second log that holds exactly ``ledger``'s entries so far and signs with the same key, from a home of
    its own (a copy of the keys, no memory of what the first signed): a log whose key holder forks it."""
    shutil.copytree(source_home / "keys", home / "keys", ignore=shutil.ignore_patterns("signed-checkpoint"))
    engine = create_ledger_engine(database_url)
    create_schema(engine)
    with ledger.engine.connect() as source, engine.begin() as target:
        for model in LEDGER_TABLES:
            table = model.__table__  # type: ignore[attr-defined]
            rows = [dict(row._mapping) for row in source.execute(select(table))]
            if rows:
                target.execute(table.insert(), rows)
    return Ledger(engine, LogSigner.load(home, ledger.origin, None))


@contextlib.contextmanager
def log_server(home: Path, database_url: str, origin: str) -> Iterator[str]:
    """``qerberos serve`` of the log in ``home`` and ``database_url`` (initialised), checkpoints every 0.2 s."""
    port = free_port()
    env = {
        "QERBEROS_HOME": str(home),
        "QERBEROS_DATABASE_URL": database_url,
        "QERBEROS_LOG_ORIGIN": origin,
        "QERBEROS_PORT": str(port),
        "QERBEROS_CHECKPOINT_INTERVAL": "0.2",
        "QERBEROS_LIVE_DETECTION": "off",
        "QERBEROS_LOG_DIR": str(home / "logs"),
        "QERBEROS_WITNESSES": "",
    }
    url = f"http://127.0.0.1:{port}"
    with qerberos_process(["serve"], f"{url}/health/live", env):
        yield url
