"""``qerberos features``: the per-identity window features of a ledger or an event export, as Parquet.

The table data scientists hand to ``qerberos models train|evaluate``; with ``--labels`` (the simulator's
ground truth) each window also gets ``label`` and ``technique``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli._common import fail, progress_bar, reported_errors
from qerberos.settings import get_settings


def register(app: typer.Typer) -> None:
    app.command("features")(features)


def features(
    out: Annotated[Path, typer.Option("--out", help="Where to write the feature table (Parquet).")],
    source: Annotated[
        str | None, typer.Option("--source", help="Event Parquet file(s) or a database URL (default: the ledger).")
    ] = None,
    window: Annotated[list[str] | None, typer.Option("--window", help="5m, 1h or 1d; repeatable.")] = None,
    labels: Annotated[Path | None, typer.Option("--labels", help="Ground truth to label the windows with.")] = None,
) -> None:
    """Compute per-identity, per-window features (streaming) and write them to --out."""
    import polars as pl

    from analytics.labels import label_windows
    from pipelines.feature_table import write_feature_table

    with reported_errors(), progress_bar("building features") as progress:
        try:
            write_feature_table(source or get_settings().database_url, out, tuple(window or ["1h"]), progress=progress)
            if labels is not None:
                label_windows(pl.read_parquet(out), pl.read_parquet(labels)).write_parquet(out)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise fail(f"cannot read the events or labels: {exc}") from exc
    typer.echo(f"features written to {out}")
