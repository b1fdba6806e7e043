"""Choose the ensemble's members, weights and per-detector preprocessing on labelled validation rows.

Candidates are every configured detector with its configured parameters and with PyOD's defaults, each
under every preprocessing (``analytics.preprocessing``). All are fitted on the fitting rows (labels unseen)
and scored on the validation rows; the ensemble is then grown greedily with replacement (Caruana et al.,
"Ensemble selection from libraries of models", ICML 2004): each round adds the candidate that raises the
validation PR-AUC of the weighted mean most, and selection stops when no candidate raises it. The first
round picks the best single candidate, so on validation the ensemble is never worse than its best member,
and a member that would lower the score is never added. Weights are how often each member was picked.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score

from analytics.detectors import DetectorConfig
from analytics.ensemble import Member, ScoreEnsemble, member_label
from analytics.preprocessing import PREPROCESSING
from qerberos.errors import ValidationError

__all__ = ["EnsembleChoice", "candidate_members", "choose_ensemble", "has_both_classes"]

# a round must raise the validation PR-AUC by more than this to add a member (ties keep the smaller ensemble)
_MIN_GAIN = 1e-6
_ROUNDS = 10


@dataclasses.dataclass(frozen=True, slots=True)
class EnsembleChoice:
    members: tuple[Member, ...]
    weights: tuple[float, ...]
    candidate_pr_auc: Mapping[str, float]  # validation PR-AUC of every candidate alone, by label
    pr_auc: float  # validation PR-AUC of the chosen ensemble

    def to_json(self) -> dict[str, Any]:
        return {
            "members": [member_label(m) for m in self.members],
            "weights": [round(w, 6) for w in self.weights],
            "validationPrAuc": round(self.pr_auc, 6),
            "candidates": {label: round(v, 6) for label, v in sorted(self.candidate_pr_auc.items())},
        }


def has_both_classes(labels: np.ndarray) -> bool:
    return 0 < int(np.asarray(labels).astype(bool).sum()) < np.asarray(labels).size


def candidate_members(config: DetectorConfig, names: Iterable[str] | None = None) -> tuple[Member, ...]:
    """Every detector of ``names`` (default: the configured members) x {configured, PyOD default} parameters
    x every preprocessing. A detector's seed (``random_state``) is kept with its defaults: it is not tuning."""
    members: list[Member] = []
    for name in names or config.members:
        configured = config.params_of(name)
        seed_only = {k: v for k, v in configured.items() if k == "random_state"}
        parameter_sets = [configured] if configured == seed_only else [configured, seed_only]
        members += [(name, params, preprocessing) for params in parameter_sets for preprocessing in PREPROCESSING]
    return tuple(members)


def choose_ensemble(
    fitting: np.ndarray,
    validation: np.ndarray,
    validation_labels: np.ndarray,
    candidates: tuple[Member, ...],
    *,
    standardise: str = "zscore",
    contamination: float = 0.02,
) -> EnsembleChoice:
    """The greedy ensemble selection of the module doc (fits every candidate once on ``fitting``)."""
    labels = np.asarray(validation_labels).astype(np.int8).ravel()
    if not has_both_classes(labels):
        raise ValidationError("choosing the ensemble needs validation rows of both classes")
    library = ScoreEnsemble(members=candidates, standardise=standardise, contamination=contamination).fit(fitting)
    scores = library.member_scores(validation)
    alone = {label: float(average_precision_score(labels, s)) for label, s in scores.items()}
    picked: Counter[str] = Counter()
    total = np.zeros(labels.size)
    best = -1.0
    for _ in range(_ROUNDS):
        count = sum(picked.values()) + 1
        gains = {label: float(average_precision_score(labels, (total + s) / count)) for label, s in scores.items()}
        label = max(gains, key=lambda name: (gains[name], -list(scores).index(name)))
        if gains[label] <= best + _MIN_GAIN:
            break
        picked[label] += 1
        total += scores[label]
        best = gains[label]
    by_label = {member_label(m): m for m in candidates}
    chosen = tuple(by_label[label] for label in picked)
    weights = tuple(picked[label] / sum(picked.values()) for label in picked)
    return EnsembleChoice(members=chosen, weights=weights, candidate_pr_auc=alone, pr_auc=best)
