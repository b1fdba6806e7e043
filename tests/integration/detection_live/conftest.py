"""A detector trained on simulated traffic (seed 1) in a real MLflow store under tmp, made champion.

Session-scoped: trained once; each test that moves aliases copies the store's database first.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import polars as pl
import pytest

from analytics.detectors import load_config
from analytics.labels import label_windows
from analytics.simulation import SimulationConfig, simulate
from analytics.window_features import compute_features
from pipelines.model_registry import set_champion, use_tracking_uri
from pipelines.train import train

IDENTITIES = 30
DAYS = 7
TRAIN_SEED = 1
LIVE_SEED = 2


def new_store(root: Path) -> str:
    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    use_tracking_uri(uri)
    return uri


def training_features(seed: int = TRAIN_SEED) -> pl.DataFrame:
    result = simulate(SimulationConfig(identities=IDENTITIES, days=DAYS, seed=seed))
    features = compute_features(result.events.lazy(), "1h").collect()
    return label_windows(features, result.labels)


@pytest.fixture(scope="session")
def trained_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Versions 1 (the configured ensemble, champion) and 2 (HBOS alone, challenger)."""
    root = tmp_path_factory.mktemp("mlflow-live")
    uri = new_store(root)
    features = training_features()
    config = dataclasses.replace(load_config(), eval_share=0.3)
    first = train(features, config=config, tracking_uri=uri, gate=False)
    train(features, config=config.with_members(("hbos",)), tracking_uri=uri, gate=False)
    set_champion(uri, first.version, tags={"promoted_by": "tests"})
    return root


@pytest.fixture
def tracking_uri(trained_root: Path, tmp_path: Path) -> str:
    """A private copy of the trained store (aliases moved in one test stay there)."""
    target = tmp_path / "mlflow"
    shutil.copytree(trained_root, target)
    uri = f"sqlite:///{target / 'mlflow.db'}"
    use_tracking_uri(uri)
    return uri
