"""Where a command or notebook without a feature file gets its features from."""

from __future__ import annotations

from pathlib import Path

from analytics.simulation import SimulationConfig
from models.reader import ledger_size
from pipelines.feature_table import default_feature_table
from qerberos.settings import Settings


def test_a_ledger_not_created_yet_counts_as_empty_and_is_not_created(tmp_path: Path) -> None:
    database = tmp_path / "home" / "qerberos.db"
    assert 0 == ledger_size(f"sqlite:///{database}")
    assert not database.exists()


def test_an_empty_home_gets_a_simulated_labelled_table(sqlite_settings: Settings) -> None:
    table = default_feature_table(sqlite_settings, simulation=SimulationConfig(identities=12, days=3, seed=5))
    assert "simulation (seed 5, 12 identities, 3 days)" == table.origin
    assert table.labelled and table.features["label"].sum() > 0
    assert table.events is not None and not sqlite_settings.home.joinpath("qerberos.db").exists()
