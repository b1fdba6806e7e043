"""A score-combining ensemble that is itself a PyOD detector.

Each member is a registry detector with its own preprocessing (``analytics.preprocessing``). Its raw score is
standardised against that member's *training* scores (a z-score, or the training-ECDF rank), then the
standardised scores are combined: a weighted mean (weights from ``analytics.ensemble_selection``, equal by
default) or the maximum. Because every statistic is fixed at fit time, an ensemble score is as
batch-independent as its members' scores.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pyod.models.base import BaseDetector
from sklearn.utils import check_array

from analytics.detectors import build_detector, ensure_finite
from analytics.preprocessing import fit_preprocessing
from qerberos.errors import ConfigurationError

__all__ = ["Member", "ScoreEnsemble", "member_label", "member_names"]

logger = logging.getLogger(__name__)

# (registry name, parameters, preprocessing): one member of the ensemble
Member = tuple[str, dict[str, Any], str]
# a member given as (name, parameters) is preprocessed as members were before the choice existed
_DEFAULT_PREPROCESSING = "log_robust"


def _as_member(member: tuple[Any, ...]) -> Member:
    name, params, *preprocessing = member
    return name, params, preprocessing[0] if preprocessing else _DEFAULT_PREPROCESSING


def member_label(member: Member) -> str:
    """``name/preprocessing/parameters``: ``knn/none/defaults``, ``knn/log_robust/method:largest/n_neighbors:10``
    (characters MLflow takes in a parameter name, which these labels prefix).

    A seed (``random_state``) is not a parameter here: with only a seed a detector runs on PyOD's defaults.
    """
    name, params, preprocessing = _as_member(member)
    tuned = "/".join(f"{key}:{value}" for key, value in sorted(params.items()) if key != "random_state")
    return f"{name}/{preprocessing}/{tuned or 'defaults'}"


class ScoreEnsemble(BaseDetector):  # type: ignore[misc]  # PyOD ships no type hints: BaseDetector is Any
    """Combine registry detectors; ``members`` is a tuple of ``(name, params, preprocessing)``.

    Parameters (``get_params()``): ``members``, ``weights`` (one a member, or ``None``: equal),
    ``standardise`` ("zscore" or "rank"), ``combine`` ("mean": weighted mean, or "max") and ``contamination``;
    fitted members are in ``detectors_`` (label -> detector).
    """

    weights: tuple[float, ...] | None = None  # what an ensemble pickled before weights existed reads

    def __init__(
        self,
        members: tuple[Member, ...] = (("iforest", {}, "none"), ("ecod", {}, "none")),
        standardise: str = "zscore",
        combine: str = "mean",
        contamination: float = 0.1,
        weights: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__(contamination=contamination)
        self.members = members
        self.weights = weights
        self.standardise = standardise
        self.combine = combine

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
        self.preprocessing_: dict[str, Any] = {}
        self.train_scores_: dict[str, np.ndarray] = {}
        self.score_mean_: dict[str, float] = {}
        self.score_std_: dict[str, float] = {}
        for member in map(_as_member, self.members):
            name, params, preprocessing = member
            label = member_label(member)
            self.preprocessing_[label] = fit_preprocessing(preprocessing, X)
            detector = build_detector(name, params, self.contamination)
            detector.fit(self.preprocessing_[label].transform(X))
            scores = ensure_finite(detector.decision_scores_, label)
            self.detectors_[label] = detector
            self.train_scores_[label] = np.sort(scores)
            self.score_mean_[label] = float(scores.mean())
            std = float(scores.std())
            self.score_std_[label] = std if std > 0 else 1.0
            logger.debug("fitted %s on %d rows", label, X.shape[0])
        self.decision_scores_ = self.decision_function(X)
        self._process_decision_scores()
        return self

    def standardised(self, label: str, raw: np.ndarray) -> np.ndarray:
        """A member's raw scores in the ensemble's common unit (see the module doc)."""
        if self.standardise == "rank":
            ranks = np.searchsorted(self.train_scores_[label], raw, side="right")
            rank_share: np.ndarray = ranks / len(self.train_scores_[label])
            return rank_share
        zscores: np.ndarray = (raw - self.score_mean_[label]) / self.score_std_[label]
        return zscores

    def member_scores(self, X: Any) -> dict[str, np.ndarray]:
        """Each member's standardised scores (label -> array), before combination."""
        X = check_array(X, dtype=np.float64)
        return {
            label: self.standardised(
                label, ensure_finite(detector.decision_function(self.preprocessing_[label].transform(X)), label)
            )
            for label, detector in self.detectors_.items()
        }

    def decision_function(self, X: Any) -> np.ndarray:
        stacked = np.vstack(list(self.member_scores(X).values()))
        if self.combine == "max":
            return ensure_finite(stacked.max(axis=0), "ensemble")
        weights = np.ones(len(stacked)) if self.weights is None else np.asarray(self.weights, dtype=np.float64)
        return ensure_finite(weights @ stacked / weights.sum(), "ensemble")


def member_names(ensemble: ScoreEnsemble) -> list[str]:
    """The registry names of the ensemble's members, in order."""
    return [_as_member(member)[0] for member in ensemble.members]
