"""start / status / restart / stop of a real service process on a loopback port.

No acknowledged event is lost across a restart, stop writes a last checkpoint covering every event,
and with several workers /metrics adds up every worker's counts. A worker that is slow is not taken for a
dead one; stop signals only our server, never what a stale pid file names; and what the service writes
under QERBEROS_HOME is its user's alone.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from models.ledger import Ledger, checkpoint_size, initialise
from qerberos.settings import Settings
from tests.conftest import free_port, make_settings
from tests.integration.api.conftest import METRICS_TOKEN, event_body

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, dict[str, str]]]:
    port = free_port()
    variables = {
        "QERBEROS_PORT": str(port),
        "QERBEROS_HOST": "127.0.0.1",
        "QERBEROS_LOG_DIR": str(tmp_path / "logs"),
        "QERBEROS_METRICS_TOKEN": METRICS_TOKEN,
        "QERBEROS_CHECKPOINT_INTERVAL": "60",
        "QERBEROS_AUTH_MODE": "local",
        "QERBEROS_LOG_LEVEL": "WARNING",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings = make_settings(monkeypatch, tmp_path / "home")
    initialise(settings).close()
    env = {**os.environ, "QERBEROS_HOME": str(settings.home)}
    yield settings, env
    _cli(env, "stop", "--timeout", "20")


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.serve", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _url(settings: Settings, path: str) -> str:
    return f"http://127.0.0.1:{settings.port}{path}"


def _admin(settings: Settings) -> dict[str, str]:
    """The admin token ``serve`` leaves in QERBEROS_HOME on first start in local mode."""
    path = settings.home / "admin.token"
    assert 0o600 == path.stat().st_mode & 0o777
    return {"Authorization": f"Bearer {path.read_text().strip()}"}


def test_restart_loses_no_acknowledged_event_and_stop_writes_a_last_checkpoint(
    service: tuple[Settings, dict[str, str]],
) -> None:
    settings, env = service
    started = _cli(env, "start")
    assert 0 == started.returncode, started.stderr
    assert 0 == _cli(env, "status").returncode
    headers = _admin(settings)
    assert 401 == httpx.post(_url(settings, "/audit"), json=event_body(0), timeout=5).status_code

    acknowledged: list[str] = []
    stop_posting = threading.Event()

    def post_continuously() -> None:
        n = 0
        while not stop_posting.is_set():
            event_id = str(uuid.uuid4())
            try:
                response = httpx.post(
                    _url(settings, "/audit"), json=event_body(n, id=event_id), headers=headers, timeout=5
                )
            except httpx.HTTPError:
                continue  # refused while restarting: not acknowledged, the client would retry
            if response.status_code == 201:
                acknowledged.append(event_id)
            n += 1

    poster = threading.Thread(target=post_continuously)
    poster.start()
    try:
        while len(acknowledged) < 20:
            threading.Event().wait(0.05)
        restarted = _cli(env, "restart")
        before = len(acknowledged)
        while len(acknowledged) < before + 20:
            threading.Event().wait(0.05)
    finally:
        stop_posting.set()
        poster.join(timeout=30)

    assert 0 == restarted.returncode, restarted.stderr
    with httpx.Client(timeout=5, headers=headers) as client:
        missing = [
            event_id for event_id in acknowledged if client.get(_url(settings, f"/audit/{event_id}")).status_code != 200
        ]
    assert [] == missing

    stopped = _cli(env, "stop")
    assert 0 == stopped.returncode, stopped.stderr
    assert 1 == _cli(env, "status").returncode
    ledger = Ledger.from_settings(settings)
    try:
        assert ledger.size() >= len(acknowledged)
        assert ledger.size() == checkpoint_size(ledger.checkpoint())
    finally:
        ledger.close()


def test_config_prints_settings_without_secrets(service: tuple[Settings, dict[str, str]]) -> None:
    _, env = service
    printed = _cli(env, "config")
    assert 0 == printed.returncode
    assert METRICS_TOKEN not in printed.stdout
    assert '"metrics_token": "***"' in printed.stdout


def test_metrics_add_up_across_two_workers(service: tuple[Settings, dict[str, str]]) -> None:
    settings, env = service
    started = _cli(env, "start", "--workers", "2")
    assert 0 == started.returncode, started.stderr

    headers = _admin(settings)
    for n in range(30):  # a new connection each time, so both workers take requests
        response = httpx.post(_url(settings, "/audit"), json=event_body(n), headers=headers, timeout=5)
        assert 201 == response.status_code
    text = httpx.get(_url(settings, "/metrics"), headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    posted = samples[("qerberos_http_requests_total", (("method", "POST"), ("route", "/audit"), ("status", "201")))]
    ingested = sum(value for (name, _), value in samples.items() if name == "qerberos_events_ingested_total")
    assert (30.0, 30.0) == (posted, ingested)
    assert samples[("process_workers", ())] >= 3
    assert 0 == _cli(env, "stop").returncode


def _pid_file(settings: Settings) -> Path:
    return settings.home / f"qerberos-{socket.gethostname()}-{settings.port}.pid"


def _wait_answering(settings: Settings, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if 200 == httpx.get(_url(settings, "/health/live"), timeout=1).status_code:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    pytest.fail(f"serve did not answer (exit code {process.poll()})")


def test_a_foreground_serve_stopped_by_sigterm_removes_its_pid_file_and_exits_0(
    service: tuple[Settings, dict[str, str]],
) -> None:
    settings, env = service
    process = subprocess.Popen([sys.executable, "-m", "cli.serve", "serve"], env=env, cwd=REPO)
    try:
        _wait_answering(settings, process)
        assert f"{process.pid}\n" == _pid_file(settings).read_text()
        process.send_signal(signal.SIGTERM)
        assert 0 == process.wait(60)
    finally:
        process.kill()
        process.wait()
    assert not _pid_file(settings).exists()
    assert "not running" == _cli(env, "status").stdout.strip()


def test_stop_leaves_the_unrelated_process_a_stale_pid_file_names_alive_and_says_so(
    service: tuple[Settings, dict[str, str]],
) -> None:
    settings, env = service
    unrelated = subprocess.Popen(["sleep", "300"])
    try:
        _pid_file(settings).write_text(f"{unrelated.pid}\n")  # what a server killed with SIGKILL leaves
        stopped = _cli(env, "stop")
        assert (0, "not running") == (stopped.returncode, stopped.stdout.strip())
        assert f"naming pid {unrelated.pid}, which is no qerberos server: nothing signalled" in stopped.stderr
        assert None is unrelated.poll()
        assert not _pid_file(settings).exists()
    finally:
        unrelated.kill()
        unrelated.wait()


_HOLD_THE_GIL = textwrap.dedent("""\
    # Test only (on PYTHONPATH of one test's service): SIGUSR1 blocks the main thread, its event loop, for 8 s
    # in a C call that keeps the GIL, so that no thread of the worker (uvicorn's ping answerer included) runs.
    import ctypes
    import signal

    signal.signal(signal.SIGUSR1, lambda _signum, _frame: ctypes.PyDLL(None).sleep(8))
