"""``qerberos simulate``: labelled, simulated audit traffic to a Parquet file or into the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli._common import fail, progress_bar, reported_errors

if TYPE_CHECKING:
    import polars as pl

SOURCE = "cli"


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)


def simulate(
    identities: Annotated[int, typer.Option(min=2, help="Number of sQuid identities.")] = 200,
    days: Annotated[int, typer.Option(min=3, help="Days of traffic.")] = 14,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same events, ids and labels.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the events here (Parquet); labels beside it.")] = None,
    ingest: Annotated[bool, typer.Option("--ingest", help="Append the events to the ledger.")] = False,
    events_per_day: Annotated[float, typer.Option(min=0.1, help="Mean events per identity per weekday.")] = 25.0,
    attacks_per_kind: Annotated[int | None, typer.Option(min=1, help="Attacks of each kind [N/200].")] = None,
) -> None:
    """Generate Q-ecosystem audit traffic with labelled attacks (MITRE ATT&CK techniques).

    The ground truth goes to ``<out stem>.labels.parquet`` (with --ingest alone: into QERBEROS_HOME), never
    into the events.
    """
    from analytics.simulation import SimulationConfig, labels_path, write_simulation
    from analytics.simulation import simulate as run_simulation

    if out is None and not ingest:
        raise fail("give --out FILE.parquet, --ingest, or both")
    config = SimulationConfig(identities, days, seed, events_per_day=events_per_day, attacks_per_kind=attacks_per_kind)
    with progress_bar("simulating") as update:
        result = run_simulation(config, update)
    if out is None:
        from qerberos.settings import get_settings

        out = get_settings().home / f"simulate-seed{seed}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        result.labels.write_parquet(labels_path(out))
        typer.echo(f"labels: {labels_path(out)}")
    else:
        events_path, labels = write_simulation(result, out)
        typer.echo(f"events: {events_path} ({result.events.height} rows)")
        typer.echo(f"labels: {labels} ({result.labels.height} attack events)")
    if ingest:
        with reported_errors():
            appended = _ingest(result.events)
        typer.echo(f"appended {appended} events to the ledger")


def _ingest(events: pl.DataFrame) -> int:
    """Append through ``pipelines.event_ingest`` (idempotent by event id)."""
    from models.ledger import Ledger
    from pipelines.event_ingest import ingest_events
    from qerberos.settings import get_settings

    with progress_bar("ingesting") as update, Ledger.from_settings(get_settings()) as ledger:
        return ingest_events(ledger, events, source=SOURCE, progress=update)
