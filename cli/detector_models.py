"""``qerberos models``: train, tune, evaluate, promote, rollback and list the detector in MLflow.

Tracking store: ``QERBEROS_MLFLOW_TRACKING_URI`` (default ``$QERBEROS_HOME/mlflow.db``). Exit codes: 0 done;
1 refused (the promotion gate said no, a data gate failed); 2 the command could not run.
Without ``--features``, ``train`` and ``tune`` work on ``pipelines.feature_table.default_feature_table``: the
ledger's features when it holds events, else a simulated, labelled table.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli._common import EXIT_REFUSED, fail, progress_bar, reported_errors
from qerberos.settings import get_settings

if TYPE_CHECKING:
    import polars as pl

    from pipelines.feature_table import FeatureTable


models_app = typer.Typer(help="Train, evaluate and promote the anomaly detector (MLflow).", no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="Detector TOML (default config/detectors.toml).")]
FeaturesOption = Annotated[
    Path | None,
    typer.Option(
        help="Feature table (Parquet or CSV). Default: the ledger's features (labelled by the ground truth "
        "`qerberos simulate --ingest` keeps in QERBEROS_HOME) or, when the ledger is empty, a simulated, "
        "labelled table (200 identities, 14 days)."
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


def _read(path: Path) -> pl.DataFrame:
    import polars as pl

    if not path.exists():
        raise fail(f"no such file: {path}")
    try:
        return pl.read_parquet(path) if path.suffix != ".csv" else pl.read_csv(path, try_parse_dates=True)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise fail(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc


def _feature_table(features: Path | None) -> FeatureTable:
    """The ``--features`` file, or the default table (built with a progress bar on a terminal)."""
    from pipelines.feature_table import FeatureTable, default_feature_table

    if features is not None:
        return FeatureTable(_read(features), None, str(features))
    with reported_errors(), progress_bar("building features") as progress:
        table = default_feature_table(get_settings(), progress=progress)
    typer.echo(f"features: {table.features.height} windows from {table.origin}", err=True)
    return table


def _config(path: Path | None):  # type: ignore[no-untyped-def]
    from analytics.detectors import load_config

    return load_config(path)


@models_app.command("train")
def train(
    features: FeaturesOption = None,
    labels: Annotated[Path | None, typer.Option(help="Window labels or the simulator's ground truth.")] = None,
    evaluation: Annotated[Path | None, typer.Option(help="A separate labelled table to evaluate on.")] = None,
    detector: Annotated[str | None, typer.Option(help="One registry detector instead of the ensemble.")] = None,
    config: ConfigOption = None,
) -> None:
    """Fit the detector, evaluate it, log everything to MLflow, register a new version as challenger."""
    from analytics.gates import GateFailedError
    from pipelines.train import train as run_training

    table = _feature_table(features)
    with reported_errors(), progress_bar("training") as progress:
        try:
            result = run_training(
                table.features,
                config=_config(config),
                tracking_uri=get_settings().mlflow_tracking_uri,
                labels=_read(labels) if labels else None,
                evaluation=_read(evaluation) if evaluation else None,
                detector=detector,
                origin=table.origin,
                progress=progress,
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


@models_app.command("tune")
def tune(
    features: FeaturesOption = None,
    trials: Annotated[int, typer.Option(min=1, help="Candidates to try, one per detector as configured first.")] = 30,
    detector: Annotated[
        list[str] | None, typer.Option(help="Registry detector or 'ensemble' to search; repeatable. Default: all.")
    ] = None,
    register: Annotated[bool, typer.Option(help="Register the best candidate as challenger.")] = True,
    config: ConfigOption = None,
) -> None:
    """Search detector parameters and ensemble members and weights for the best validation PR-AUC.

    One MLflow run per candidate, nested under one parent run (experiment qerberos-tuning); the best is
    trained again and registered as challenger, ready for `qerberos models promote`.
    """
    from pipelines.tune import ALL_DETECTORS
    from pipelines.tune import tune as run_tuning

    table = _feature_table(features)
    with reported_errors(), progress_bar("tuning") as progress:
        result = run_tuning(
            table.features,
            config=_config(config),
            tracking_uri=get_settings().mlflow_tracking_uri,
            trials=trials,
            detectors=tuple(detector or ALL_DETECTORS),
            register=register,
            origin=table.origin,
            progress=progress,
        )
    best = result.best
    typer.echo(f"{len(result.trials)} candidates (parent run {result.parent_run_id}); best: {best.candidate.name()}")
    typer.echo(f"  pr_auc  {best.report.pr_auc:.4f}\n  roc_auc {best.report.roc_auc:.4f}")
    if result.registered is not None:
        typer.echo(f"registered version {result.registered.version} as challenger (run {result.registered.run_id})")


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
