"""Service commands: serve (foreground), start (background), stop, restart, status, config.

``serve`` runs uvicorn on ``QERBEROS_HOST:QERBEROS_PORT`` with ``api.app:serve_app`` in each worker and
keeps a pid file (``QERBEROS_HOME/qerberos-<host>-<port>.pid``) while it runs, so ``stop`` and ``status``
also work on a foreground service, and several replicas (one per host and port) can share one home.
``start`` launches ``serve`` detached, its output appended to ``QERBEROS_LOG_DIR/service.log``, and returns
once the service answers ``/health/live``. ``stop`` sends SIGTERM: uvicorn stops accepting connections,
finishes the requests in flight, and the app writes a last checkpoint before exiting.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import httpx
import typer

from qerberos.cli._common import EXIT_CANNOT_RUN, EXIT_REFUSED, fail
from qerberos.settings import Settings, get_settings

STARTUP_TIMEOUT = 30.0
GRACEFUL_SHUTDOWN_SECONDS = 30


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("start")(start)
    app.command("stop")(stop)
    app.command("restart")(restart)
    app.command("status")(status)
    app.command("config")(config)


Workers = Annotated[int | None, typer.Option("--workers", "-w", min=1, help="Worker processes (QERBEROS_WORKERS).")]


def serve(workers: Workers = None) -> None:
    """Run the API in the foreground until SIGTERM or Ctrl-C."""
    import uvicorn

    from qerberos.logging import configure_logging

    settings = get_settings()
    count = workers or settings.workers
    configure_logging(settings.log_level, settings.log_dir)
    if count > 1:
        _prepare_multiprocess_metrics(settings)
    if settings.auth_mode == "local":
        _ensure_admin(settings)
    with _pid_file(settings):
        uvicorn.run(
            "api.app:serve_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=count,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            server_header=False,
        )


def start(workers: Workers = None) -> None:
    """Start the API in the background and wait until it answers."""
    settings = get_settings()
    running = _running_pid(settings)
    if running is not None:
        raise fail(f"already running (pid {running})", EXIT_REFUSED)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "qerberos.cli.serve", "serve"]
    if workers is not None:
        command += ["--workers", str(workers)]
    with open(settings.log_dir / "service.log", "ab") as output:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise fail(f"the service exited with code {process.returncode}; see {settings.log_dir / 'service.log'}")
        if _answers(settings):
            typer.echo(f"started (pid {process.pid}) on http://{settings.host}:{settings.port}")
            return
        time.sleep(0.2)
    raise fail(f"the service did not answer within {STARTUP_TIMEOUT:.0f} s; see {settings.log_dir / 'service.log'}")


def stop(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a graceful exit before SIGKILL.")] = 60.0,
) -> None:
    """Stop gracefully: no new connections, in-flight requests finish, a last checkpoint is written."""
    settings = get_settings()
    pid = _running_pid(settings)
    if pid is None:
        typer.echo("not running")
        return
    os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout):
        typer.echo(f"stopped (pid {pid})")
        return
    os.kill(pid, signal.SIGKILL)
    _pid_path(settings).unlink(missing_ok=True)
    raise fail(f"pid {pid} did not stop within {timeout:.0f} s and was killed", EXIT_CANNOT_RUN)


def restart(workers: Workers = None) -> None:
    """Stop (gracefully) and start again."""
    stop()
    start(workers)


def status() -> None:
    """Say whether the service runs and answers; exit 1 when it does not."""
    settings = get_settings()
    pid = _running_pid(settings)
    if pid is None:
        typer.echo("not running")
        raise typer.Exit(EXIT_REFUSED)
    answering = _answers(settings)
    state = "running" if answering else "running but not answering"
    typer.echo(f"{state} (pid {pid}) on http://{settings.host}:{settings.port}")
    if not answering:
        raise typer.Exit(EXIT_REFUSED)


def config() -> None:
    """Print the effective settings as JSON, secrets masked."""
    typer.echo(json.dumps(get_settings().public_view(), indent=2, sort_keys=True))


def _pid_path(settings: Settings) -> Path:
    """One pid file per host and port: replicas may share a home (a volume), each keeps its own."""
    return settings.home / f"qerberos-{socket.gethostname()}-{settings.port}.pid"


def running_services(home: Path) -> list[int]:
    """The pids of this host's services of this home that are alive, whatever their port."""
    pids = []
    for path in home.glob(f"qerberos-{socket.gethostname()}-*.pid"):
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError):
            continue
        if _alive(pid):
            pids.append(pid)
    return pids


def _running_pid(settings: Settings) -> int | None:
    """The pid in the pid file if that process is alive (a stale file is removed)."""
    path = _pid_path(settings)
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if _alive(pid):
        return pid
    path.unlink(missing_ok=True)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        finished, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child
        if finished == pid:
            return False
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)


@contextlib.contextmanager
def _pid_file(settings: Settings) -> Iterator[None]:
    running = _running_pid(settings)
    if running is not None and running != os.getpid():
        raise fail(f"already running (pid {running})", EXIT_REFUSED)
    settings.home.mkdir(parents=True, exist_ok=True)
    path = _pid_path(settings)
    path.write_text(f"{os.getpid()}\n")
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError):
            if int(path.read_text().strip()) == os.getpid():
                path.unlink()


def _ensure_admin(settings: Settings) -> None:
    from models.database import create_ledger_engine
    from models.identities import ensure_admin_token_file

    engine = create_ledger_engine(settings.database_url)
    try:
        path = ensure_admin_token_file(engine, settings.home)
    finally:
        engine.dispose()
    if path is not None:
        typer.echo(f"created the admin identity; its bearer token is in {path} (mode 600)", err=True)


def _prepare_multiprocess_metrics(settings: Settings) -> None:
    """Workers share metrics through files; a fresh directory per run (stale files would add up)."""
    directory = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or settings.home / "prometheus")
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _answers(settings: Settings) -> bool:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    try:
        return httpx.get(f"http://{host}:{settings.port}/health/live", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    """``python -m qerberos.cli.serve``: these commands alone (``start`` launches ``serve`` this way)."""
    app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
    register(app)
    app()


if __name__ == "__main__":
    main()
