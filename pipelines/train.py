"""Train the detector on a feature table, evaluate it on labelled windows, log it all to MLflow, register it.

One MLflow run (experiment ``qerberos-detector``, named ``train <detector>``; nested when a run is already
active, as under ``pipelines.tune``) holds: every detector parameter (``get_params()`` as it is), the training
and evaluation tables as MLflow datasets (``mlflow.log_input``, contexts ``training`` and ``evaluation``), the
SHA-256 of the training rows (``train_data_sha256``) and of the evaluation rows (``eval_data_sha256``, what the
promotion gate compares), the data gate's result (``gate-features.json``), the evaluation metrics (see
``analytics.evaluation``), ROC / PR / score-histogram plots (``analytics.evaluation_plots``), and the model,
registered as a new version of ``qerberos-detector`` with the alias ``challenger``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import mlflow
import polars as pl
from mlflow.data.dataset import Dataset
from mlflow.data.polars_dataset import from_polars

from analytics.detector_pipeline import build_pipeline, feature_matrix
from analytics.detectors import FEATURE_COLUMNS, DetectorConfig, DetectorError
from analytics.ensemble_selection import EnsembleChoice, candidate_members, choose_ensemble, has_both_classes
from analytics.evaluation import EvaluationReport, evaluate_scores
from analytics.evaluation_plots import save_evaluation_plots
from pipelines.model_registry import MODEL_NAME, log_detector, use_experiment

__all__ = [
    "EXPERIMENT",
    "TrainResult",
    "attach_labels",
    "choose_on_validation",
    "data_sha256",
    "evaluation_sha256",
    "feature_datasets",
    "log_datasets",
    "select_window",
    "split_by_time",
    "train",
]

logger = logging.getLogger(__name__)

EXPERIMENT = "qerberos-detector"
KEYS = ("squid_id", "window_start", "window")
TRAINING_STEPS = ("checking the features", "fitting", "evaluating", "registering")


@dataclasses.dataclass(frozen=True, slots=True)
class TrainResult:
    run_id: str
    version: str
    train_rows: int
    train_data_sha256: str
    report: EvaluationReport | None
    gate: str  # "passed", "failed" or "unavailable"


def data_sha256(frame: pl.DataFrame, columns: tuple[str, ...]) -> str:
    """SHA-256 of the rows (keys and ``columns``), independent of row order: ``sha256:<hex>``."""
    keys = [k for k in KEYS if k in frame.columns]
    ordered = frame.sort([*keys, *columns]) if keys else frame.sort(list(columns))
    digest = hashlib.sha256(json.dumps([*keys, *columns]).encode())
    for key in keys:
        digest.update("\x1f".join(ordered[key].cast(pl.Utf8).fill_null("").to_list()).encode())
    digest.update(feature_matrix(ordered, columns).tobytes())
    return f"sha256:{digest.hexdigest()}"


def evaluation_sha256(frame: pl.DataFrame) -> str:
    """Identity of an evaluation table, whatever a model's feature subset: keys, every feature, the label."""
    columns = tuple(c for c in (*FEATURE_COLUMNS, "label") if c in frame.columns)
    return data_sha256(frame, columns)


