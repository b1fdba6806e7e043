"""The scored model: feature columns and a detector (an ensemble, or one member of it) as one PyOD detector.

Each member preprocesses the features its own way (``analytics.preprocessing``; chosen on validation data by
``analytics.ensemble_selection``). The pipeline also fits the log-robust statistics of the training rows
(``center_``, ``scale_``), which explanations measure deviations in (``analytics.explain``). Every
statistic is fixed at fit time, so the pipeline keeps its detector's batch independence, and that is what
lets it score a large batch in chunks on every core: a row's score is the same in any chunk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import polars as pl
from pyod.models.base import BaseDetector
from sklearn.utils import check_array

from analytics.detectors import REGISTRY, DetectorConfig, DetectorError, ensure_finite
from analytics.ensemble import ScoreEnsemble, member_label, member_names
from analytics.ensemble_selection import EnsembleChoice
from analytics.preprocessing import LogRobustScaler

__all__ = ["DetectorPipeline", "build_pipeline", "detector_label", "feature_matrix"]

Frame: TypeAlias = pl.DataFrame | pd.DataFrame

# A batch is split across threads only when every chunk keeps at least this many rows: below it, starting
# threads costs more than it saves. The detectors' heavy parts (SciPy's k-d tree, scikit-learn's trees,
# NumPy) release the GIL, so threads use the cores.
PARALLEL_CHUNK_ROWS = 10_000


def _cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _chunk_count(rows: int) -> int:
    return max(1, min(_cores(), rows // PARALLEL_CHUNK_ROWS))


def feature_matrix(frame: Frame, columns: Sequence[str]) -> np.ndarray:
    """The ``columns`` of a Polars or pandas frame as a float64 matrix, in that order; fails naming gaps."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DetectorError("feature frame lacks columns the detector needs", details={"missing": missing})
    if isinstance(frame, pl.DataFrame):
        matrix = frame.select([pl.col(c).cast(pl.Float64) for c in columns]).to_numpy()
    else:
        matrix = frame.loc[:, list(columns)].to_numpy(dtype=np.float64)
    matrix = np.ascontiguousarray(matrix, dtype=np.float64)
    bad = ~np.isfinite(matrix)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise DetectorError(
            f"feature frame holds {int(bad.sum())} null, NaN or infinite values",
            details={"first_row": int(rows[0]), "first_column": columns[int(cols[0])]},
        )
    return matrix


class DetectorPipeline(BaseDetector):  # type: ignore[misc]  # PyOD ships no type hints: BaseDetector is Any
    """``feature_columns`` -> ``detector`` (which preprocesses per member); ``center_``/``scale_`` explain."""

    def __init__(
        self,
        detector: BaseDetector | None = None,
        feature_columns: tuple[str, ...] = (),
        contamination: float = 0.1,
    ) -> None:
        super().__init__(contamination=contamination)
        self.detector = detector
        self.feature_columns = feature_columns

    def fit(self, X: Any, y: Any = None) -> DetectorPipeline:
        if self.detector is None:
            raise DetectorError("DetectorPipeline needs a detector")
        X = check_array(X, dtype=np.float64)
        self._set_n_classes(y)
        explanation_scale = LogRobustScaler().fit(X)
        self.center_, self.scale_ = explanation_scale.center_, explanation_scale.scale_
        self.detector.fit(X)
        self.decision_scores_ = ensure_finite(self.detector.decision_scores_, self.name)
        self._process_decision_scores()
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Scores of ``X``'s rows; a large batch is scored in chunks, one thread a core (see the module doc)."""
        X = check_array(X, dtype=np.float64)
        chunks = _chunk_count(X.shape[0])
        if chunks == 1:
            return self._score_rows(X)
        with ThreadPoolExecutor(max_workers=chunks, thread_name_prefix="score") as pool:
            return np.concatenate(list(pool.map(self._score_rows, np.array_split(X, chunks))))

    def _score_rows(self, X: np.ndarray) -> np.ndarray:
        if X.shape[1] != len(self.center_):
            raise DetectorError(f"expected {len(self.center_)} features, got {X.shape[1]}")
        return ensure_finite(self.detector.decision_function(X), self.name)  # type: ignore[union-attr]

    def score_frame(self, frame: Frame) -> np.ndarray:
        """Scores of a feature frame's rows (higher is more anomalous)."""
        return self.decision_function(feature_matrix(frame, self.feature_columns))

    @property
    def name(self) -> str:
        """What people call the detector: its registry name, or ``ensemble(iforest+ecod+knn)``."""
        return detector_label(self.detector)

    def flat_params(self) -> dict[str, Any]:
        """Every parameter, members' included, as flat ``prefix.key`` pairs for ``mlflow.log_params``."""
        params: dict[str, Any] = {"contamination": self.contamination, "features": ",".join(self.feature_columns)}
        detector = self.detector
        if isinstance(detector, ScoreEnsemble):
            params.update({"ensemble.standardise": detector.standardise, "ensemble.combine": detector.combine})
            members = getattr(detector, "detectors_", {})
            for label, member in members.items():
                params.update({f"{label}.{k}": v for k, v in member.get_params(deep=False).items()})
            params["ensemble.members"] = " ".join(member_label(m) for m in detector.members)
            if detector.weights is not None:
                params["ensemble.weights"] = " ".join(f"{w:.4f}" for w in detector.weights)
        elif detector is not None:
            params["detector"] = type(detector).__name__
            params.update({f"detector.{k}": v for k, v in detector.get_params(deep=False).items()})
        return params


def detector_label(detector: BaseDetector | None) -> str:
    """The registry name of a detector (its class name when it is none of the registry's), or for an ensemble
    ``ensemble(`` its members joined by ``+`` ``)``."""
    if isinstance(detector, ScoreEnsemble):
        return "ensemble(" + "+".join(member_names(detector)) + ")"
    names = {factory: name for name, factory in REGISTRY.items()}
    return names.get(type(detector), type(detector).__name__)


def build_pipeline(
    config: DetectorConfig, detector: str | None = None, choice: EnsembleChoice | None = None
) -> DetectorPipeline:
    """An unfitted pipeline: the ``choice`` made on validation data, else the configured ensemble (or the one
    registry detector named ``detector``) with the configured parameters and preprocessing."""
    weights: tuple[float, ...] | None
    if choice is not None:
        members, weights = choice.members, choice.weights
    else:
        names = config.members if detector is None or detector == "ensemble" else (detector,)
        members = tuple((name, config.params_of(name), config.preprocessing) for name in names)
        weights = config.weights if names == config.members else None
    inner = ScoreEnsemble(
        members=members,
        weights=weights,
        standardise=config.standardise,
        combine=config.combine,
        contamination=config.contamination,
    )
    return DetectorPipeline(detector=inner, feature_columns=config.features, contamination=config.contamination)
