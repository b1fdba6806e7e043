"""Hyperparameter search over the detectors and the ensemble, tracked in MLflow, the best registered as challenger.

One parent run (experiment ``qerberos-tuning``, named ``tune <n> trials``) holds the search's settings, the
training and evaluation tables as MLflow datasets, the comparison plots of the best candidate of each detector
(``comparison/pr_curves.png``, ``comparison/roc_curves.png``) and the best trial's metrics (``best.*``). Under
it, one nested run per trial (one detector and one parameter set; named after them, e.g. ``knn n_neighbors=12
method=mean``) holds the same params keys on every run (``analytics.tuning.Candidate.flat_params``), the
evaluation metrics and the datasets, so MLflow's compare views line the runs up (the registered best carries
its own PR, ROC and score plots).

The search is Optuna's TPE sampler, seeded with ``config.seed``, maximising validation PR-AUC: training on the
earlier windows (known attacks left out), evaluating on the latest ``config.eval_share`` of them, the same split
``pipelines.train`` makes. Every detector is first measured as configured (``analytics.tuning.baseline_params``).
With ``register``, the best candidate is trained again by ``pipelines.train.train`` in a nested run ``best
<candidate>`` on the same rows, so it carries the ``eval_data_sha256`` the promotion gate compares, and is
registered as ``challenger``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

import mlflow
import numpy as np
import optuna
import polars as pl
from matplotlib.figure import Figure

from analytics.detector_pipeline import build_pipeline, feature_matrix
from analytics.detectors import REGISTRY, DetectorConfig
from analytics.evaluation import EvaluationReport, evaluate_scores
from analytics.evaluation_plots import pr_figure, roc_figure
from analytics.tuning import ENSEMBLE, Candidate, baseline_params, suggest_candidate
from pipelines.model_registry import use_experiment
from pipelines.train import (
    TrainResult,
    evaluation_sha256,
    feature_datasets,
    log_datasets,
    select_window,
    split_by_time,
    train,
)
from qerberos.errors import ValidationError

__all__ = ["ALL_DETECTORS", "TUNING_EXPERIMENT", "TrialResult", "TuneResult", "tune"]

logger = logging.getLogger(__name__)

TUNING_EXPERIMENT = "qerberos-tuning"
ALL_DETECTORS: tuple[str, ...] = (*REGISTRY, ENSEMBLE)


@dataclasses.dataclass(frozen=True, slots=True)
class TrialResult:
    number: int
    candidate: Candidate
    report: EvaluationReport
    run_id: str
    scores: np.ndarray  # of the evaluation rows, for plots


@dataclasses.dataclass(frozen=True, slots=True)
class TuneResult:
    parent_run_id: str
    trials: tuple[TrialResult, ...]
    labels: np.ndarray  # of the evaluation rows
    registered: TrainResult | None

    @property
    def best(self) -> TrialResult:
        return max(self.trials, key=lambda t: (t.report.pr_auc, t.report.roc_auc, -t.number))

    def best_per_detector(self) -> dict[str, TrialResult]:
        """The best trial of each detector kind, best first."""
        best: dict[str, TrialResult] = {}
        for trial in sorted(self.trials, key=lambda t: (-t.report.pr_auc, t.number)):
            best.setdefault(trial.candidate.detector, trial)
        return best

    def comparison_figures(self) -> tuple[Figure, Figure]:
        """Precision-recall and ROC curves of the best candidate of each detector, on the evaluation rows."""
        scores = {trial.candidate.name(): trial.scores for trial in self.best_per_detector().values()}
        return (
            pr_figure(scores, self.labels, "Best candidate of each detector: precision-recall"),
            roc_figure(scores, self.labels, "Best candidate of each detector: ROC"),
        )

    def table(self) -> pl.DataFrame:
        """One row per trial, best PR-AUC first."""
        return pl.DataFrame(
            [
                {
                    "trial": t.number,
                    "run": t.candidate.name(),
                    "detector": t.candidate.detector,
                    "pr_auc": t.report.pr_auc,
                    "roc_auc": t.report.roc_auc,
                    "precision_at_k": t.report.precision_at_k,
                    "recall_at_budget": t.report.recall_at_budget,
                    "run_id": t.run_id,
                }
                for t in self.trials
            ]
        ).sort(["pr_auc", "roc_auc"], descending=True)


def _split(features: pl.DataFrame, config: DetectorConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    features = select_window(features, config.window)
    if "label" not in features.columns:
        raise ValidationError("tuning needs labelled features (a label column): give --features with labels")
    training, evaluation = split_by_time(features, config.eval_share)
    if config.exclude_known_anomalies:
        training = training.filter(pl.col("label").fill_null(0) == 0)
    return training, evaluation


def tune(
    features: pl.DataFrame,
    *,
    config: DetectorConfig,
    tracking_uri: str,
    trials: int = 30,
    detectors: Sequence[str] = ALL_DETECTORS,
    register: bool = True,
    origin: str = "a feature table",
    progress: Callable[[int, int], None] | None = None,
) -> TuneResult:
    """Search, track and (with ``register``) register the best; see the module doc. ``trials`` counts the
    baseline trials (one per detector) too; ``progress(done, total)`` is called after each trial."""
    training, evaluation = _split(features, config)
    matrix = feature_matrix(training, config.features)
    labels = evaluation["label"].fill_null(0).to_numpy()
    techniques = evaluation["technique"].to_list() if "technique" in evaluation.columns else None
    datasets = feature_datasets(training, evaluation)
    eval_sha256 = evaluation_sha256(evaluation)
    results: list[TrialResult] = []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    use_experiment(tracking_uri, TUNING_EXPERIMENT)

    def objective(trial: optuna.Trial) -> float:
        candidate = suggest_candidate(trial, detectors)
        detector = ENSEMBLE if candidate.is_ensemble else candidate.detector
        pipeline = build_pipeline(candidate.config(config), detector).fit(matrix)
        scores = pipeline.score_frame(evaluation)
        report = evaluate_scores(scores, labels, techniques=techniques, k=config.eval_k, budget=config.eval_budget)
        with mlflow.start_run(run_name=candidate.name(), nested=True) as run:
            mlflow.log_params({**candidate.flat_params(), "trial": trial.number})
            mlflow.log_metrics(report.metrics())
            mlflow.set_tags({"eval_data_sha256": eval_sha256, "optuna.trial": str(trial.number)})
            log_datasets(datasets, origin)
        results.append(TrialResult(trial.number, candidate, report, run.info.run_id, scores))
        return report.pr_auc

    def trial_done(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if progress is not None:
            progress(trial.number + 1, trials)

    with mlflow.start_run(run_name=f"tune {trials} trials") as parent:
        mlflow.log_params(
            {
                "trials": trials,
                "detectors": ",".join(detectors),
                "objective": "validation pr_auc",
                "sampler": "optuna TPE",
                "seed": config.seed,
                "window": str(config.window),
                "eval_share": config.eval_share,
                "train_rows": training.height,
                "eval_rows": evaluation.height,
            }
        )
        mlflow.set_tag("eval_data_sha256", eval_sha256)
        log_datasets(datasets, origin)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=config.seed))
        for params in baseline_params(config, detectors)[:trials]:
            study.enqueue_trial(params)
        study.optimize(objective, n_trials=trials, callbacks=[trial_done])
        if not results:
            raise ValidationError("no trial completed: every ensemble trial picked fewer than two members")
        result = TuneResult(parent.info.run_id, tuple(results), labels, None)
        _log_summary(result)
        registered = (
            _register(result.best.candidate, training, evaluation, config, tracking_uri, origin) if register else None
        )
    return dataclasses.replace(result, registered=registered)


def _log_summary(result: TuneResult) -> None:
    best = result.best
    mlflow.log_metrics({f"best.{k}": v for k, v in best.report.metrics().items()})
    mlflow.set_tags({"best.run_id": best.run_id, "best.candidate": best.candidate.name()})
    pr, roc = result.comparison_figures()
    mlflow.log_figure(pr, "comparison/pr_curves.png")
    mlflow.log_figure(roc, "comparison/roc_curves.png")
    mlflow.log_text(result.table().write_csv(), "comparison/trials.csv")


def _register(
    candidate: Candidate,
    training: pl.DataFrame,
    evaluation: pl.DataFrame,
    config: DetectorConfig,
    tracking_uri: str,
    origin: str,
) -> TrainResult:
    logger.info("registering the best candidate %s as challenger", candidate.name())
    return train(
        training,
        config=candidate.config(config),
        tracking_uri=tracking_uri,
        evaluation=evaluation,
        detector=ENSEMBLE if candidate.is_ensemble else candidate.detector,
        run_name=f"best {candidate.name()}",
        origin=origin,
    )
