"""Data gates: each suite passes on good batches and names the failing expectation and column otherwise."""

from __future__ import annotations

import datetime as dt
import functools
import json
from pathlib import Path

import polars as pl
import pytest

from analytics.gates import FEATURES, RAW_EVENTS, GateFailedError, run_gate, save_result
from analytics.simulation import SimulationConfig, simulate
from analytics.window_features import compute_features


@functools.cache
def _events() -> pl.DataFrame:
    return simulate(SimulationConfig(identities=10, days=4, seed=5, events_per_day=8)).events


@functools.cache
def _features() -> pl.DataFrame:
    return compute_features(_events().lazy(), "1h").collect()


def test_raw_event_gate_passes_simulated_events(tmp_path: Path) -> None:
    result = run_gate(_events(), RAW_EVENTS)
    assert result.success, result.failing
    assert result.failing == ()
    saved = json.loads(save_result(result, tmp_path).read_text())
    assert saved["success"] is True
    assert saved["validation"]["results"]


def test_raw_event_gate_names_each_broken_expectation() -> None:
    events = _events()
    broken = pl.concat(
        [
            events.with_columns(
                verdict=pl.when(pl.col("seq") == 3).then(pl.lit("MAYBE")).otherwise("verdict"),
                squid_id=pl.when(pl.col("seq") == 4).then(None).otherwise("squid_id"),
                occurred_at=pl.when(pl.col("seq") == 5)
                .then(dt.datetime(1999, 1, 1, tzinfo=dt.UTC))
                .otherwise("occurred_at"),
            ),
            events.head(1),  # the same id and seq again, out of order
        ]
    )
    result = run_gate(broken, RAW_EVENTS)
    assert not result.success
    assert {
        "expect_column_values_to_be_in_set(verdict)",
        "expect_column_values_to_not_be_null(squid_id)",
        "expect_column_values_to_be_between(occurred_at)",
        "expect_column_values_to_be_unique(id)",
        "expect_column_values_to_be_unique(seq)",
        "expect_column_values_to_be_increasing(seq)",
    } == set(result.failing)


def test_feature_gate_passes_computed_features() -> None:
    result = run_gate(_features(), FEATURES)
    assert result.success, result.failing


def test_feature_gate_names_out_of_bounds_non_finite_and_missing_values(tmp_path: Path) -> None:
    first = pl.col("squid_id") == _features()["squid_id"][0]
    broken = _features().with_columns(
        deny_ratio=pl.when(first).then(1.5).otherwise("deny_ratio"),
        new_ip_count=pl.when(first).then(-1).otherwise("new_ip_count"),
        rate_vs_baseline=pl.when(first).then(float("nan")).otherwise("rate_vs_baseline"),
        peer_deviation=pl.when(first).then(float("inf")).otherwise("peer_deviation"),
        off_hours_share=pl.when(first).then(None).otherwise("off_hours_share"),
    )
    result = run_gate(broken.lazy(), FEATURES)
    assert {
        "expect_column_values_to_be_between(deny_ratio)",
        "expect_column_values_to_be_between(new_ip_count)",
        "expect_column_values_to_be_between(rate_vs_baseline)",
        "expect_column_values_to_be_between(peer_deviation)",
        "expect_column_values_to_not_be_null(off_hours_share)",
    } == set(result.failing)
    with pytest.raises(GateFailedError) as caught:
        result.raise_for_failure()
    assert "expect_column_values_to_be_between(deny_ratio)" in str(caught.value)
    assert "features" in str(caught.value)
    saved = json.loads(save_result(result, tmp_path).read_text())
    assert saved["success"] is False and set(saved["failing"]) == set(result.failing)


def test_unknown_suite_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown suite"):
        run_gate(_events(), "nope")
