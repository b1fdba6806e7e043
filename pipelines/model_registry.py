"""The detector in MLflow: a pyfunc that returns scores, the registry, the aliases, and loading it safely.

Model: ``qerberos-detector`` in the registry; each version is a custom ``mlflow.pyfunc.PythonModel``
(``DetectorPyfunc``) whose ``predict`` returns ``decision_function`` scores (one float per row, higher is
more anomalous), with a column signature over the feature columns. Aliases (MLflow 3, no stages):
``champion`` is what the service scores with, ``challenger`` marks the newest candidate. The champion's
history is the registered-model tag ``champion_history`` (JSON list of versions, oldest first).

Trust: a model version is a pickle, and unpickling runs code. At registration the trainer records, as
model-version tags, the SHA-256 of the PyOD envelope (``detector_sha256``) and of the whole model
directory (``model_tree_sha256``). Loading downloads the version, recomputes both and refuses on any
difference *before* unpickling; it then opens the envelope with ``pyod.utils.persistence.load(trusted=True,
strict=True)``, which also refuses a model saved with other sklearn/numpy/scipy/joblib versions (retrain
after upgrading them). The pickles are trusted only because their hashes match what the trainer recorded.

Why here, in ``pipelines/``: this is input and output with a store outside our database (the MLflow registry
and its artifacts) and a polling service (``ChampionWatcher``), which training, promotion, evaluation and live
detection share; ``analytics/`` is pure computation, and ``models/`` holds our database's state and knows no ML
(loading a detector unpickles ``analytics.detector_pipeline`` objects).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow

with warnings.catch_warnings():
    # MLflow 3.17 warns, while importing pyfunc, about type hints of its own GenAI request types.
    warnings.simplefilter("ignore", UserWarning)
    import mlflow.pyfunc
    from mlflow.pyfunc.model import PythonModel
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, Schema

from qerberos.errors import DependencyUnavailableError, DetectorError, NotFoundError

if TYPE_CHECKING:
    from analytics.detector_pipeline import DetectorPipeline, Frame

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "EXPERIMENT_KIND",
    "MODEL_NAME",
    "ChampionWatcher",
    "DetectorPyfunc",
    "LoadedDetector",
    "champion_history",
    "champion_version",
    "client",
    "library_versions",
    "load_champion",
    "load_version",
    "log_detector",
    "set_champion",
    "use_experiment",
    "use_tracking_uri",
]

logger = logging.getLogger(__name__)
# MLflow draws download progress bars on stderr; keep them out of service logs (a third-party knob only).
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

MODEL_NAME = "qerberos-detector"
CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"
# The experiment tag MLflow 3's UI reads to choose between its GenAI views (traces first) and its model-training
# views (runs first); the values are those of the UI's experiment kinds.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
_ENVELOPE = "detector.pyod.joblib"
_LIBRARIES = ("pyod", "scikit-learn", "numpy", "scipy", "pandas", "polars", "mlflow", "joblib")


def library_versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in _LIBRARIES}


def use_tracking_uri(tracking_uri: str) -> None:
    """Point MLflow's fluent API (runs, ``load_model``) at one store, for tracking and the registry."""
    _ensure_local_store(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


def use_experiment(tracking_uri: str, name: str) -> None:
    """Point MLflow's fluent API at one store and one of its experiments, creating it if need be.

    MLflow gives a new experiment of a database store the artifact root ``./mlruns`` of whatever directory
    the process runs in; one created here keeps its artifacts beside a local SQLite store's file instead
    (``<store directory>/<name>/``), so a store moves, backs up and restores as one directory.
    Every experiment of ours is tagged a classic model-training one (``EXPERIMENT_KIND``), so that MLflow 3's UI
    opens it on its runs rather than on the GenAI overview of traces.
    """
    use_tracking_uri(tracking_uri)
    if tracking_uri.startswith("sqlite:///") and mlflow.get_experiment_by_name(name) is None:
        artifacts = Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / name
        try:
            mlflow.create_experiment(name, artifact_location=artifacts.as_uri(), tags=dict([EXPERIMENT_KIND]))
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # another process created it meanwhile
                raise
    experiment = mlflow.set_experiment(name)
    kind_tag, kind = EXPERIMENT_KIND
    if experiment.tags.get(kind_tag) != kind:
        mlflow.set_experiment_tag(kind_tag, kind)


def client(tracking_uri: str) -> MlflowClient:
    _ensure_local_store(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _ensure_local_store(tracking_uri: str) -> None:
    """A local SQLite store (the default ``$QERBEROS_HOME/mlflow.db``) needs its directory before MLflow opens it."""
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def _sha256_tree(root: Path) -> str:
    """One hash over every file of a directory: sorted ``relative-path NUL file-hash`` lines.

    ``registered_model_meta`` is left out: MLflow writes it when downloading, from the URI used (it names
    the registered model and version), and it holds no code or weights.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "registered_model_meta"):
        digest.update(f"{path.relative_to(root).as_posix()}\0{_sha256_file(path)}\n".encode())
    return f"sha256:{digest.hexdigest()}"


class DetectorPyfunc(PythonModel):
    """Scores feature rows with a fitted :class:`DetectorPipeline` (returns scores, never 0/1 labels)."""

    def load_context(self, context: Any) -> None:
        path = Path(context.artifacts["detector"])
        expected = (context.model_config or {}).get("detector_sha256")
        actual = _sha256_file(path)
        if expected != actual:
            raise DetectorError(
                "detector file does not match its recorded SHA-256; refusing to load it",
                details={"expected": expected, "actual": actual},
            )
        # PyOD (with numba), scikit-learn and our detectors: about 160 MB, loaded with the first detector, not by a
        # process that only asks whether there is a champion (embedded detection before the first training)
        from pyod.utils import persistence

        from analytics.detector_pipeline import DetectorPipeline

        try:
            pipeline, envelope = persistence.load(path, strict=True, return_metadata=True, trusted=True)
        except ValueError as exc:
            raise DetectorError(f"detector file refused: {exc}") from exc
        if not isinstance(pipeline, DetectorPipeline):
            raise DetectorError(f"detector file holds a {type(pipeline).__name__}, not a DetectorPipeline")
        self.pipeline = pipeline
        self.envelope = envelope

    # pd.DataFrame is one of the hints MLflow accepts without inferring a schema from it: the signature logged
    # with the model describes the input columns.
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.Series:
        return pd.Series(self.pipeline.score_frame(model_input), name="score")


def _signature(columns: tuple[str, ...]) -> ModelSignature:
    return ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in columns]),
        outputs=Schema([ColSpec("double", "score")]),
    )


def log_detector(
    pipeline: DetectorPipeline,
    *,
    alert_threshold: float,
    input_example: pd.DataFrame,
    tags: Mapping[str, str] | None = None,
) -> ModelVersion:
    """Log ``pipeline`` as a pyfunc in the active run, register it and mark it ``challenger``.

    ``input_example``: a few feature rows (float columns in ``pipeline.feature_columns`` order).
    """
    from pyod.utils import persistence  # the caller trained ``pipeline``: PyOD is loaded already

    run = mlflow.active_run()
    if run is None:
        raise DetectorError("log_detector needs an active MLflow run")
    versions = library_versions()
    with tempfile.TemporaryDirectory() as scratch:
        envelope = Path(scratch) / _ENVELOPE
        persistence.save(pipeline, envelope, metadata={"run_id": run.info.run_id, "libraries": versions})
        detector_sha256 = _sha256_file(envelope)
        info = mlflow.pyfunc.log_model(
            name="detector",
            python_model=DetectorPyfunc(),
            artifacts={"detector": str(envelope)},
            signature=_signature(pipeline.feature_columns),
            input_example=input_example,
            model_config={
                "detector_sha256": detector_sha256,
                "feature_columns": list(pipeline.feature_columns),
                "alert_threshold": alert_threshold,
            },
            metadata={"libraries": versions},
            pip_requirements=[f"{name}=={version}" for name, version in versions.items()],
            registered_model_name=MODEL_NAME,
        )
    version = str(info.registered_model_version)
    registry = client(mlflow.get_tracking_uri())
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=scratch))
        tree_sha256 = _sha256_tree(local)
    version_tags = {
        "detector_sha256": detector_sha256,
        "model_tree_sha256": tree_sha256,
        "run_id": run.info.run_id,
        "alert_threshold": repr(alert_threshold),
        **(tags or {}),
    }
    for key, value in version_tags.items():
        registry.set_model_version_tag(MODEL_NAME, version, key, value)
    registry.set_registered_model_alias(MODEL_NAME, CHALLENGER, version)
    logger.info("registered %s version %s (run %s)", MODEL_NAME, version, run.info.run_id)
    return registry.get_model_version(MODEL_NAME, version)


@contextmanager
def _registry_errors(what: str) -> Iterator[None]:
    try:
        yield
    except MlflowException as exc:
        missing_alias = exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in exc.message
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or missing_alias:
            raise NotFoundError(f"{what}: {exc.message}") from exc
        raise DependencyUnavailableError(f"MLflow registry failed on {what}: {exc.message}") from exc


def champion_version(tracking_uri: str) -> str | None:
    """The version the ``champion`` alias points at, or None: one registry call, cheap enough to poll."""
    try:
        with _registry_errors("champion alias"):
            return str(client(tracking_uri).get_model_version_by_alias(MODEL_NAME, CHAMPION).version)
    except NotFoundError:
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class LoadedDetector:
    """A registered detector version, verified and ready to score feature frames."""

    version: str
    run_id: str
    alert_threshold: float
    feature_columns: tuple[str, ...]
    pipeline: DetectorPipeline
    libraries: Mapping[str, str]

    def score(self, frame: Frame) -> np.ndarray:
        return self.pipeline.score_frame(frame)

    def alerts(self, frame: Frame) -> np.ndarray:
        """True where a row's score is past the alert threshold."""
        return self.score(frame) > self.alert_threshold


def load_version(tracking_uri: str, version: str) -> LoadedDetector:
    """Download ``qerberos-detector`` version ``version``, check its hashes, then load it (see module doc)."""
    registry = client(tracking_uri)
    with _registry_errors(f"model version {version}"):
        model_version = registry.get_model_version(MODEL_NAME, version)
        # where this store keeps the version: a ``models:/`` URI would be resolved by MLflow's global registry,
        # which a serving or detecting process never points at this store
        location = registry.get_model_version_download_uri(MODEL_NAME, version)
    expected_tree = model_version.tags.get("model_tree_sha256")
    if not expected_tree:
        raise DetectorError(f"model version {version} has no recorded hash; refusing to load it")
    with tempfile.TemporaryDirectory() as scratch:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=scratch))
        except MlflowException as exc:
            raise DependencyUnavailableError(f"cannot download model version {version}: {exc.message}") from exc
        actual_tree = _sha256_tree(local)
        if actual_tree != expected_tree:
            raise DetectorError(
                f"model version {version} differs from what was registered; refusing to load it",
                details={"expected": expected_tree, "actual": actual_tree},
            )
        model = mlflow.pyfunc.load_model(str(local))
    python_model = model.unwrap_python_model()
    if not isinstance(python_model, DetectorPyfunc):
        raise DetectorError(f"model version {version} is not a qerberos DetectorPyfunc")
    config: Mapping[str, Any] = model.model_config or {}
    pipeline = python_model.pipeline
    return LoadedDetector(
        version=str(version),
        run_id=str(model_version.run_id),
        alert_threshold=float(config.get("alert_threshold", pipeline.threshold_)),
        feature_columns=tuple(pipeline.feature_columns),
        pipeline=pipeline,
        libraries=dict((python_model.envelope or {}).get("metadata", {}).get("libraries", {})),
    )


