"""What every command module shares: exit codes, error reporting and progress on a terminal.

A failed command prints one line and exits 2 (1 when the data says no); a traceback only with
``qerberos --debug``. A database that cannot be used (unreachable, refusing the login, locked) is named by its
URL, password masked, with the driver's own first line as the cause.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import typer

from qerberos.errors import QerberosError

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_CANNOT_RUN = 2
PRIVATE_UMASK = 0o077


class _Debug:
    """``qerberos --debug``: let tracebacks through (set once by the root command's options)."""

    enabled = False


def enable_debug() -> None:
    _Debug.enabled = True


def private_files() -> None:
    """Every file a command (the service, its workers, a report's kernel) creates is its user's alone: mode
    600, directories 700. What qerberos writes holds events and their personal details (the database, the
    reports, backups, exports) or secrets; the database also gets mode 600 explicitly
    (``models.database.private_sqlite``), whoever opens it."""
    os.umask(PRIVATE_UMASK)


def fail(message: str, code: int = EXIT_CANNOT_RUN) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def error_line(exc: BaseException) -> str:
    """The one line a failure prints (after ``error: ``)."""
    from models.database import unusable_database_cause

    cause = unusable_database_cause(exc)
    if cause is not None:
        return f"cannot use the database {_database_url()}: {cause}"
    if isinstance(exc, QerberosError):
        return f"{exc.message} {exc.details}" if exc.details else exc.message
    first_line = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"unexpected {type(exc).__name__}: {first_line} (qerberos --debug shows the traceback)"


def _database_url() -> str:
    from qerberos.settings import get_settings, mask_url

    try:
        return mask_url(get_settings().database_url)
    except QerberosError:
        return "(QERBEROS_DATABASE_URL unreadable)"


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """Turn qerberos errors into a one-line message and exit code 2 (a traceback only with ``--debug``)."""
    try:
        yield
    except QerberosError as exc:
        if _Debug.enabled:
            raise
        raise fail(error_line(exc)) from exc


def run_app(app: Callable[[], Any]) -> None:
    """A console script: files private to the user, and whatever error escapes a command one line and exit 2."""
    private_files()
    try:
        app()
    except Exception as exc:
        if _Debug.enabled:
            raise
        typer.echo(f"error: {error_line(exc)}", err=True)
        raise SystemExit(EXIT_CANNOT_RUN) from None


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress callback ``(done, total)``; draws a bar only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update
