"""Plots of detection quality: ROC and precision-recall curves of one or several detectors, and score histograms.

Each function returns a ``matplotlib.figure.Figure`` built without pyplot (no global backend, no state shared
between threads): a notebook shows it inline with ``display(figure)``, training saves it as PNG
(``save_evaluation_plots``). Every curve's legend entry names its detector and its area under the curve; the
ROC's false-positive axis is logarithmic (an alert budget lives at 0.1 to 1 %, which a linear axis squeezes
against its left edge); legends sit beside the axes, where they cover no curve.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

__all__ = ["pr_figure", "roc_figure", "save_evaluation_plots", "score_histogram_figure"]

_SIZE = (9.0, 4.0)
_DPI = 90


def _legend_beside(axes: Axes) -> None:
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=8)


def _as_labels(labels: np.ndarray) -> np.ndarray:
    return np.asarray(labels).astype(np.int8).ravel()


def roc_figure(scores: Mapping[str, np.ndarray], labels: np.ndarray, title: str = "ROC") -> Figure:
    """ROC curves of ``scores`` (detector name -> scores) on a log-scaled false-positive axis."""
    labels = _as_labels(labels)
    floor = 1.0 / max(1, int((labels == 0).sum()))  # one false positive: the smallest rate there can be
    figure = Figure(figsize=_SIZE)
    axes = figure.subplots()
    for name, values in scores.items():
        fpr, tpr, _ = roc_curve(labels, values)
        auc = roc_auc_score(labels, values)
        axes.step(np.maximum(fpr, floor), tpr, where="post", label=f"{name} (ROC-AUC {auc:.3f})")
    chance = np.geomspace(floor, 1.0, 50)
    axes.plot(chance, chance, linestyle=":", color="grey", label="chance")
    axes.set_xscale("log")
    axes.set(xlim=(floor, 1.0), ylim=(0.0, 1.02), xlabel="false positive rate (log scale)", ylabel="true positive rate")
    axes.set_title(title)
    axes.grid(True, which="major", alpha=0.3)
    _legend_beside(axes)
    figure.tight_layout()
    return figure


def pr_figure(scores: Mapping[str, np.ndarray], labels: np.ndarray, title: str = "Precision-recall") -> Figure:
    """Precision-recall curves of ``scores`` (detector name -> scores), with the share of attacks as baseline."""
    labels = _as_labels(labels)
    figure = Figure(figsize=_SIZE)
    axes = figure.subplots()
    for name, values in scores.items():
        precision, recall, _ = precision_recall_curve(labels, values)
        auc = average_precision_score(labels, values)
        axes.step(recall, precision, where="post", label=f"{name} (PR-AUC {auc:.3f})")
    prevalence = float(labels.mean())
    axes.axhline(prevalence, linestyle=":", color="grey", label=f"share of attacks ({prevalence:.3f})")
    axes.set(xlim=(0.0, 1.0), ylim=(0.0, 1.02), xlabel="recall", ylabel="precision")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    _legend_beside(axes)
    figure.tight_layout()
    return figure


def score_histogram_figure(scores: np.ndarray, labels: np.ndarray, title: str = "Scores") -> Figure:
    """Densities of the scores of normal and attack windows."""
    labels = _as_labels(labels)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    figure = Figure(figsize=_SIZE)
    axes = figure.subplots()
    bins: list[float] = np.histogram_bin_edges(scores, bins=40).tolist()
    axes.hist(scores[labels == 0], bins=bins, alpha=0.6, label="normal", density=True)
    axes.hist(scores[labels == 1], bins=bins, alpha=0.6, label="attack", density=True)
    axes.set(xlabel="score", ylabel="density")
    axes.set_title(title)
    _legend_beside(axes)
    figure.tight_layout()
    return figure


def save_evaluation_plots(scores: np.ndarray, labels: np.ndarray, directory: Path, detector: str) -> list[Path]:
    """Write ``roc_curve.png``, ``pr_curve.png`` and ``score_histogram.png`` of one detector into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    figures = {
        "roc_curve.png": roc_figure({detector: scores}, labels, title=f"{detector}: ROC"),
        "pr_curve.png": pr_figure({detector: scores}, labels, title=f"{detector}: precision-recall"),
        "score_histogram.png": score_histogram_figure(scores, labels, title=f"{detector}: scores"),
    }
    paths = []
    for filename, figure in figures.items():
        figure.savefig(directory / filename, dpi=_DPI, bbox_inches="tight")
        paths.append(directory / filename)
    return paths