def load_champion(tracking_uri: str) -> LoadedDetector | None:
    """The current champion, verified and loaded; None when no version holds the alias."""
    version = champion_version(tracking_uri)
    return None if version is None else load_version(tracking_uri, version)


def champion_history(tracking_uri: str) -> list[str]:
    """Versions that were champion, oldest first (the last one is the current champion)."""
    with _registry_errors("registered model"):
        model = client(tracking_uri).get_registered_model(MODEL_NAME)
    return [str(v) for v in json.loads(model.tags.get(HISTORY_TAG, "[]"))]


def set_champion(tracking_uri: str, version: str, *, tags: Mapping[str, str], rollback: bool = False) -> None:
    """Move ``champion`` to ``version``; record the move in the history and as tags on the version.

    A promotion appends ``version`` to the history; a rollback drops the current champion from its end.
    """
    registry = client(tracking_uri)
    history = champion_history(tracking_uri)
    if rollback:
        history = history[:-1]
    elif not history or history[-1] != version:
        history.append(version)
    with _registry_errors(f"alias {CHAMPION} -> {version}"):
        registry.set_registered_model_alias(MODEL_NAME, CHAMPION, version)
        registry.set_registered_model_tag(MODEL_NAME, HISTORY_TAG, json.dumps(history[-100:]))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for key, value in {"champion_since": stamp, **tags}.items():
            registry.set_model_version_tag(MODEL_NAME, version, key, value)
        try:
            if str(registry.get_model_version_by_alias(MODEL_NAME, CHALLENGER).version) == str(version):
                registry.delete_registered_model_alias(MODEL_NAME, CHALLENGER)
        except MlflowException:
            pass
    logger.info("%s is now champion version %s", MODEL_NAME, version)


