"""Why a window scored high: the features that drove the score, each beside the identity's own baseline.

A feature's *deviation* is how far its value sits from the training distribution in the units the model
scores in: ``(sign(x) * log1p(|x|) - center) / scale`` with the pipeline's fitted training median and IQR
(``analytics.detector_pipeline.DetectorPipeline``). The features with the largest deviations are reported, largest
first, with the value, the identity's baseline (the mean of that feature over its earlier windows) and, when
the identity has no earlier window, the population's typical value (the training median) instead.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["FeatureContribution", "explain", "population_baseline"]


@dataclasses.dataclass(frozen=True, slots=True)
class FeatureContribution:
    feature: str
    value: float
    baseline: float
    baseline_source: str  # "identity" or "population"
    deviation: float

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "value": round(self.value, 6),
            "baseline": round(self.baseline, 6),
            "baselineSource": self.baseline_source,
            "deviation": round(self.deviation, 3),
        }


def _log(x: float) -> float:
    return math.copysign(math.log1p(abs(x)), x)


def population_baseline(center: Sequence[float]) -> list[float]:
    """The raw feature values at the training median (the inverse of the signed log1p)."""
    return [math.copysign(math.expm1(abs(float(c))), float(c)) for c in center]


def explain(
    row: Mapping[str, float],
    columns: Sequence[str],
    *,
    baseline: Mapping[str, float] | None = None,
    center: Sequence[float] | None = None,
    scale: Sequence[float] | None = None,
    top: int = 5,
) -> list[FeatureContribution]:
    """The ``top`` features of ``row`` that deviate most (see the module doc).

    ``center``/``scale``: the pipeline's fitted ``center_``/``scale_`` (same order as ``columns``); without
    them a deviation is measured against the baseline: ``(value - baseline) / max(|baseline|, 1)``.
    """
    typical = population_baseline(center) if center is not None else [0.0] * len(columns)
    contributions = []
    for index, name in enumerate(columns):
        value = float(row[name])
        if baseline is not None and name in baseline:
            base, source = float(baseline[name]), "identity"
        else:
            base, source = typical[index], "population"
        if center is not None and scale is not None:
            deviation = (_log(value) - float(center[index])) / float(scale[index])
        else:
            deviation = (value - base) / max(abs(base), 1.0)
        contributions.append(FeatureContribution(name, value, base, source, float(np.nan_to_num(deviation))))
    contributions.sort(key=lambda c: (-abs(c.deviation), c.feature))
    return contributions[:top]
