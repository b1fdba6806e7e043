"""Detector registry, ensemble and scoring pipeline: the PyOD contract, batch independence, quality floor."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from pyod.models.ecod import ECOD

from analytics.detector_pipeline import DetectorPipeline, build_pipeline, feature_matrix
from analytics.detectors import REGISTRY, DetectorError, ensure_finite, load_config
from analytics.evaluation import evaluate_scores
from qerberos.errors import ConfigurationError
from tests.unit.detection.synthetic import synthetic_features

DETECTORS = [*REGISTRY, "ensemble"]


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture(scope="module")
def train_frame() -> pl.DataFrame:
    frame = synthetic_features(1500, seed=1)
    return frame.filter(pl.col("label") == 0)


@pytest.fixture(scope="module")
def fitted(config, train_frame) -> dict[str, DetectorPipeline]:
    matrix = feature_matrix(train_frame, config.features)
    return {name: build_pipeline(config, name).fit(matrix) for name in DETECTORS}


@pytest.mark.parametrize("name", DETECTORS)
def test_score_of_a_row_alone_equals_its_score_in_any_batch(fitted, name):
    pipeline = fitted[name]
    batch = synthetic_features(300, seed=5)
    in_batch = pipeline.score_frame(batch)
    alone = np.concatenate([pipeline.score_frame(batch[i : i + 1]) for i in range(40)])
    reversed_batch = pipeline.score_frame(batch.reverse())[::-1]
    with_others = pipeline.score_frame(pl.concat([batch[:40], synthetic_features(500, seed=6)]))[:40]
    np.testing.assert_array_equal(in_batch[:40], alone)
    np.testing.assert_array_equal(in_batch, reversed_batch)
    np.testing.assert_array_equal(in_batch[:40], with_others)


def test_pyod_ecod_used_naively_depends_on_the_batch(config, train_frame):
    """Why TrainingECOD exists: PyOD's own ECOD scores a row differently alone and in a batch."""
    matrix = feature_matrix(train_frame, config.features)
    detector = ECOD().fit(matrix)
    batch = feature_matrix(synthetic_features(300, seed=5), config.features)
    assert not np.allclose(detector.decision_function(batch)[:1], detector.decision_function(batch[:1]))


@pytest.mark.parametrize("name", DETECTORS)
def test_every_detector_honours_the_pyod_contract(fitted, train_frame, name):
    pipeline = fitted[name]
    assert train_frame.height == pipeline.decision_scores_.shape[0]
    assert np.isfinite(pipeline.threshold_)
    assert {0, 1} >= set(np.unique(pipeline.labels_).tolist())
    assert pipeline.get_params(deep=False)["contamination"] == pytest.approx(0.02)
    matrix = feature_matrix(synthetic_features(50, seed=9), pipeline.feature_columns)
    assert (50,) == pipeline.decision_function(matrix).shape
    assert {0, 1} >= set(pipeline.predict(matrix).tolist())
    assert all(isinstance(k, str) for k in pipeline.flat_params())


@pytest.mark.parametrize("name", DETECTORS)
def test_quality_floor_on_a_held_out_seed(fitted, name):
    held_out = synthetic_features(2000, seed=2)
    report = evaluate_scores(fitted[name].score_frame(held_out), held_out["label"].to_numpy())
    assert report.roc_auc >= 0.9, f"{name}: ROC-AUC {report.roc_auc:.3f}"


def test_non_finite_scores_fail_naming_the_detector():
    with pytest.raises(DetectorError, match="detector knn produced 1 non-finite"):
        ensure_finite(np.array([0.1, np.nan, 0.3]), "knn")


def test_non_finite_features_fail_naming_the_column(config):
    frame = synthetic_features(10, seed=1).with_columns(
        deny_ratio=pl.when(pl.int_range(pl.len()) == 3).then(float("inf")).otherwise(pl.col("deny_ratio"))
    )
    with pytest.raises(DetectorError) as caught:
        feature_matrix(frame, config.features)
    assert {"first_row": 3, "first_column": "deny_ratio"} == caught.value.details


def test_constant_training_columns_still_give_finite_scores(config):
    frame = synthetic_features(300, seed=3).with_columns(pl.lit(0.0).alias(c) for c in config.features[3:])
    for name in DETECTORS:
        pipeline = build_pipeline(config, name).fit(feature_matrix(frame, config.features))
        assert np.isfinite(pipeline.score_frame(synthetic_features(20, seed=4))).all(), name


def test_unknown_detector_in_the_configuration_is_refused(tmp_path):
    path = tmp_path / "detectors.toml"
    path.write_text('[model]\nmembers = ["iforest", "magic"]\n')
    with pytest.raises(ConfigurationError, match="unknown"):
        load_config(path)


def test_default_configuration_names_the_ensemble_and_the_features(config):
    assert ("iforest", "ecod", "knn") == config.members
    assert 12 == len(config.features)
    assert config.alert_threshold is None
