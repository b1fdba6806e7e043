"""KDTreeKNN: PyOD's KNN scores, from SciPy's k-d tree (the champion's fast neighbour search)."""

from __future__ import annotations

import numpy as np
import pytest
from pyod.models.knn import KNN

from analytics.detectors import REGISTRY, DetectorError, KDTreeKNN


@pytest.fixture(scope="module")
def training() -> np.ndarray:
    rng = np.random.default_rng(11)
    rows = rng.normal(size=(800, 6))
    rows[:, 0] = rng.integers(0, 3, 800)  # a discrete column, as event counts are
    return np.vstack([rows, rows[:40]])  # identical rows: a row's own score must leave out only itself


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return np.random.default_rng(12).gamma(1.5, 2.0, size=(500, 6))


@pytest.mark.parametrize("method", ["largest", "mean", "median"])
def test_scores_equal_pyod_knn_on_training_and_new_rows(training, queries, method):
    pyod = KNN(n_neighbors=7, method=method, contamination=0.05).fit(training)
    kd_tree = KDTreeKNN(n_neighbors=7, method=method, contamination=0.05).fit(training)
    np.testing.assert_allclose(pyod.decision_scores_, kd_tree.decision_scores_, rtol=1e-12)
    assert pyod.threshold_ == pytest.approx(kd_tree.threshold_, rel=1e-12)
    np.testing.assert_array_equal(pyod.labels_, kd_tree.labels_)
    np.testing.assert_allclose(pyod.decision_function(queries), kd_tree.decision_function(queries), rtol=1e-12)


def test_manhattan_distance_follows_the_p_parameter(training, queries):
    pyod = KNN(n_neighbors=5, p=1).fit(training)
    kd_tree = KDTreeKNN(n_neighbors=5, p=1).fit(training)
    assert hasattr(kd_tree, "kd_tree_")
    np.testing.assert_allclose(pyod.decision_function(queries), kd_tree.decision_function(queries), rtol=1e-12)


def test_other_metrics_use_pyods_own_search(training, queries):
    pyod = KNN(n_neighbors=5, metric="cosine").fit(training)
    fallback = KDTreeKNN(n_neighbors=5, metric="cosine").fit(training)
    assert not hasattr(fallback, "kd_tree_")
    np.testing.assert_allclose(pyod.decision_function(queries), fallback.decision_function(queries), rtol=1e-12)


def test_parallel_search_gives_the_same_scores(training, queries):
    serial = KDTreeKNN(n_neighbors=5).fit(training)
    parallel = KDTreeKNN(n_neighbors=5, n_jobs=2).fit(training)
    np.testing.assert_array_equal(serial.decision_function(queries), parallel.decision_function(queries))


def test_too_few_training_rows_fail_naming_n_neighbors():
    with pytest.raises(DetectorError, match="more than n_neighbors=10"):
        KDTreeKNN(n_neighbors=10).fit(np.zeros((10, 3)))


def test_the_registry_knn_is_the_kd_tree_one():
    assert KDTreeKNN is REGISTRY["knn"]
