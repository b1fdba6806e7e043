"""What every command module shares: exit codes, error reporting and progress on a terminal."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from qerberos.errors import QerberosError

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_CANNOT_RUN = 2
PRIVATE_UMASK = 0o077


def private_files() -> None:
    """Every file a command (the service, its workers, a report's kernel) creates is its user's alone: mode
    600, directories 700. What qerberos writes holds events and their personal details (the database, the
    reports, backups, exports) or secrets; the database also gets mode 600 explicitly
    (``models.database.private_sqlite``), whoever opens it."""
    os.umask(PRIVATE_UMASK)


def fail(message: str, code: int = EXIT_CANNOT_RUN) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """Turn qerberos errors into a one-line message and exit code 2 (never a traceback)."""
    try:
        yield
    except QerberosError as exc:
        detail = f" {exc.details}" if exc.details else ""
        raise fail(f"{exc.message}{detail}") from exc


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress callback ``(done, total)``; draws a bar only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    columns = (TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update
