"""Live, incremental features equal ``analytics.window_features.compute_features`` over every event seen so far."""

from __future__ import annotations

import polars as pl
import pytest

from analytics.live_events import live_event
from analytics.simulation import SimulationConfig, simulate
from analytics.taxonomy import default_taxonomy
from analytics.window_features import FEATURE_COLUMNS, IncrementalFeatures, compute_features


@pytest.fixture(scope="module")
def events() -> pl.DataFrame:
    return simulate(SimulationConfig(identities=12, days=4, seed=5, events_per_day=20.0)).events


def _feed(frame: pl.DataFrame, keep_windows: int) -> IncrementalFeatures:
    features = IncrementalFeatures("1h", keep_windows=keep_windows)
    taxonomy = default_taxonomy()
    for row in frame.iter_rows(named=True):
        features.add(
            live_event(taxonomy, row["seq"], row["squid_id"], row["type"], row["ref"], row["layer"], row["verdict"],
                       int(row["occurred_at"].timestamp() * 1000), row["dao_id"], row["details"])
        )  # fmt: skip
    return features


def _batch(frame: pl.DataFrame) -> dict[tuple[str, int], dict[str, float]]:
    rows = compute_features(frame.lazy(), "1h").collect()
    return {
        (r["squid_id"], int(r["window_start"].timestamp() * 1000)): {c: float(r[c]) for c in FEATURE_COLUMNS}
        for r in rows.iter_rows(named=True)
    }


def test_every_window_equals_the_batch_features_when_nothing_is_folded(events):
    live = _feed(events, keep_windows=10_000).take_ready()
    batch = _batch(events)
    assert set(batch) == {(r.squid_id, r.window_start_ms) for r in live}
    for row in live:
        assert batch[row.squid_id, row.window_start_ms] == pytest.approx(row.values, abs=1e-9)


@pytest.mark.parametrize("share", [0.5, 0.8, 1.0])
def test_recent_windows_equal_the_batch_features_of_the_prefix_with_folding(events, share):
    prefix = events.head(int(events.height * share))
    features = _feed(prefix, keep_windows=3)
    features.take_ready()
    batch = _batch(prefix)
    latest = prefix.group_by("squid_id").agg(pl.col("occurred_at").max())
    compared = 0
    for squid_id, newest in latest.iter_rows():
        start = int(newest.timestamp() * 1000) // 3_600_000 * 3_600_000
        row = features.compute(squid_id, start)
        assert batch[squid_id, start] == pytest.approx(row.values, abs=1e-9), squid_id
        compared += 1
    assert compared == latest.height


def test_folded_windows_feed_the_identity_baseline(events):
    features = _feed(events, keep_windows=2)
    squid_id = events["squid_id"][0]
    baseline = features.baseline(squid_id)
    assert baseline is not None
    assert baseline["event_count"] >= 1.0
    assert set(FEATURE_COLUMNS) == set(baseline)
