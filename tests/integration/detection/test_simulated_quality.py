"""Quality floor on the simulator's labelled traffic: train on one seed, evaluate on a held-out seed."""

from __future__ import annotations

import polars as pl
import pytest

from analytics.labels import label_windows
from analytics.simulation import SimulationConfig, simulate
from analytics.window_features import compute_features
from pipelines.train import train


def simulated_windows(seed: int) -> pl.DataFrame:
    result = simulate(SimulationConfig(identities=60, days=10, seed=seed))
    features = compute_features(result.events.lazy(), "1h").collect()
    truth = result.labels.join(result.events.select("id", "occurred_at"), on="id")
    return label_windows(features, truth)


@pytest.fixture(scope="module")
def seeds() -> tuple[pl.DataFrame, pl.DataFrame]:
    return simulated_windows(1), simulated_windows(2)


def test_ensemble_detects_simulated_attacks_on_a_held_out_seed(seeds, empty_store, config):
    training, held_out = seeds
    result = train(training, config=config, tracking_uri=empty_store, evaluation=held_out, gate=False)
    report = result.report
    assert report is not None and report.positives > 0
    assert report.roc_auc >= 0.9, report
    assert report.pr_auc >= 0.5, report
    assert report.recall_by_technique["T1110"] >= 0.5, report