""")


def test_a_worker_whose_event_loop_is_blocked_past_uvicorns_5_s_ping_is_not_restarted(
    service: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, env = service
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_HOLD_THE_GIL)
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(hooks), env.get("PYTHONPATH")]))}
    assert 0 == _cli(env, "start", "--workers", "2").returncode
    server = psutil.Process(int(_pid_file(settings).read_text()))
    workers = {child.pid for child in server.children() if "spawn_main" in " ".join(child.cmdline())}
    assert 2 == len(workers)

    blocked = min(workers)
    os.kill(blocked, signal.SIGUSR1)
    threading.Event().wait(12)  # the block, and the supervisor's pings through it and after

    assert workers == {child.pid for child in server.children() if "spawn_main" in " ".join(child.cmdline())}
    headers = _admin(settings)
    for n in range(6):  # each on a new connection: both workers answer
        assert 201 == httpx.post(_url(settings, "/audit"), json=event_body(n), headers=headers, timeout=10).status_code


def test_what_the_service_writes_under_its_home_is_its_users_alone(service: tuple[Settings, dict[str, str]]) -> None:
    settings, env = service
    assert 0 == _cli(env, "start").returncode
    headers = _admin(settings)
    for n in range(3):
        assert 201 == httpx.post(_url(settings, "/audit"), json=event_body(n), headers=headers, timeout=10).status_code
    assert 200 == httpx.get(_url(settings, "/ledger/checkpoint"), headers=headers, timeout=10).status_code
    database = settings.home / "qerberos.db"
    written = {path.name: stat.S_IMODE(path.stat().st_mode) for path in settings.home.glob("qerberos.db*")}
    assert {"qerberos.db": 0o600, "qerberos.db-wal": 0o600, "qerberos.db-shm": 0o600} == written
    qerberos = str(Path(sys.executable).parent / "qerberos")
    report = subprocess.run(
        [qerberos, "report", "run", "--framework", "gdpr", "--start", "2026-01-01", "--end", "2026-02-01"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert 0 == report.returncode, report.stderr
    assert 0 == _cli(env, "stop").returncode

    public = {settings.home / "keys" / "keys.json"}  # the verifier keys: public by design
    shared = {
        str(path.relative_to(settings.home)): oct(stat.S_IMODE(path.stat().st_mode))
        for path in [settings.home, *settings.home.rglob("*")]
        if path not in public and path.stat().st_mode & 0o077
    }
    assert {} == shared
    assert database.exists() and any((settings.home / "reports").rglob("report.pdf"))
