"""Evaluate a detector on any labelled feature table and log the result to MLflow (``qerberos-evaluation``).

Which detector: a registered version (``version``), else a registry detector or ``ensemble`` fitted here
(``detector``), else the current champion, else the configured ensemble. A detector fitted here is fitted
(labels unseen) on a seeded random half of the table and evaluated on the other half.
"""

from __future__ import annotations

import dataclasses
import logging

import mlflow
import numpy as np
import polars as pl

from analytics.detector_pipeline import build_pipeline, feature_matrix
from analytics.detectors import DetectorConfig
from analytics.evaluation import EvaluationReport, evaluate_scores
from pipelines.model_registry import champion_version, load_version, use_experiment
from pipelines.train import evaluation_sha256, select_window
from qerberos.errors import ValidationError

__all__ = ["EVALUATION_EXPERIMENT", "Evaluation", "evaluate_table"]

logger = logging.getLogger(__name__)

EVALUATION_EXPERIMENT = "qerberos-evaluation"


@dataclasses.dataclass(frozen=True, slots=True)
class Evaluation:
    detector: str  # "version 3", "ensemble (fitted here)", ...
    report: EvaluationReport
    run_id: str


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
    if version is None and detector is None:
        version = champion_version(tracking_uri)
    if version is not None:
        loaded = load_version(tracking_uri, version)
        evaluated, scores, who = frame, loaded.score(frame), f"version {version}"
    else:
        rng = np.random.default_rng(config.seed)
        fit_rows = rng.random(frame.height) < 0.5
        fit_part, evaluated = frame.filter(pl.Series(fit_rows)), frame.filter(pl.Series(~fit_rows))
        pipeline = build_pipeline(config, detector).fit(feature_matrix(fit_part, config.features))
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
