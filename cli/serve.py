"""Service commands: serve (foreground), start (background), stop, restart, status, config.

``serve`` runs uvicorn on ``QERBEROS_HOST:QERBEROS_PORT`` with ``api.app:serve_app`` in each worker and
holds a pid file (``QERBEROS_HOME/qerberos-<host>-<port>.pid``, locked while it runs: ``_pidfile``), so
``stop`` and ``status`` also work on a foreground service, and several replicas (one per host and port) can
share one home. uvicorn replaces a worker that does not answer its supervisor's ping within
``QERBEROS_WORKER_HEALTHCHECK_TIMEOUT`` seconds (uvicorn's own default, 5 s, killed workers of a loaded
machine that were only slow). ``start`` launches ``serve`` detached, its output appended to
``QERBEROS_LOG_DIR/service.log``, and returns once the service answers ``/health/live``. ``stop`` sends
SIGTERM, only to the process holding the pid file's lock: uvicorn stops accepting connections, finishes the
requests in flight, the app writes a last checkpoint, and ``serve`` removes its pid file and exits 0.
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

import typer

from cli import _pidfile
from cli._common import EXIT_CANNOT_RUN, EXIT_REFUSED, fail, run_app
from qerberos.settings import Settings, get_settings

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
        os.environ["QERBEROS_WORKERS"] = str(count)  # each worker then shares replay memory and limits
    _prepare_database(settings)
    with _pid_file(settings), _sigterm_exits():
        uvicorn.run(
            "api.app:serve_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=count,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            timeout_worker_healthcheck=settings.worker_healthcheck_timeout,
            server_header=False,
        )


def start(workers: Workers = None) -> None:
    """Start the API in the background and wait until it answers."""
    settings = get_settings()
    running = _running_pid(settings)
    if running is not None:
        raise fail(f"already running (pid {running})", EXIT_REFUSED)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "cli.serve", "serve"]
    if workers is not None:
        command += ["--workers", str(workers)]
    log = settings.log_dir / "service.log"
    with open(log, "ab") as output:
        this_run = output.tell()
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True
        )
    waited = settings.worker_healthcheck_timeout  # as long as uvicorn gives a new worker to answer
    deadline = time.monotonic() + waited
    while time.monotonic() < deadline:
        if process.poll() is not None:
            cause = _failure_cause(log, this_run)
            raise fail(f"the service exited with code {process.returncode}: {cause} (more in {log})")
        if _answers(settings):
            typer.echo(f"started (pid {process.pid}) on http://{settings.host}:{settings.port}")
            return
        time.sleep(0.2)
    raise fail(
        f"the service (pid {process.pid}) did not answer within {waited} s and may still be starting; "
        f"see {settings.log_dir / 'service.log'}"
    )


def stop(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a graceful exit before SIGKILL.")] = 60.0,
) -> None:
    """Stop gracefully: no new connections, in-flight requests finish, a last checkpoint is written."""
    settings = get_settings()
    pid = _running_pid(settings)
    if pid is None:
        typer.echo("not running")
        return
    os.kill(pid, signal.SIGTERM)  # the process that holds the pid file's lock: our server, never another
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
    """Print the effective settings as JSON (passwords and tokens masked) and, under ``config_files``, the
    configuration file in force for each of rules, detectors, risk and reports (QERBEROS_CONFIG_DIR's or
    the packaged default)."""
    from qerberos.package_data import config_files_in_force

    settings = get_settings()
    view = {**settings.public_view(), "config_files": config_files_in_force(settings)}
    typer.echo(json.dumps(view, indent=2, sort_keys=True))


def _failure_cause(log: Path, offset: int) -> str:
    """What a failed start said last in ``service.log`` from ``offset`` on: its ``error:`` line, else the
    message of its last error record (JSON lines), else its last line."""
    with log.open("rb") as text:
        text.seek(offset)
        lines = [line.strip() for line in text.read().decode("utf-8", "replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    for line in reversed(lines):
        with contextlib.suppress(ValueError, AttributeError):
            record = json.loads(line)
            if record.get("level") in ("ERROR", "CRITICAL"):
                return str(record.get("message", line))
    return lines[-1] if lines else "it printed nothing"


def _pid_path(settings: Settings) -> Path:
    """One pid file per host and port: replicas may share a home (a volume), each keeps its own."""
    return settings.home / f"qerberos-{socket.gethostname()}-{settings.port}.pid"


def running_services(home: Path) -> list[int]:
    """The pids of this host's running services of this home, whatever their port."""
    found = (_pidfile.read(path) for path in home.glob(f"qerberos-{socket.gethostname()}-*.pid"))
    return [item.pid for item in found if item is not None and item.held and item.pid is not None]


def _running_pid(settings: Settings) -> int | None:
    """The pid of the server holding the pid file; a stale file (no server holds it) is removed, saying so,
    and the process it names, which may be any other program by now, is left alone."""
    path = _pid_path(settings)
    found = _pidfile.read(path)
    if found is None:
        return None
    if found.held:
        return found.pid
    _pidfile.remove_stale(path)
    typer.echo(
        f"removed a stale pid file {path.name} naming pid {found.pid}, which is no qerberos server: nothing signalled",
        err=True,
    )
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
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)  # it holds the database and the keys
    try:
        with _pidfile.holding(_pid_path(settings)):
            yield
    except _pidfile.AlreadyRunningError as exc:
        raise fail(str(exc), EXIT_REFUSED) from exc


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """SIGTERM ends ``serve`` through ``SystemExit(0)``, so that its pid file is removed on the way out.

    With one worker, uvicorn restores the handler it found after its graceful shutdown and raises the
    signal again; the default action killed the process before any ``finally`` ran, leaving a stale pid
    file that a later ``stop`` read as a live server.
    """

    def exit_now(_signal: int, _frame: object) -> None:
        raise SystemExit(0)

    previous = signal.signal(signal.SIGTERM, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _prepare_database(settings: Settings) -> None:
    """Every table, before the workers start (``models.schema.create_tables``), and in local mode the admin
    identity. The signing keys are left to ``qerberos init``: a service started on a wrong home fails."""
    from models.database import create_ledger_engine
    from models.identities import ensure_admin_token_file
    from models.schema import create_tables

    engine = create_ledger_engine(settings.database_url)
    try:
        create_tables(engine)
        path = ensure_admin_token_file(engine, settings.home) if settings.auth_mode == "local" else None
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
    import httpx

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    try:
        return httpx.get(f"http://{host}:{settings.port}/health/live", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    """``python -m cli.serve``: these commands alone (``start`` launches ``serve`` this way)."""
    app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
    register(app)
    run_app(app)


if __name__ == "__main__":
    main()
