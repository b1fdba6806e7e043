"""The tuning notebook runs under papermill on a tiny table and logs its comparison to MLflow."""

from __future__ import annotations

from pathlib import Path

import papermill
import pytest

from pipelines.model_registry import client
from tests.unit.detection.synthetic import synthetic_features

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "detector_tuning.ipynb"


@pytest.mark.slow
def test_tuning_notebook_executes_and_logs_each_detector(empty_store, tmp_path):
    table = tmp_path / "features.parquet"
    synthetic_features(800, seed=31).rename({"label": "is_attack"}).write_parquet(table)
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(tmp_path / "out.ipynb"),
        kernel_name="python3",
        cwd=str(NOTEBOOK.parents[1]),
        parameters={
            "features_path": str(table),
            "label_column": "is_attack",
            "detectors": ["ecod", "ensemble"],
            "tracking_uri": empty_store,
        },
        progress_bar=False,
    )
    registry = client(empty_store)
    experiment = registry.get_experiment_by_name("qerberos-tuning")
    [run] = registry.search_runs([experiment.experiment_id])
    assert {"ecod.roc_auc", "ensemble.pr_auc"} <= set(run.data.metrics)
    assert "detector_comparison.png" in {a.path for a in registry.list_artifacts(run.info.run_id)}
