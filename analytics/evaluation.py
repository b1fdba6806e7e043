"""Detection quality on labelled windows: ROC-AUC, PR-AUC, precision@k, recall at an alert budget, per technique.

Metric names (as logged to MLflow): ``roc_auc``, ``pr_auc``, ``precision_at_k``, ``recall_at_budget``,
``recall.<technique>`` (one per ATT&CK technique present, at the same budget), ``positives``, ``rows``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from qerberos.errors import ValidationError

__all__ = ["EvaluationReport", "evaluate_scores", "plot_evaluation"]


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


def plot_evaluation(scores: np.ndarray, labels: np.ndarray, directory: Path, title: str = "") -> list[Path]:
    """Write ``roc_curve.png``, ``pr_curve.png`` and ``score_histogram.png`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels).astype(np.int8).ravel()
    paths = []
    fpr, tpr, _ = roc_curve(labels, scores)
    precision, recall, _ = precision_recall_curve(labels, scores)
    for filename, (x, y, xlabel, ylabel) in {
        "roc_curve.png": (fpr, tpr, "false positive rate", "true positive rate"),
        "pr_curve.png": (recall, precision, "recall", "precision"),
    }.items():
        figure, axes = plt.subplots(figsize=(5, 4))
        axes.plot(x, y)
        axes.set(xlabel=xlabel, ylabel=ylabel, title=f"{title} {filename[:-10].upper()}".strip())
        figure.tight_layout()
        figure.savefig(directory / filename, dpi=80)
        plt.close(figure)
        paths.append(directory / filename)
    figure, axes = plt.subplots(figsize=(5, 4))
    bins: list[float] = np.histogram_bin_edges(scores, bins=40).tolist()
    axes.hist(scores[labels == 0], bins=bins, alpha=0.6, label="normal", density=True)
    axes.hist(scores[labels == 1], bins=bins, alpha=0.6, label="attack", density=True)
    axes.set(xlabel="score", ylabel="density", title=f"{title} scores".strip())
    # beside the plot, where it hides no bar: ``loc="best"`` searched every bar for a free corner, which on a
    # busy machine took long enough for matplotlib to warn (an error under the test suite's filters)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    figure.tight_layout()
    figure.savefig(directory / "score_histogram.png", dpi=80, bbox_inches="tight")
    plt.close(figure)
    paths.append(directory / "score_histogram.png")
    return paths