def attach_labels(features: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """Add ``label``/``technique``: from window labels (keys + ``label``) or raw ground truth (event rows)."""
    features = features.drop([c for c in ("label", "technique") if c in features.columns])
    if "label" in labels.columns:
        keys = [k for k in KEYS if k in labels.columns and k in features.columns]
        extra = ["technique"] if "technique" in labels.columns else []
        joined = features.join(
            labels.select([*keys, "label", *extra]).unique(keys), on=keys, how="left", maintain_order="left"
        )
        joined = joined.with_columns(pl.col("label").fill_null(0).cast(pl.Int8))
        return joined if extra else joined.with_columns(technique=pl.lit(None, dtype=pl.Utf8))
    from analytics.labels import label_windows

    return label_windows(features, labels)


def select_window(frame: pl.DataFrame, window: str | None) -> pl.DataFrame:
    if window is None or "window" not in frame.columns:
        return frame
    selected = frame.filter(pl.col("window") == window)
    if selected.is_empty():
        raise DetectorError(
            f"no feature rows for window {window!r}", details={"windows": sorted(frame["window"].unique().to_list())}
        )
    return selected


def split_by_time(frame: pl.DataFrame, share: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(earlier rows, latest ``share`` of rows by ``window_start``): train on the past, evaluate on later."""
    if "window_start" not in frame.columns:
        cut = int(frame.height * (1 - share))
        return frame[:cut], frame[cut:]
    ordered = frame.sort("window_start", maintain_order=True)
    cut = int(ordered.height * (1 - share))
    return ordered[:cut], ordered[cut:]


def feature_datasets(training: pl.DataFrame, evaluation: pl.DataFrame | None) -> list[tuple[Dataset, str]]:
    """The training and evaluation tables as MLflow datasets, each with its context (built once, logged to
    every run that used them)."""
    datasets: list[tuple[Dataset, str]] = []
    for context, frame in (("training", training), ("evaluation", evaluation)):
        if frame is not None:
            targets = "label" if "label" in frame.columns else None
            datasets.append((from_polars(frame, name=f"features-{context}", targets=targets), context))
    return datasets


def log_datasets(datasets: list[tuple[Dataset, str]], origin: str) -> None:
    """Log ``feature_datasets`` as inputs of the active run; ``origin`` says where the features came from (a
    file, the ledger, a simulation)."""
    for dataset, context in datasets:
        mlflow.log_input(dataset, context=context, tags={"origin": origin[:250]})


def choose_on_validation(
    config: DetectorConfig,
    detector: str | None,
    fitting: pl.DataFrame,
    validation: pl.DataFrame,
    label: str = "label",
) -> EnsembleChoice | None:
    """The members, weights and preprocessing of best validation PR-AUC (``analytics.ensemble_selection``),
    or ``None`` (the configuration as it is) when selection is off or the validation rows lack a class."""
    if not config.select_on_validation or label not in validation.columns:
        return None
    labels = validation[label].fill_null(0).to_numpy()
    if not has_both_classes(labels) or fitting.height < 10:
        logger.warning("no validation rows of both classes: the configured ensemble is used as it is")
        return None
    names = None if detector in (None, "ensemble") else (detector,)
    choice = choose_ensemble(
        feature_matrix(fitting, config.features),
        feature_matrix(validation, config.features),
        labels,
        candidate_members(config, names),
        standardise=config.standardise,
        contamination=config.contamination,
    )
    logger.info("chose %s on validation (PR-AUC %.4f)", choice.to_json()["members"], choice.pr_auc)
    return choice


def _run_feature_gate(frame: pl.DataFrame, directory: Path) -> str:
    """The GX gate ``features`` of ``analytics.gates`` (written by the data-gates work); raises on failure."""
    try:
        from analytics.gates import run_gate, save_result
    except ImportError:
        logger.warning("analytics.gates is not available: training without the features data gate")
        return "unavailable"
    result = run_gate(frame, "features")
    mlflow.log_artifact(str(save_result(result, directory)), artifact_path="gates")
    mlflow.set_tag("gate.features", "passed" if result.success else "failed")
    result.raise_for_failure()
    return "passed"


def _training_and_evaluation(
    features: pl.DataFrame,
    config: DetectorConfig,
    labels: pl.DataFrame | None,
    evaluation: pl.DataFrame | None,
    detector: str | None,
) -> tuple[pl.DataFrame, pl.DataFrame | None, EnsembleChoice | None]:
    """The windows to train on (known anomalies left out when configured), those to evaluate on, and the
    ensemble chosen on the latest labelled training windows (``choose_on_validation``; None without labels)."""
    if labels is not None:
        features = attach_labels(features, labels)
    features = select_window(features, config.window)
    if evaluation is not None:
        evaluation = select_window(evaluation, config.window)
        training = features
    elif "label" in features.columns:
        training, evaluation = split_by_time(features, config.eval_share)
    else:
        training = features
    choice = None
    if "label" in training.columns:
        fitting, validation = split_by_time(training, config.eval_share)
        if config.exclude_known_anomalies:
            fitting = fitting.filter(pl.col("label").fill_null(0) == 0)
        choice = choose_on_validation(config, detector, fitting, validation)
    if config.exclude_known_anomalies and "label" in training.columns:
        training = training.filter(pl.col("label").fill_null(0) == 0)
    if training.height < 10:
        raise DetectorError("too few training rows", details={"rows": training.height})
    return training, evaluation, choice


def train(
    features: pl.DataFrame,
    *,
    config: DetectorConfig,
    tracking_uri: str,
    labels: pl.DataFrame | None = None,
    evaluation: pl.DataFrame | None = None,
    detector: str | None = None,
    gate: bool = True,
    run_name: str | None = None,
    origin: str = "a feature table",
    progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Fit, evaluate, log and register; see the module docstring.

    ``evaluation``: a labelled table to evaluate on; without it, when ``features`` is labelled (a ``label``
    column, or ``labels`` given), its latest ``config.eval_share`` of windows evaluate and the rest train.
    ``detector``: one registry name instead of the configured ensemble. ``origin``: where the features came
    from (kept with the logged datasets). ``progress(done, total)``: called after each of ``TRAINING_STEPS``.
    With labelled training rows, their latest ``config.eval_share`` validate the choice of members, weights and
    preprocessing.
    """
    report_step = progress or (lambda done, total: None)
    training, evaluation, choice = _training_and_evaluation(features, config, labels, evaluation, detector)
    pipeline = build_pipeline(config, detector, choice)
    steps = len(TRAINING_STEPS)
    if mlflow.active_run() is None:
        use_experiment(tracking_uri, EXPERIMENT)
    with (
        mlflow.start_run(run_name=run_name or f"train {pipeline.name}", nested=mlflow.active_run() is not None) as run,
        tempfile.TemporaryDirectory() as scratch,
    ):
        gate_state = _run_feature_gate(training, Path(scratch)) if gate else "skipped"
        log_datasets(feature_datasets(training, evaluation), origin)
        report_step(1, steps)
        if choice is not None:
            mlflow.log_dict(choice.to_json(), "ensemble-selection.json")
            mlflow.log_metric("validation_pr_auc", choice.pr_auc)
        train_sha256 = data_sha256(training, config.features)
        pipeline.fit(feature_matrix(training, config.features))
        report_step(2, steps)
        mlflow.log_params({k: str(v)[:500] for k, v in pipeline.flat_params().items()})
        mlflow.log_params(
            {
                "window": str(config.window),
                "exclude_known_anomalies": config.exclude_known_anomalies,
                "eval_k": config.eval_k,
                "eval_budget": config.eval_budget,
                "train_rows": training.height,
            }
        )
        mlflow.set_tags({"train_data_sha256": train_sha256, "model_name": MODEL_NAME, "gate.features": gate_state})
        threshold = config.alert_threshold if config.alert_threshold is not None else float(pipeline.threshold_)
        mlflow.log_metric("alert_threshold", threshold)
        report = None
        tags = {"train_data_sha256": train_sha256}
        if evaluation is not None and "label" in evaluation.columns:
            scores = pipeline.score_frame(evaluation)
            labels_array = evaluation["label"].fill_null(0).to_numpy()
            techniques = evaluation["technique"].to_list() if "technique" in evaluation.columns else None
            report = evaluate_scores(
                scores, labels_array, techniques=techniques, k=config.eval_k, budget=config.eval_budget
            )
            eval_sha256 = evaluation_sha256(evaluation)
            mlflow.log_metrics(report.metrics())
            mlflow.set_tag("eval_data_sha256", eval_sha256)
            tags["eval_data_sha256"] = eval_sha256
            for path in save_evaluation_plots(scores, labels_array, Path(scratch) / "plots", pipeline.name):
                mlflow.log_artifact(str(path), artifact_path="plots")
        else:
            logger.warning("no labelled evaluation data: the model is registered without quality metrics")
        report_step(3, steps)
        example = training.head(5).select([pl.col(c).cast(pl.Float64) for c in config.features]).to_pandas()
        version = log_detector(pipeline, alert_threshold=threshold, input_example=example, tags=tags)
        report_step(4, steps)
    return TrainResult(
        run_id=run.info.run_id,
        version=str(version.version),
        train_rows=training.height,
        train_data_sha256=train_sha256,
        report=report,
        gate=gate_state,
    )
