"""``qerberos taxonomy check|apply``: how events are classified (``config/taxonomy.toml``), and the stored
categories brought up to date with it."""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer

from analytics.importers import FORMATS
from cli._common import EXIT_REFUSED, fail, progress_bar, reported_errors
from qerberos.errors import QerberosError

if TYPE_CHECKING:
    from models.records import NewEvent

taxonomy_app = typer.Typer(help="The event taxonomy: check how events are classified, apply it to history.")
_INGEST = "ingest"

TaxonomyPath = Annotated[
    Path | None, typer.Option("--taxonomy", help="The taxonomy file [the taxonomy.toml in force].")
]


def register(app: typer.Typer) -> None:
    app.add_typer(taxonomy_app, name="taxonomy")


@taxonomy_app.command("check")
def check(
    source: Annotated[str, typer.Argument(help="Events (a file, or - for standard input).")],
    format: Annotated[
        str, typer.Option("--format", "-f", help=f"{_INGEST} (JSON lines, as qerberos ingest) or {', '.join(FORMATS)}.")
    ] = _INGEST,
    taxonomy_path: TaxonomyPath = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as one JSON object.")] = False,
    strict: Annotated[bool, typer.Option(help="Exit 1 when some event falls into 'other'.")] = False,
) -> None:
    """Show how the events of SOURCE would be classified: events per class and activity, and every type that
    falls into "other" (no rule recognises it), with its layer and count. Nothing is written."""
    from analytics.taxonomy import OTHER_CLASS, Category, load_taxonomy
    from cli._appending import open_input

    if format != _INGEST and format not in FORMATS:
        raise fail(f"unknown format {format!r}: {_INGEST} or one of {', '.join(FORMATS)}")
    with reported_errors():
        taxonomy = load_taxonomy(taxonomy_path)
    classes: collections.Counter[tuple[str, str]] = collections.Counter()
    unrecognised: collections.Counter[tuple[str, str]] = collections.Counter()
    with reported_errors(), open_input(source) as stream:
        for event in _events(stream, format):
            category: Category = taxonomy.classify(event.type, event.layer, event.verdict, event.details)
            classes[category.class_key, category.activity] += 1
            if category.class_key == OTHER_CLASS:
                unrecognised[event.type, event.layer] += 1
    if as_json:
        typer.echo(json.dumps(_summary(classes, unrecognised, taxonomy.digest), indent=2))
    else:
        _print(classes, unrecognised)
    if strict and unrecognised:
        raise typer.Exit(EXIT_REFUSED)


def _events(stream: BinaryIO, format: str) -> Iterator[NewEvent]:
    from cli.importing import imported
    from models.wire_events import decode_event

    if format != _INGEST:
        yield from imported(format, stream)
        return
    for number, line in enumerate(stream, start=1):
        if line.strip():
            try:
                yield decode_event(line).to_new_event(source="cli")
            except QerberosError as exc:
                raise fail(f"line {number}: {exc.message} {exc.details}", EXIT_REFUSED) from exc


def _summary(
    classes: collections.Counter[tuple[str, str]], unrecognised: collections.Counter[tuple[str, str]], digest: str
) -> dict[str, object]:
    return {
        "taxonomy": digest,
        "events": sum(classes.values()),
        "classes": [{"class": c, "activity": a, "events": n} for (c, a), n in sorted(classes.items())],
        "other": [{"type": t, "layer": layer, "events": n} for (t, layer), n in unrecognised.most_common()],
    }


def _print(classes: collections.Counter[tuple[str, str]], unrecognised: collections.Counter[tuple[str, str]]) -> None:
    from analytics.taxonomy import OTHER_CLASS

    total = sum(classes.values())
    typer.echo(f"{total} events")
    for (class_key, activity), count in sorted(classes.items()):
        typer.echo(f"  {class_key:<28} {activity:<20} {count:>10}")
    if not unrecognised:
        typer.echo("every event is recognised")
        return
    typer.echo(f"{sum(unrecognised.values())} events fall into '{OTHER_CLASS}' (add rules for them):")
    for (type_, layer), count in unrecognised.most_common():
        typer.echo(f"  type {type_!r} layer {layer!r}: {count}")


@taxonomy_app.command("apply")
def apply(taxonomy_path: TaxonomyPath = None) -> None:
    """Store the category of every event not yet classified; after a change of the taxonomy file, of all
    history again (the stored categories carry the digest of the taxonomy they come from)."""
    from analytics.taxonomy import load_taxonomy
    from models.categories import CategoryStore
    from models.database import create_ledger_engine
    from pipelines.categories import catch_up
    from qerberos.settings import get_settings

    with reported_errors():
        taxonomy = load_taxonomy(taxonomy_path)
        engine = create_ledger_engine(get_settings().database_url)
        try:
            CategoryStore(engine).create()  # a database an earlier version prepared
            with progress_bar("classifying") as progress:
                stored = catch_up(engine, taxonomy, progress=progress)
        finally:
            engine.dispose()
    typer.echo(f"classified {stored} events with taxonomy {taxonomy.digest}")
