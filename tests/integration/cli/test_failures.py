"""A command that cannot use its database says so in one line, naming the URL (password masked) and the
cause, and exits 2; a traceback only with ``--debug``. ``qerberos start`` prints why the service did not start.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

QERBEROS = str(Path(sys.executable).parent / "qerberos")
PASSWORD = "s3cret-password"
pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A home initialised on SQLite, then pointed at a PostgreSQL server that is not there."""
    base = {name: value for name, value in os.environ.items() if not name.startswith("QERBEROS_")}
    base |= {
        "QERBEROS_HOME": str(tmp_path / "home"),
        "QERBEROS_LOG_DIR": str(tmp_path / "logs"),
        "QERBEROS_KEY_PASSPHRASE": "passphrase",
        "QERBEROS_PORT": str(free_port()),
        "QERBEROS_LIVE_DETECTION": "off",
    }
    assert 0 == _qerberos(base, tmp_path, "init").returncode
    (tmp_path / "event.json").write_text(
        '{"type":"access","ref":"r","actor":{"squidId":"did:squid:a"},"layer":"qdrive","verdict":"ALLOW"}\n'
    )
    return base | {"QERBEROS_DATABASE_URL": f"postgresql://qerberos:{PASSWORD}@127.0.0.1:{free_port()}/qerberos"}


def _qerberos(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([QERBEROS, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def test_every_command_names_the_unreachable_database_in_one_line(env: dict[str, str], tmp_path: Path) -> None:
    commands = [
        ("init",),
        ("verify",),
        ("checkpoint",),
        ("export", str(tmp_path / "export")),
        ("backup", str(tmp_path / "backup")),
        ("ingest", str(tmp_path / "event.json")),
        ("erase", "--actor", "did:squid:a"),
        ("identity", "list"),
        ("features", "--out", str(tmp_path / "features.parquet")),
        ("report", "run", "--framework", "soc2", "--start", "2026-01-01", "--end", "2026-01-02"),
        ("detect",),
        ("serve",),
    ]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = dict(zip(commands, pool.map(lambda args: _qerberos(env, tmp_path, *args), commands), strict=True))
    masked = env["QERBEROS_DATABASE_URL"].replace(PASSWORD, "***")
    expected_start = f"error: cannot use the database {masked}: OperationalError: "
    wrong = {
        " ".join(args): (done.returncode, done.stderr)
        for args, done in results.items()
        if done.returncode != 2
        or len(done.stderr.splitlines()) != 1
        or not done.stderr.startswith(expected_start)
        or "refused" not in done.stderr.lower()
        or PASSWORD in done.stdout + done.stderr
    }
    assert {} == wrong


def test_debug_shows_the_traceback(env: dict[str, str], tmp_path: Path) -> None:
    plain, debug = (_qerberos(env, tmp_path, *flags, "verify") for flags in ((), ("--debug",)))
    assert (2, False) == (plain.returncode, "Traceback" in plain.stderr)
    assert (True, True) == (plain.returncode != 0, "Traceback (most recent call last)" in debug.stderr)


def test_start_prints_why_the_service_did_not_start(env: dict[str, str], tmp_path: Path) -> None:
    started = _qerberos(env, tmp_path, "start")
    masked = env["QERBEROS_DATABASE_URL"].replace(PASSWORD, "***")
    assert 2 == started.returncode
    assert started.stderr.startswith(f"error: the service exited with code 2: cannot use the database {masked}: ")
    assert str(tmp_path / "logs" / "service.log") in started.stderr


def test_version_and_config_mask_every_password(env: dict[str, str], tmp_path: Path) -> None:
    version = _qerberos(env, tmp_path, "--version")
    assert (0, "qerberos 1.0.0") == (version.returncode, version.stdout.strip())
    shown = _qerberos(
        env
        | {
            "QERBEROS_MLFLOW_TRACKING_URI": f"https://mlflow:{PASSWORD}@mlflow.example:5000",
            "QERBEROS_REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:6379/0",
        },
        tmp_path,
        "config",
    )
    assert (0, False) == (shown.returncode, PASSWORD in shown.stdout)
    assert "https://mlflow:***@mlflow.example:5000" in shown.stdout
