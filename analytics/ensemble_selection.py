"""Choose the ensemble's members, per-detector parameters and preprocessing on labelled validation rows.

Candidates are every configured detector with its configured parameters and with PyOD's defaults, each
under every preprocessing (``analytics.preprocessing``). All are fitted on the fitting rows (labels unseen)
and scored on the validation rows (PR-AUC). Then:

1. each detector keeps its variant of best validation PR-AUC; a tie keeps the configured variant (configured
   parameters and preprocessing), so a small or saturated validation set changes nothing it cannot justify;
2. backward elimination: while removing one member raises the validation PR-AUC of the equal-weight mean,
   the member whose removal raises it most is dropped (a member that lowers the score does not stay);
3. if the best single variant still beats what is left, it is the ensemble alone.

So on validation the ensemble is never worse than its best member.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score

from analytics.detectors import DetectorConfig
from analytics.ensemble import Member, ScoreEnsemble, member_label
from analytics.preprocessing import PREPROCESSING
from qerberos.errors import ValidationError

__all__ = ["EnsembleChoice", "candidate_members", "choose_ensemble", "has_both_classes"]

# a change (another variant, a member dropped) must raise the validation PR-AUC by more than this
_MIN_GAIN = 1e-6


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
    x every preprocessing, the configured variant first. A detector's seed (``random_state``) is kept with its
    defaults: it is not tuning."""
    members: list[Member] = []
    for name in names or config.members:
        configured = config.params_of(name)
        seed_only = {k: v for k, v in configured.items() if k == "random_state"}
        parameter_sets = [configured] if configured == seed_only else [configured, seed_only]
        preprocessings = (config.preprocessing, *(p for p in PREPROCESSING if p != config.preprocessing))
        members += [(name, params, preprocessing) for params in parameter_sets for preprocessing in preprocessings]
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
    """The selection of the module doc (fits every candidate once on ``fitting``). ``candidates`` lists each
    detector's configured variant first."""
    labels = np.asarray(validation_labels).astype(np.int8).ravel()
    if not has_both_classes(labels):
        raise ValidationError("choosing the ensemble needs validation rows of both classes")
    library = ScoreEnsemble(members=candidates, standardise=standardise, contamination=contamination).fit(fitting)
    scores = library.member_scores(validation)

    def quality(labels_of_members: Iterable[str]) -> float:
        chosen = list(labels_of_members)
        return float(average_precision_score(labels, np.mean([scores[m] for m in chosen], axis=0)))

    alone = {label: quality([label]) for label in scores}
    best_variant: dict[str, str] = {}
    for member in candidates:
        name, label = member[0], member_label(member)
        if name not in best_variant or alone[label] > alone[best_variant[name]] + _MIN_GAIN:
            best_variant[name] = label
    kept = list(best_variant.values())
    current = quality(kept)
    while len(kept) > 1:
        without = {label: quality(m for m in kept if m != label) for label in kept}
        weakest = max(without, key=lambda label: without[label])
        if without[weakest] <= current + _MIN_GAIN:
            break
        kept.remove(weakest)
        current = without[weakest]
    single = max(alone, key=lambda label: alone[label])
    if alone[single] > current + _MIN_GAIN:
        kept, current = [single], alone[single]
    by_label = {member_label(m): m for m in candidates}
    return EnsembleChoice(
        members=tuple(by_label[label] for label in kept),
        weights=tuple(1.0 / len(kept) for _ in kept),
        candidate_pr_auc=alone,
        pr_auc=current,
    )
