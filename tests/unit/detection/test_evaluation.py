"""Evaluation metrics on hand-built scores, and the promotion rule."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.evaluation import evaluate_scores
from analytics.evaluation_plots import pr_figure, roc_figure, save_evaluation_plots
from pipelines.promote import beats
from qerberos.errors import ValidationError

SCORES = np.array([0.9, 0.8, 0.1, 0.7])
LABELS = np.array([1, 0, 0, 1])
TECHNIQUES = ["T1110", None, None, "T1078"]


def test_metrics_of_a_hand_built_ranking():
    report = evaluate_scores(SCORES, LABELS, techniques=TECHNIQUES, k=2, budget=0.5)
    assert 0.75 == report.roc_auc
    assert pytest.approx((1 / 1 + 2 / 3) / 2) == report.pr_auc
    assert 0.5 == report.precision_at_k
    assert 0.5 == report.recall_at_budget
    assert {"T1078": 0.0, "T1110": 1.0} == dict(report.recall_by_technique)
    assert {
        "roc_auc",
        "pr_auc",
        "precision_at_k",
        "recall_at_budget",
        "rows",
        "positives",
        "recall.T1078",
        "recall.T1110",
    } == set(report.metrics())


def test_evaluation_without_attacks_is_refused():
    with pytest.raises(ValidationError, match="both"):
        evaluate_scores(SCORES, np.zeros(4))


def test_plots_are_written(tmp_path):
    paths = save_evaluation_plots(SCORES, LABELS, tmp_path, "knn")
    assert ["pr_curve.png", "roc_curve.png", "score_histogram.png"] == sorted(p.name for p in paths)
    assert all(p.stat().st_size > 0 for p in paths)


def test_curves_name_their_detector_and_its_auc_in_a_legend_beside_the_axes():
    [pr_axes] = pr_figure({"knn": SCORES}, LABELS, title="knn: precision-recall").axes
    [roc_axes] = roc_figure({"knn": SCORES, "ecod": -SCORES}, LABELS).axes
    assert "knn: precision-recall" == pr_axes.get_title()
    assert "knn (PR-AUC 0.833)" in [t.get_text() for t in pr_axes.get_legend().get_texts()]
    assert {"knn (ROC-AUC 0.750)", "ecod (ROC-AUC 0.250)"} <= {t.get_text() for t in roc_axes.get_legend().get_texts()}
    assert "log" == roc_axes.get_xscale()
    for axes in (pr_axes, roc_axes):  # anchored right of the axes: it covers no curve
        assert axes.get_legend().get_bbox_to_anchor().x0 > axes.get_window_extent().x1


@pytest.mark.parametrize(
    ("candidate", "champion", "expected"),
    [
        ({"pr_auc": 0.8, "roc_auc": 0.95}, {"pr_auc": 0.8, "roc_auc": 0.94}, True),
        ({"pr_auc": 0.81, "roc_auc": 0.94}, {"pr_auc": 0.8, "roc_auc": 0.94}, True),
        ({"pr_auc": 0.79, "roc_auc": 0.99}, {"pr_auc": 0.8, "roc_auc": 0.94}, False),
        ({"pr_auc": 0.8, "roc_auc": 0.94}, {"pr_auc": 0.8, "roc_auc": 0.94}, False),
        ({"roc_auc": 0.99}, {"pr_auc": 0.8, "roc_auc": 0.94}, False),
    ],
)
def test_promotion_rule_needs_no_loss_and_one_gain(candidate, champion, expected):
    assert expected == beats(candidate, champion)[0]
