"""``qerberos detection evaluate``: replay labelled traffic through detection and risk, and say how it did.

Exit codes: 0 measured; 2 the command could not run (a missing file, a table without the needed columns).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from cli._common import fail, reported_errors
from qerberos.settings import get_settings

detection_app = typer.Typer(help="Measure detection and risk on labelled traffic.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(detection_app, name="detection")


@detection_app.command("evaluate")
def evaluate(
    events: Annotated[Path, typer.Option(help="Events (Parquet, the simulator's schema).")],
    truth: Annotated[Path, typer.Option(help="Labels: per attack event (the simulator's) or per identity.")],
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow store whose champion scores (default QERBEROS_MLFLOW_TRACKING_URI).")
    ] = None,
    step: Annotated[
        str, typer.Option(help="Event time ingested between detection rounds (a Polars duration: 1m, 15m).")
    ] = "1m",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON only.")] = False,
) -> None:
    """Replay EVENTS in event time in a scratch home (ledger, rules, anomaly detection, risk) and print, per
    attacker, alerted or not, the delay, the technique named and the final risk level; then the summary."""
    import polars as pl

    from analytics.detection_report import table
    from pipelines.detection_evaluation import evaluate_detection

    for path in (events, truth):
        if not path.exists():
            raise fail(f"no such file: {path}")
    with reported_errors(), tempfile.TemporaryDirectory(prefix="qerberos-evaluate-") as scratch:
        result = evaluate_detection(
            pl.read_parquet(events),
            pl.read_parquet(truth),
            scratch=Path(scratch),
            tracking_uri=tracking_uri or get_settings().mlflow_tracking_uri,
            step=step,
        )
    if not as_json:
        typer.echo(table(result))
    typer.echo(json.dumps(result.to_json()))
