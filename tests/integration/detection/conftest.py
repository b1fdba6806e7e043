"""A real MLflow store (SQLite + a local artifact folder) in a temporary directory.

Three versions are trained once per session (weak, strong, weak again, all on the same evaluation rows);
each test gets its own copy of the database, so promotions in one test never leak into another.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics.detectors import load_config
from pipelines.model_registry import use_tracking_uri
from pipelines.train import train
from tests.unit.detection.synthetic import synthetic_features

WEAK_FEATURES = ("distinct_layers", "warn_ratio")


def new_store(root: Path) -> str:
    """An empty store; its experiments keep their artifacts under ``root`` (see ``use_experiment``)."""
    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    use_tracking_uri(uri)
    return uri


@pytest.fixture(scope="session")
def config():
    return load_config()


@pytest.fixture(scope="session")
def weak_config(config):
    return dataclasses.replace(config, features=WEAK_FEATURES, members=("hbos",))


@pytest.fixture(scope="session")
def labelled() -> object:
    return synthetic_features(2000, seed=11)


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory, config, weak_config, labelled) -> Path:
    root = tmp_path_factory.mktemp("mlflow-template")
    uri = new_store(root)
    for cfg in (weak_config, config, weak_config):
        train(labelled, config=cfg, tracking_uri=uri, gate=False)
    return root


@pytest.fixture
def store(trained_store: Path, tmp_path: Path) -> Iterator[str]:
    """Tracking URI of a private copy of the trained store: versions 1 (weak), 2 (strong), 3 (weak)."""
    shutil.copy(trained_store / "mlflow.db", tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    use_tracking_uri(uri)
    yield uri


@pytest.fixture
def empty_store(tmp_path: Path) -> str:
    return new_store(tmp_path / "fresh")