class ChampionWatcher:
    """Holds the loaded champion; ``refresh()`` (called periodically by the service) swaps in a new one.

    ``refresh`` costs one registry call when nothing changed. If the new champion cannot be loaded, the
    watcher keeps scoring with the one it has and logs why.
    """

    def __init__(self, tracking_uri: str) -> None:
        self._tracking_uri = tracking_uri
        self._current: LoadedDetector | None = None

    def current(self) -> LoadedDetector | None:
        return self._current

    def refresh(self) -> bool:
        """Reload if the alias moved; True when the detector in use changed."""
        try:
            version = champion_version(self._tracking_uri)
        except DependencyUnavailableError as exc:
            logger.warning("champion check failed, keeping version %s: %s", self._version(), exc.message)
            return False
        if version == self._version():
            return False
        if version is None:
            logger.warning("no champion any more; keeping version %s", self._version())
            return False
        try:
            loaded = load_version(self._tracking_uri, version)
        except (DetectorError, DependencyUnavailableError, NotFoundError) as exc:
            logger.error("cannot load champion version %s, keeping %s: %s", version, self._version(), exc.message)
            return False
        logger.info("champion changed: %s -> %s", self._version(), version)
        self._current = loaded
        return True

    def _version(self) -> str | None:
        return None if self._current is None else self._current.version
