"""A data scientist's path on the command line: simulate, compute labelled features, train on them."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from analytics.window_features import FEATURE_COLUMNS
from cli import app
from qerberos.settings import Settings

runner = CliRunner()


def test_simulated_events_become_a_labelled_feature_table(sqlite_settings: Settings, tmp_path: Path) -> None:
    events = tmp_path / "sim.parquet"
    arguments = ["simulate", "--identities", "12", "--days", "3", "--seed", "3", "--out", str(events)]
    simulated = runner.invoke(app, arguments)
    assert 0 == simulated.exit_code, simulated.output
    table = tmp_path / "features.parquet"
    labels = tmp_path / "sim.labels.parquet"
    computed = runner.invoke(app, ["features", "--source", str(events), "--out", str(table), "--labels", str(labels)])
    assert 0 == computed.exit_code, computed.output

    frame = pl.read_parquet(table)
    assert {*FEATURE_COLUMNS, "squid_id", "window_start", "label", "technique"} <= set(frame.columns)
    assert frame["label"].sum() > 0
    attacked = set(pl.read_parquet(labels)["squid_id"].unique().to_list())
    assert set(frame.filter(pl.col("label") == 1)["squid_id"].unique().to_list()) <= attacked


def test_features_of_a_missing_source_is_a_clear_error(sqlite_settings: Settings, tmp_path: Path) -> None:
    result = runner.invoke(app, ["features", "--source", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "f")])
    assert 2 == result.exit_code, result.output
