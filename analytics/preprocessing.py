"""Per-detector preprocessing, fitted on training rows: ``none`` or ``log_robust``.

``log_robust``: ``sign(x) * log1p(|x|)``, then centring on the training median and scaling by the training
IQR (/1.349, the standard deviation of a normal sample; the standard deviation where the IQR is 0, else 1).
It tames heavy-tailed counts for distance detectors, but it also reshapes a table whose features are already
on a sensible scale (ADBench's http: KNN and LOF lose against plain PyOD), so which preprocessing a detector
gets is chosen on validation data (``analytics.ensemble_selection``). Every statistic is fixed at fit time:
a row's transform never depends on the other rows of its batch.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import numpy as np
from sklearn.utils import check_array

from qerberos.errors import ConfigurationError

__all__ = ["PREPROCESSING", "LogRobustScaler", "Preprocessing", "fit_preprocessing", "signed_log1p"]

Preprocessing: TypeAlias = Literal["none", "log_robust"]
PREPROCESSING: tuple[Preprocessing, ...] = ("none", "log_robust")


def signed_log1p(X: np.ndarray) -> np.ndarray:
    logged: np.ndarray = np.sign(X) * np.log1p(np.abs(X))
    return logged


class LogRobustScaler:
    """Signed log1p, then (value - training median) / training scale; ``center_`` and ``scale_`` per column."""

    def fit(self, X: Any) -> LogRobustScaler:
        logged = signed_log1p(check_array(X, dtype=np.float64))
        self.center_: np.ndarray = np.median(logged, axis=0)
        q75, q25 = np.percentile(logged, [75, 25], axis=0)
        spread = q75 - q25
        fallback = logged.std(axis=0)
        self.scale_: np.ndarray = np.where(spread > 0, spread / 1.349, np.where(fallback > 0, fallback, 1.0))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        scaled: np.ndarray = (signed_log1p(X) - self.center_) / self.scale_
        return scaled


class _Unchanged:
    """The ``none`` preprocessing: the detector sees the features as they are (what plain PyOD does)."""

    def fit(self, X: Any) -> _Unchanged:
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return X


def fit_preprocessing(kind: str, X: np.ndarray) -> LogRobustScaler | _Unchanged:
    """A fitted preprocessing of ``kind`` (one of :data:`PREPROCESSING`)."""
    if kind == "log_robust":
        return LogRobustScaler().fit(X)
    if kind == "none":
        return _Unchanged()
    raise ConfigurationError(f"unknown preprocessing {kind!r}", details={"known": list(PREPROCESSING)})
