"""A large batch is scored in chunks on every core, with exactly the scores of one pass over the batch."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from analytics import detector_pipeline
from analytics.detector_pipeline import build_pipeline, feature_matrix
from analytics.detectors import load_config
from tests.unit.detection.synthetic import synthetic_features


@pytest.fixture(scope="module")
def pipeline():
    config = load_config()
    training = synthetic_features(1500, seed=1).filter(pl.col("label") == 0)
    return build_pipeline(config).fit(feature_matrix(training, config.features))


@pytest.fixture(scope="module")
def batch(pipeline) -> np.ndarray:
    return feature_matrix(synthetic_features(1000, seed=5), pipeline.feature_columns)


def _spy_on_detector(pipeline, monkeypatch) -> list[int]:
    """Row counts of the calls the pipeline makes to its detector, in the order they arrive."""
    calls: list[int] = []
    score = pipeline.detector.decision_function

    def spy(X):
        calls.append(X.shape[0])
        return score(X)

    monkeypatch.setattr(pipeline.detector, "decision_function", spy)
    return calls


def test_a_large_batch_is_split_one_chunk_a_core_with_unchanged_scores(pipeline, batch, monkeypatch):
    one_pass = pipeline.decision_function(batch)
    monkeypatch.setattr(detector_pipeline, "PARALLEL_CHUNK_ROWS", 100)
    monkeypatch.setattr(detector_pipeline, "_cores", lambda: 3)
    calls = _spy_on_detector(pipeline, monkeypatch)
    chunked = pipeline.decision_function(batch)
    assert [333, 333, 334] == sorted(calls)  # threads call in any order
    np.testing.assert_array_equal(one_pass, chunked)


def test_chunks_never_fall_below_the_minimum_size(pipeline, batch, monkeypatch):
    monkeypatch.setattr(detector_pipeline, "PARALLEL_CHUNK_ROWS", 400)
    monkeypatch.setattr(detector_pipeline, "_cores", lambda: 8)
    calls = _spy_on_detector(pipeline, monkeypatch)
    pipeline.decision_function(batch)
    assert [500, 500] == calls


def test_a_small_batch_is_scored_in_one_pass(pipeline, batch, monkeypatch):
    monkeypatch.setattr(detector_pipeline, "_cores", lambda: 8)
    calls = _spy_on_detector(pipeline, monkeypatch)
    pipeline.decision_function(batch)
    assert [1000] == calls
