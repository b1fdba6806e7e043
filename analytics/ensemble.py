"""A score-combining ensemble that is itself a PyOD detector.

Each member's raw score is standardised against that member's *training* scores (a z-score, or the
training-ECDF rank), then the standardised scores are averaged (or the maximum taken). Because the
standardisation is fixed at fit time, an ensemble score is as batch-independent as its members' scores.
``weights`` (one per member) turn the mean into a weighted mean; the maximum ignores them.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pyod.models.base import BaseDetector
from sklearn.utils import check_array

from analytics.detectors import build_detector, ensure_finite
from qerberos.errors import ConfigurationError

__all__ = ["ScoreEnsemble"]

logger = logging.getLogger(__name__)


class ScoreEnsemble(BaseDetector):  # type: ignore[misc]  # PyOD ships no type hints: BaseDetector is Any
    """Combine registry detectors; ``members`` is a tuple of ``(name, params)`` pairs.

    Parameters (``get_params()``): ``members``, ``standardise`` ("zscore" or "rank"), ``combine`` ("mean" or
    "max"), ``weights`` (one non-negative number per member, or None for equal weights) and ``contamination``;
    fitted members are in ``detectors_`` (name -> detector).
    """

    weights: tuple[float, ...] | None = None  # what an ensemble pickled before weights existed reads

    def __init__(
        self,
        members: tuple[tuple[str, dict[str, Any]], ...] = (("iforest", {}), ("ecod", {})),
        standardise: str = "zscore",
        combine: str = "mean",
        contamination: float = 0.1,
        weights: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__(contamination=contamination)
        self.members = members
        self.standardise = standardise
        self.combine = combine
        self.weights = weights

    def fit(self, X: Any, y: Any = None) -> ScoreEnsemble:
        X = check_array(X, dtype=np.float64)
        self._set_n_classes(y)
        if self.weights is not None and (
            len(self.weights) != len(self.members) or min(self.weights) < 0 or sum(self.weights) <= 0
        ):
            raise ConfigurationError(
                "ensemble weights must be one non-negative number per member, not all zero",
                details={"members": len(self.members), "weights": list(self.weights)},
            )
        self.detectors_: dict[str, BaseDetector] = {}
        self.train_scores_: dict[str, np.ndarray] = {}
        self.score_mean_: dict[str, float] = {}
        self.score_std_: dict[str, float] = {}
        for name, params in self.members:
            detector = build_detector(name, params, self.contamination)
            detector.fit(X)
            scores = ensure_finite(detector.decision_scores_, name)
            self.detectors_[name] = detector
            self.train_scores_[name] = np.sort(scores)
            self.score_mean_[name] = float(scores.mean())
            std = float(scores.std())
            self.score_std_[name] = std if std > 0 else 1.0
            logger.debug("fitted %s on %d rows", name, X.shape[0])
        self.decision_scores_ = self.decision_function(X)
        self._process_decision_scores()
        return self

    def member_scores(self, X: Any) -> dict[str, np.ndarray]:
        """Each member's standardised scores (name -> array), before combination."""
        X = check_array(X, dtype=np.float64)
        standardised: dict[str, np.ndarray] = {}
        for name, detector in self.detectors_.items():
            raw = ensure_finite(detector.decision_function(X), name)
            if self.standardise == "rank":
                ranks = np.searchsorted(self.train_scores_[name], raw, side="right")
                standardised[name] = ranks / len(self.train_scores_[name])
            else:
                standardised[name] = (raw - self.score_mean_[name]) / self.score_std_[name]
        return standardised

    def decision_function(self, X: Any) -> np.ndarray:
        stacked = np.vstack(list(self.member_scores(X).values()))
        combined = stacked.max(axis=0) if self.combine == "max" else np.average(stacked, axis=0, weights=self.weights)
        return ensure_finite(combined, "ensemble")
