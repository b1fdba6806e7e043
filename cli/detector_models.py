"""``qerberos models``: train, evaluate, promote, rollback and list the detector in MLflow.

Tracking store: ``QERBEROS_MLFLOW_TRACKING_URI`` (default the local ``mlruns/``). Exit codes: 0 done;
1 refused (the promotion gate said no, a data gate failed); 2 the command could not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from cli._common import EXIT_REFUSED, fail, reported_errors
from qerberos.settings import get_settings

models_app = typer.Typer(help="Train, evaluate and promote the anomaly detector (MLflow).", no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="Detector TOML (default config/detectors.toml).")]


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


def _read(path: Path) -> pl.DataFrame:
    if not path.exists():
        raise fail(f"no such file: {path}")
    return pl.read_parquet(path) if path.suffix != ".csv" else pl.read_csv(path, try_parse_dates=True)


def _config(path: Path | None):  # type: ignore[no-untyped-def]
    from analytics.detectors import DEFAULT_CONFIG, load_config

    return load_config(path or DEFAULT_CONFIG)


@models_app.command("train")
def train(
    features: Annotated[Path | None, typer.Option(help="Feature table (Parquet). Default: simulate one.")] = None,
    labels: Annotated[Path | None, typer.Option(help="Window labels or the simulator's ground truth.")] = None,
    evaluation: Annotated[Path | None, typer.Option(help="A separate labelled table to evaluate on.")] = None,
    detector: Annotated[str | None, typer.Option(help="One registry detector instead of the ensemble.")] = None,
    config: ConfigOption = None,
) -> None:
    """Fit the detector, evaluate it, log everything to MLflow, register a new version as challenger."""
    from analytics.gates import GateFailedError
    from pipelines.train import train as run_training

    if features is None:
        raise fail("--features FILE.parquet is required (make one with `qerberos simulate` and the features job)")
    with reported_errors():
        try:
            result = run_training(
                _read(features),
                config=_config(config),
                tracking_uri=get_settings().mlflow_tracking_uri,
                labels=_read(labels) if labels else None,
                evaluation=_read(evaluation) if evaluation else None,
                detector=detector,
            )
        except GateFailedError as exc:
            typer.echo(f"refused: {exc.message}", err=True)
            raise typer.Exit(EXIT_REFUSED) from exc
    typer.echo(
        f"registered version {result.version} (run {result.run_id}); {result.train_rows} training rows; "
        f"gate {result.gate}"
    )
    if result.report:
        for name, value in result.report.metrics().items():
            typer.echo(f"  {name:24} {value:.4f}")


@models_app.command("evaluate")
def evaluate(
    features: Annotated[Path, typer.Option(help="A labelled feature table (Parquet or CSV).")],
    label: Annotated[str, typer.Option(help="The 0/1 label column.")] = "label",
    detector: Annotated[str | None, typer.Option(help="Registry detector or 'ensemble', fitted here.")] = None,
    version: Annotated[str | None, typer.Option(help="A registered version (default: the champion).")] = None,
    config: ConfigOption = None,
) -> None:
    """Print and log ROC-AUC, PR-AUC and precision@k of a detector on a labelled table."""
    from pipelines.evaluate import evaluate_table

    with reported_errors():
        result = evaluate_table(
            _read(features),
            label,
            config=_config(config),
            detector=detector,
            version=version,
            tracking_uri=get_settings().mlflow_tracking_uri,
        )
    report = result.report
    typer.echo(f"{result.detector}: {report.rows} rows, {report.positives} positives (run {result.run_id})")
    typer.echo(f"  roc_auc          {report.roc_auc:.4f}")
    typer.echo(f"  pr_auc           {report.pr_auc:.4f}")
    typer.echo(f"  precision_at_{report.k:<3} {report.precision_at_k:.4f}")
    typer.echo(f"  recall_at_budget {report.recall_at_budget:.4f} (budget {report.budget:.2%})")


@models_app.command("promote")
def promote(
    version: Annotated[str | None, typer.Option(help="Candidate version (default: the challenger).")] = None,
    force: Annotated[bool, typer.Option(help="Skip the gate (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option(help="Why (required with --force; kept as a tag).")] = None,
    features: Annotated[Path | None, typer.Option(help="Re-score candidate and champion on this table.")] = None,
    label: Annotated[str, typer.Option(help="Label column of --features.")] = "label",
) -> None:
    """Make the candidate champion if it beats the champion (PR-AUC and ROC-AUC, same evaluation data)."""
    from pipelines.promote import promote as run_promotion

    with reported_errors():
        decision = run_promotion(
            get_settings().mlflow_tracking_uri,
            version,
            force=force,
            reason=reason,
            evaluation=_read(features) if features else None,
            label=label,
        )
    if not decision.promoted:
        typer.echo(f"version {decision.version} not promoted: {decision.reason}", err=True)
        raise typer.Exit(EXIT_REFUSED)
    typer.echo(f"champion: version {decision.version} (was {decision.previous or 'none'}): {decision.reason}")


@models_app.command("rollback")
def rollback(reason: Annotated[str, typer.Option(help="Why (kept as a tag).")] = "rollback") -> None:
    """Return the champion alias to the previous champion."""
    from pipelines.promote import rollback as run_rollback

    with reported_errors():
        version = run_rollback(get_settings().mlflow_tracking_uri, reason=reason)
    typer.echo(f"champion: version {version}")


@models_app.command("list")
def list_models() -> None:
    """Registered versions, newest first, with aliases and evaluation metrics."""
    from pipelines.promote import list_versions

    with reported_errors():
        versions = list_versions(get_settings().mlflow_tracking_uri)
    for v in versions:
        metrics = " ".join(f"{m}={v.metrics[m]:.4f}" for m in ("roc_auc", "pr_auc") if m in v.metrics)
        typer.echo(f"{v.version:>4}  {','.join(v.aliases) or '-':20} {metrics}")
