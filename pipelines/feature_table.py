"""The feature table of a ledger, of an event export or of a simulation: what data scientists hand to ``qerberos
models train|tune|evaluate`` (``qerberos features``) and what the notebooks explore.

A ledger's database is first copied, ``chunk_rows`` rows at a time (``models.reader.export_parquet``), into a
Parquet file beside the output, so that it is read once however many windows are asked for; the features are
then ``analytics.window_features.features_to_parquet`` of that file.

``default_feature_table`` is what a command or notebook given no feature file works on: the ledger's features
when the ledger holds events, labelled with the simulator's ground truth that ``qerberos simulate --ingest``
keeps in ``QERBEROS_HOME`` (``simulate-seed*.labels.parquet``); otherwise a simulated, labelled table (nothing is
written to the ledger).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from analytics.labels import label_windows
from analytics.simulation import SimulationConfig, simulate
from analytics.window_features import features_to_parquet
from models.reader import DEFAULT_CHUNK_ROWS, export_parquet, is_database_url, ledger_size, scan_events
from qerberos.settings import Settings

__all__ = [
    "DEFAULT_SIMULATION",
    "FeatureTable",
    "default_feature_table",
    "ground_truth_files",
    "ledger_feature_table",
    "simulated_feature_table",
    "write_feature_table",
]

Progress = Callable[[int, int], None]
# what a table is simulated with when none is given: ``qerberos simulate``'s defaults
DEFAULT_SIMULATION = SimulationConfig(identities=200, days=14, seed=0)


@dataclasses.dataclass(frozen=True, slots=True)
class FeatureTable:
    """Features (with ``label`` and ``technique`` when the ground truth is known), the events behind them (None
    for a table read from a file) and where they came from (``origin``, for people and MLflow's dataset tags)."""

    features: pl.DataFrame
    events: pl.LazyFrame | None
    origin: str

    @property
    def labelled(self) -> bool:
        return "label" in self.features.columns


def write_feature_table(
    source: str | Path | pl.LazyFrame,
    out: Path,
    windows: Sequence[str] = ("1h",),
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Progress | None = None,
) -> Path:
    """The features of ``source`` (a database URL, an event Parquet path or an event LazyFrame) for every window,
    written to ``out``."""
    if not (isinstance(source, str) and is_database_url(source)):
        return features_to_parquet(source, out, windows, progress=progress)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".events-", dir=out.parent))
    try:
        events = export_parquet(source, work / "events.parquet", chunk_rows=chunk_rows)
        return features_to_parquet(pl.scan_parquet(events), out, windows, progress=progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _features_of(source: str | pl.LazyFrame, windows: Sequence[str], progress: Progress | None) -> pl.DataFrame:
    with tempfile.TemporaryDirectory(prefix="qerberos-features-") as scratch:
        out = write_feature_table(source, Path(scratch) / "features.parquet", windows, progress=progress)
        return pl.read_parquet(out)


def simulated_feature_table(
    config: SimulationConfig = DEFAULT_SIMULATION, windows: Sequence[str] = ("1h",), progress: Progress | None = None
) -> FeatureTable:
    """Simulated traffic (``analytics.simulation``), its features and their labels."""
    result = simulate(config, progress)
    features = label_windows(_features_of(result.events.lazy(), windows, progress), result.labels)
    origin = f"simulation (seed {config.seed}, {config.identities} identities, {config.days} days)"
    return FeatureTable(features, result.events.lazy(), origin)


def ground_truth_files(home: Path) -> list[Path]:
    """The simulator's ground truth that ``qerberos simulate --ingest`` left in ``home``."""
    return sorted(home.glob("simulate-seed*.labels.parquet"))


def ledger_feature_table(
    database_url: str,
    windows: Sequence[str] = ("1h",),
    *,
    ground_truth: Sequence[Path] = (),
    progress: Progress | None = None,
) -> FeatureTable:
    """The features of every event of the ledger, labelled when ``ground_truth`` files are given."""
    features = _features_of(database_url, windows, progress)
    if ground_truth:
        features = label_windows(features, pl.concat([pl.read_parquet(p) for p in ground_truth]))
    return FeatureTable(features, scan_events(database_url), "the ledger")


def default_feature_table(
    settings: Settings,
    windows: Sequence[str] = ("1h",),
    *,
    simulation: SimulationConfig = DEFAULT_SIMULATION,
    progress: Progress | None = None,
) -> FeatureTable:
    """The ledger's features when it holds events, else a simulated table (see the module doc)."""
    if ledger_size(settings.database_url) == 0:
        return simulated_feature_table(simulation, windows, progress)
    return ledger_feature_table(
        settings.database_url, windows, ground_truth=ground_truth_files(settings.home), progress=progress
    )
