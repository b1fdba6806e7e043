"""Detection quality on labelled windows: ROC-AUC, PR-AUC, precision@k, recall at an alert budget, per technique.

Metric names (as logged to MLflow): ``roc_auc``, ``pr_auc``, ``precision_at_k``, ``recall_at_budget``,
``recall.<technique>`` (one per ATT&CK technique present, at the same budget), ``positives``, ``rows``.
Their plots: ``analytics.evaluation_plots``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from qerberos.errors import ValidationError

__all__ = ["EvaluationReport", "evaluate_scores"]


@dataclasses.dataclass(frozen=True, slots=True)
class EvaluationReport:
    roc_auc: float
    pr_auc: float
    precision_at_k: float
    recall_at_budget: float
    recall_by_technique: Mapping[str, float]
    k: int
    budget: float
    rows: int
    positives: int

    def metrics(self) -> dict[str, float]:
        """Flat metric names -> values, ready for ``mlflow.log_metrics``."""
        flat = {
            "roc_auc": self.roc_auc,
            "pr_auc": self.pr_auc,
            "precision_at_k": self.precision_at_k,
            "recall_at_budget": self.recall_at_budget,
            "rows": float(self.rows),
            "positives": float(self.positives),
        }
        flat.update({f"recall.{_metric_safe(t)}": v for t, v in self.recall_by_technique.items()})
        return flat


def _metric_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", text)


def evaluate_scores(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    techniques: Sequence[str | None] | None = None,
    k: int = 50,
    budget: float = 0.01,
) -> EvaluationReport:
    """Quality of ``scores`` (higher = more anomalous) against 0/1 ``labels``.

    ``precision_at_k``: share of attacks among the k highest scores. ``recall_at_budget``: share of attack
    windows among the top ``budget`` fraction of windows (ceil, at least one): what analysts who can review
    that many alerts would catch. ``recall_by_technique``: the same recall per technique.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).astype(np.int8).ravel()
    if scores.shape != labels.shape:
        raise ValidationError(
            "scores and labels differ in length", details={"scores": scores.size, "labels": labels.size}
        )
    positives = int(labels.sum())
    if positives == 0 or positives == labels.size:
        raise ValidationError(
            "evaluation needs both labelled attacks and normal windows",
            details={"rows": int(labels.size), "positives": positives},
        )
    order = np.argsort(-scores, kind="stable")
    top_k = order[: min(k, labels.size)]
    alerted = np.zeros(labels.size, dtype=bool)
    alerted[order[: max(1, int(np.ceil(budget * labels.size)))]] = True
    per_technique: dict[str, float] = {}
    if techniques is not None:
        tech = np.asarray([t if t is not None else "" for t in techniques], dtype=object)
        for name in sorted({t for t in tech[labels == 1] if t}):
            rows = (tech == name) & (labels == 1)
            per_technique[name] = float(alerted[rows].mean())
    return EvaluationReport(
        roc_auc=float(roc_auc_score(labels, scores)),
        pr_auc=float(average_precision_score(labels, scores)),
        precision_at_k=float(labels[top_k].mean()),
        recall_at_budget=float(alerted[labels == 1].mean()),
        recall_by_technique=per_technique,
        k=k,
        budget=budget,
        rows=int(labels.size),
        positives=positives,
    )
