"""Evaluate a detector on any labelled feature table and log the result to MLflow (``qerberos-evaluation``).

Which detector: a registered version (``version``), else a registry detector or ``ensemble`` fitted here
(``detector``), else the current champion, else the configured ensemble. A detector fitted here is fitted
(labels unseen) on a seeded random half of the table and evaluated on the other half; a seeded 30 % of the
fitting half, with its labels, first chooses members, parameters and preprocessing (``choose_on_validation``).
A table without qerberos' feature columns (an ADBench-style table) is scored on all its numeric columns but
the label.
"""

from __future__ import annotations

import dataclasses
import logging

import mlflow
import numpy as np
import polars as pl

from analytics.detector_pipeline import DetectorPipeline, build_pipeline, feature_matrix
from analytics.detectors import DetectorConfig
from analytics.evaluation import EvaluationReport, evaluate_scores
from pipelines.model_registry import champion_version, load_version, use_experiment
from pipelines.train import KEYS, choose_on_validation, evaluation_sha256, select_window
from qerberos.errors import ValidationError

__all__ = ["EVALUATION_EXPERIMENT", "Evaluation", "evaluate_table", "fit_here", "split_halves", "table_features"]

logger = logging.getLogger(__name__)

EVALUATION_EXPERIMENT = "qerberos-evaluation"


@dataclasses.dataclass(frozen=True, slots=True)
class Evaluation:
    detector: str  # "version 3", "ensemble (fitted here)", ...
    report: EvaluationReport
    run_id: str


# of the fitting half, this seeded share validates the choice of the ensemble
_VALIDATION_SHARE = 0.3


def table_features(frame: pl.DataFrame, config: DetectorConfig, label: str) -> DetectorConfig:
    """``config`` as it is for a qerberos feature table, else scoring every numeric column but label and keys."""
    if all(column in frame.columns for column in config.features):
        return config
    numeric = tuple(
        name for name, dtype in frame.schema.items() if dtype.is_numeric() and name not in (label, "technique", *KEYS)
    )
    if not numeric:
        raise ValidationError("the table has no numeric feature column", details={"columns": frame.columns})
    return config.with_features(numeric)


def split_halves(frame: pl.DataFrame, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(fitting half, evaluated half): a seeded random split, the same for every detector compared."""
    fit_rows = pl.Series(np.random.default_rng(seed).random(frame.height) < 0.5)
    return frame.filter(fit_rows), frame.filter(~fit_rows)


def fit_here(frame: pl.DataFrame, label: str, config: DetectorConfig, detector: str | None) -> DetectorPipeline:
    """Fit ``detector`` (or the ensemble) on ``frame`` (labels unseen), choosing on a validated share of it."""
    validates = pl.Series(np.random.default_rng(config.seed + 1).random(frame.height) < _VALIDATION_SHARE)
    fitting, validation = frame.filter(~validates), frame.filter(validates)
    choice = choose_on_validation(config, detector, fitting, validation, label)

    return build_pipeline(config, detector, choice).fit(feature_matrix(frame, config.features))


def evaluate_table(
    frame: pl.DataFrame,
    label: str,
    *,
    config: DetectorConfig,
    tracking_uri: str,
    detector: str | None = None,
    version: str | None = None,
) -> Evaluation:
    if label not in frame.columns:
        raise ValidationError(f"the table has no column {label!r}", details={"columns": frame.columns})
    frame = select_window(frame, config.window)
    config = table_features(frame, config, label)
    if version is None and detector is None:
        version = champion_version(tracking_uri)
    if version is not None:
        loaded = load_version(tracking_uri, version)
        evaluated, scores, who = frame, loaded.score(frame), f"version {version}"
    else:
        fit_part, evaluated = split_halves(frame, config.seed)
        pipeline = fit_here(fit_part, label, config, detector)
        scores, who = pipeline.score_frame(evaluated), f"{detector or 'ensemble'} (fitted here)"
    techniques = evaluated["technique"].to_list() if "technique" in evaluated.columns else None
    report = evaluate_scores(
        scores,
        evaluated[label].fill_null(0).to_numpy(),
        techniques=techniques,
        k=config.eval_k,
        budget=config.eval_budget,
    )
    use_experiment(tracking_uri, EVALUATION_EXPERIMENT)
    with mlflow.start_run() as run:
        mlflow.log_params(
            {"detector": who, "label_column": label, "eval_k": config.eval_k, "eval_budget": config.eval_budget}
        )
        mlflow.set_tag("eval_data_sha256", evaluation_sha256(evaluated))
        mlflow.log_metrics(report.metrics())
    logger.info("evaluated %s: roc_auc %.4f pr_auc %.4f", who, report.roc_auc, report.pr_auc)
    return Evaluation(detector=who, report=report, run_id=run.info.run_id)
