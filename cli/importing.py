"""``qerberos import --format FORMAT FILE|-``: append the records of another system's log (CloudTrail, Entra ID
sign-ins, Office 365 audit, OpenSSH, OCSF) as audit events, mapped by ``analytics.importers``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from analytics.importers import FORMATS
from cli._common import EXIT_REFUSED, fail, progress_bar, reported_errors
from qerberos.errors import QerberosError
from qerberos.settings import get_settings

if TYPE_CHECKING:
    from models.records import NewEvent


def register(app: typer.Typer) -> None:
    app.command("import")(import_log)


def import_log(
    source: Annotated[str, typer.Argument(help="The log file, or - for standard input.")],
    format: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}.")],
    year: Annotated[
        int | None, typer.Option(min=1970, max=9999, help="sshd: the year of syslog times (default: inferred).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Events appended per transaction.")] = 1000,
) -> None:
    """Append the records of a log in FORMAT as audit events (see the README for each format's mapping).

    Each batch is mapped and validated whole before it is appended; a bad record stops the run, naming its
    line, and nothing of its batch is written. A record imported again is not appended twice (its event id
    comes from the record). What was appended is signed in a checkpoint at the end.
    """
    from cli._appending import append_in_batches, counted_lines, open_input
    from models.ledger import Ledger

    if format not in FORMATS:
        raise fail(f"unknown format {format!r}: one of {', '.join(FORMATS)}")
    with (
        reported_errors(),
        open_input(source) as stream,
        Ledger.from_settings(get_settings()) as ledger,
        progress_bar(f"importing {format}") as progress,
    ):
        appended = append_in_batches(ledger, imported(format, counted_lines(stream, progress), year), batch_size)
    typer.echo(f"appended {appended} events")


def imported(format: str, lines: Iterable[bytes], year: int | None = None) -> Iterator[NewEvent]:
    """The events of ``lines`` as the ledger takes them (validated as ``qerberos ingest`` validates), submitted
    by ``import:<format>``; a record that cannot be read, mapped or validated is a ``typer.Exit`` naming its line."""
    from analytics.importers import ImportFailure, import_events
    from models.wire_events import convert_event

    try:
        for item in import_events(format, lines, year=year):
            try:
                yield convert_event(item.event).to_new_event(source=f"import:{format}")
            except QerberosError as exc:
                raise fail(f"line {item.line}: {exc.message} {exc.details}", EXIT_REFUSED) from exc
    except ImportFailure as exc:
        raise fail(str(exc), EXIT_REFUSED) from exc
