"""``qerberos serve --workers 2`` without Redis: both workers share one replay memory and one rate limit (the
host's shared state in QERBEROS_HOME). Each proof uses two kept-alive connections that /health/detailed
showed to be served by different worker processes."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from models.database import create_ledger_engine
from models.identities import create_identity
from models.schema import prepare
from tests.conftest import free_port, make_settings
from tests.unit.security.helpers import sign
from tests.unit.security.test_local_mode import PUBLIC_KEY

REPO = Path(__file__).resolve().parents[3]
PER_MINUTE = 20
FINDERS = 10
pytestmark = pytest.mark.slow


@dataclasses.dataclass(frozen=True)
class Served:
    port: int
    tokens: dict[str, str]


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    port = free_port()
    for name, value in {
        "QERBEROS_PORT": str(port),
        "QERBEROS_HOST": "127.0.0.1",
        "QERBEROS_AUTH_MODE": "local",
        "QERBEROS_RATE_LIMIT_PER_MINUTE": str(PER_MINUTE),
        "QERBEROS_LOG_LEVEL": "WARNING",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("QERBEROS_REDIS_URL", "QERBEROS_WORKERS", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = make_settings(monkeypatch, tmp_path / "home")
    prepare(settings).close()
    engine = create_ledger_engine(settings.database_url)
    try:
        signer = {"squid_id": "alice", "public_key": PUBLIC_KEY}
        identities = [*((f"finder-{n}", {}) for n in range(FINDERS)), ("reader", {}), ("signer", signer)]
        tokens = {name: create_identity(engine, name, ["audit:read"], **extra)[1] for name, extra in identities}
    finally:
        engine.dispose()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.serve", "serve", "--workers", "2"],
        cwd=REPO,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(port, process)
        yield Served(port, tokens)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180  # two workers importing the stack on a loaded machine
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("serve did not get ready")


def _get(connection: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read() or b"{}")


@contextlib.contextmanager
def _one_connection_per_worker(served: Served) -> Iterator[list[http.client.HTTPConnection]]:
    """Two kept-alive connections answered by two different worker processes (their pids differ).

    The second worker may still be starting when the first answers: new connections are tried for a while,
    each finder identity within its rate limit, and the connection found first is kept busy meanwhile
    (uvicorn closes a connection idle for 5 s)."""
    by_pid: dict[object, http.client.HTTPConnection] = {}
    try:
        for attempt in range(FINDERS * PER_MINUTE):
            finder = {"Authorization": f"Bearer {served.tokens[f'finder-{attempt // PER_MINUTE}']}"}
            connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
            status, body = _get(connection, "/health/detailed", finder)
            assert 200 == status, body
            if body["pid"] in by_pid:
                connection.close()
                time.sleep(0.5)
                for kept in by_pid.values():
                    assert 200 == _get(kept, "/health/live", {})[0]  # public: no rate limit
                continue
            by_pid[body["pid"]] = connection
            if len(by_pid) == 2:
                yield list(by_pid.values())
                return
        raise AssertionError(f"every connection went to one worker (pids {list(by_pid)})")
    finally:
        for connection in by_pid.values():
            connection.close()


def test_a_signature_used_on_one_worker_is_refused_by_the_other(served: Served) -> None:
    headers = sign("GET", "/audit")
    with _one_connection_per_worker(served) as (one, other):
        first, _ = _get(one, "/audit", headers)
        replayed, body = _get(other, "/audit", headers)

    assert (200, 401, "SIGNATURE_INVALID") == (first, replayed, body["code"])


def test_a_rate_limit_holds_at_its_value_across_both_workers(served: Served) -> None:
    reader = {"Authorization": f"Bearer {served.tokens['reader']}"}
    with _one_connection_per_worker(served) as connections:
        statuses = [
            _get(connection, "/audit", reader)[0] for _ in range(PER_MINUTE // 2 + 1) for connection in connections
        ]

    assert [200] * PER_MINUTE + [429, 429] == statuses
