"""Ensemble selection on validation data, and preprocessing that leaves plain PyOD's scores alone.

On an ADBench table (``tests/fixtures/adbench_thyroid.npz``, see the fixtures README): a member run with no
preprocessing scores exactly as plain PyOD; the chosen ensemble is never worse on validation than its best
candidate; a candidate that lowers the validation score is not chosen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pyod.models.hbos import HBOS
from pyod.models.iforest import IForest
from pyod.models.knn import KNN
from sklearn.metrics import average_precision_score

from analytics.detectors import load_config
from analytics.ensemble import ScoreEnsemble
from analytics.ensemble_selection import candidate_members, choose_ensemble
from pipelines.evaluate import fit_here, split_halves, table_features

THYROID = Path(__file__).resolve().parents[2] / "fixtures" / "adbench_thyroid.npz"


@pytest.fixture(scope="module")
def thyroid() -> pl.DataFrame:
    data = np.load(THYROID, allow_pickle=False)
    X = data["X"].astype(np.float64)
    return pl.DataFrame({**{f"x{i}": X[:, i] for i in range(X.shape[1])}, "label": data["y"].astype(np.int8)})


@pytest.mark.parametrize(
    ("member", "plain"),
    [
        (("knn", {}, "none"), KNN()),
        (("hbos", {}, "none"), HBOS()),
        (("iforest", {"random_state": 3}, "none"), IForest(random_state=3)),
    ],
)
def test_a_member_without_preprocessing_scores_as_plain_pyod(thyroid, member, plain):
    fitting, evaluated = split_halves(thyroid, 7)
    X_fit, X_eval = fitting.drop("label").to_numpy(), evaluated.drop("label").to_numpy()
    ensemble = ScoreEnsemble(members=(member,)).fit(X_fit)
    label = next(iter(ensemble.detectors_))
    ours = ensemble.detectors_[label].decision_function(ensemble.preprocessing_[label].transform(X_eval))
    np.testing.assert_allclose(plain.fit(X_fit).decision_function(X_eval), ours)


def test_the_chosen_ensemble_is_no_worse_on_validation_than_any_candidate(thyroid):
    config = table_features(thyroid, load_config(), "label")
    fitting, validation = split_halves(thyroid, 1)
    choice = choose_ensemble(
        fitting.drop("label").to_numpy(),
        validation.drop("label").to_numpy(),
        validation["label"].to_numpy(),
        candidate_members(config),
    )
    assert choice.pr_auc >= max(choice.candidate_pr_auc.values())
    assert pytest.approx(1.0) == sum(choice.weights)
    assert {"members", "weights", "validationPrAuc", "candidates"} == set(choice.to_json())


def test_a_candidate_that_lowers_the_validation_score_is_dropped():
    """Normal rows on a ring, anomalies at its centre. KNN by the distance to its 350th neighbour (of 400) ranks
    them backwards (the centre is nearer the far side of the ring than any ring row is): averaged in, it would
    lower what HBOS finds, so it is not kept."""
    rng = np.random.default_rng(0)
    angles = rng.uniform(0, 2 * np.pi, 600)
    ring = np.c_[np.cos(angles), np.sin(angles)] * 5 + rng.normal(0, 0.2, (600, 2))
    centre = rng.normal(0, 0.3, (20, 2))
    validation = np.vstack([ring[400:], centre])
    labels = np.r_[np.zeros(200), np.ones(20)]
    backwards, sees = ("knn", {"n_neighbors": 350}, "none"), ("hbos", {}, "none")
    choice = choose_ensemble(ring[:400], validation, labels, (backwards, sees))
    assert (sees,) == choice.members
    assert choice.candidate_pr_auc["knn/none/n_neighbors:350"] < choice.pr_auc


def test_models_evaluate_scores_an_adbench_table_on_its_own_columns(thyroid):
    config = table_features(thyroid, load_config(), "label")
    assert tuple(f"x{i}" for i in range(6)) == config.features
    fitting, evaluated = split_halves(thyroid, config.seed)
    scores = fit_here(fitting, "label", config, None).score_frame(evaluated)
    plain_best = max(
        average_precision_score(
            evaluated["label"],
            d.fit(fitting.drop("label").to_numpy()).decision_function(evaluated.drop("label").to_numpy()),
        )
        for d in (KNN(), HBOS(), IForest(random_state=7))
    )
    assert average_precision_score(evaluated["label"], scores) >= plain_best - 0.05
