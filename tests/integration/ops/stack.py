"""Real processes on loopback ports for the ops integration tests: start, wait until they answer, stop.

Every process runs in a session of its own, so stopping it (SIGTERM, then SIGKILL after a bounded wait)
reaches the workers it spawned too (MLflow's uvicorn, Prometheus). Its output goes to a log file whose
tail is quoted when it fails to come up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import psycopg
import pytest
from redis import Redis
from redis.exceptions import RedisError

from tests.conftest import POSTGRES_ADMIN_URL

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent  # the venv's bin: qerberos, mlflow
REDIS_URL = os.environ.get("QERBEROS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
STARTUP_SECONDS = 60.0  # two shared cores under load: MLflow alone may take 20 s to import
STOP_SECONDS = 20.0


@contextlib.contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (its libpq URL), dropped afterwards. Missing PostgreSQL fails."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
        try:
            yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def redis_db_url(db: int) -> str:
    """``REDIS_URL`` on database ``db``, after checking Redis answers (missing Redis fails, never skips)."""
    url = REDIS_URL.rsplit("/", 1)[0] + f"/{db}"
    client = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        pytest.fail(f"Redis is not reachable at {url}: {exc}")
    finally:
        client.close()
    return url


def cli(env: Mapping[str, str], *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``qerberos ARGS`` as a real process."""
    return subprocess.run(
        [str(BIN / "qerberos"), *args],
        env=dict(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Service:
    """One long-running process with its log file."""

    def __init__(
        self, name: str, command: Sequence[str], env: Mapping[str, str], log_dir: Path, cwd: Path = REPO
    ) -> None:
        self.name = name
        self.cwd = cwd
        self.command = list(command)
        self.env = dict(env)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = log_dir / f"{name}.out"
        self._process: subprocess.Popen[bytes] | None = None
        self._terminated = False

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self._process is not None, f"{self.name} was not started"
        return self._process

    def start(self) -> Service:
        self._terminated = False
        with self.log.open("ab") as output:
            self._process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no output)"

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float = STARTUP_SECONDS) -> None:
        """Poll ``ready`` until it is true; fail at once if the process exits, or after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode} before {what}:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if ready():
                    return
            time.sleep(0.25)
        pytest.fail(f"{self.name}: not {what} within {timeout:.0f} s:\n{self.tail()}")

    def wait_http(self, url: str, timeout: float = STARTUP_SECONDS, **kwargs: object) -> None:
        """Until ``GET url`` answers 200."""
        self.wait_until(
            lambda: httpx.get(url, timeout=2.0, **kwargs).status_code == 200,  # type: ignore[arg-type]
            f"answering {url}",
            timeout,
        )

    def terminate(self) -> None:
        """SIGTERM to its session without waiting (stopping several services at once; ``stop`` then waits)."""
        if self._process is not None and self._process.poll() is None:
            self._signal(signal.SIGTERM)
            self._terminated = True

    def stop(self, timeout: float = STOP_SECONDS) -> int | None:
        """SIGTERM to its session, SIGKILL after ``timeout``; the exit code (None if never started)."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            if not self._terminated:
                self._signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._process.wait(5)
        self._signal(signal.SIGKILL)  # workers the leader left behind, if any
        return self._process.returncode

    def _signal(self, which: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, which)  # the session this object started (start_new_session)


@contextlib.contextmanager
def running(service: Service) -> Iterator[Service]:
    """Start ``service`` and stop it however the block ends."""
    service.start()
    try:
        yield service
    finally:
        service.stop()
