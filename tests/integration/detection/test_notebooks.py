"""Each notebook of ``notebooks/`` runs top to bottom under papermill from a fresh ``QERBEROS_HOME`` (it simulates
what it needs), on the project's kernel, and shows its plots inline (PNG outputs in the executed notebook)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest

from pipelines.model_registry import client
from pipelines.tune import TUNING_EXPERIMENT
from qerberos.settings import Settings

NOTEBOOKS = Path(__file__).resolve().parents[3] / "notebooks"


def _run(name: str, tmp_path: Path, parameters: dict[str, Any]) -> nbformat.NotebookNode:
    """Execute ``notebooks/<name>.ipynb`` in ``tmp_path`` (not the checkout: a relative path would land there)."""
    out = tmp_path / f"{name}.out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / f"{name}.ipynb"),
        str(out),
        kernel_name="python3",
        cwd=str(tmp_path),
        parameters=parameters,
        progress_bar=False,
    )
    return nbformat.read(out, as_version=4)


def _outputs(notebook: nbformat.NotebookNode, mime: str) -> list[Any]:
    return [o["data"][mime] for c in notebook.cells for o in c.get("outputs", []) if mime in o.get("data", {})]


def _printed(notebook: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))


@pytest.mark.slow
def test_feature_exploration_simulates_in_a_fresh_home_and_plots_inline(sqlite_settings: Settings, tmp_path):
    executed = _run("feature_exploration", tmp_path, {"identities": 30, "days": 5, "seed": 2})
    assert "from simulation (seed 2, 30 identities, 5 days)" in _printed(executed)
    assert len(_outputs(executed, "image/png")) >= 3  # by category, feature distributions, one identity


@pytest.mark.slow
def test_tuning_notebook_logs_nested_runs_and_registers_a_challenger(sqlite_settings: Settings, tmp_path):
    parameters = {"identities": 40, "days": 7, "trials": 4, "detectors": ["hbos", "ecod", "ensemble"]}
    executed = _run("detector_tuning", tmp_path, parameters)
    assert len(_outputs(executed, "image/png")) >= 3  # PR and ROC comparisons, the best's scores
    assert "registered version 1 as challenger" in _printed(executed)
    registry = client(sqlite_settings.mlflow_tracking_uri)
    experiment = registry.get_experiment_by_name(TUNING_EXPERIMENT)
    runs = registry.search_runs([experiment.experiment_id])
    assert 4 == sum("optuna.trial" in r.data.tags for r in runs)
    assert "1" == str(registry.get_model_version_by_alias("qerberos-detector", "challenger").version)


@pytest.mark.slow
def test_alert_investigation_raises_alerts_in_a_fresh_home_and_proves_their_events(sqlite_settings: Settings, tmp_path):
    executed = _run("alert_investigation", tmp_path, {"identities": 40, "days": 5, "seed": 1})
    printed = _printed(executed)
    assert "simulated events ingested" in printed and "investigating" in printed
    proven = next(line for line in printed.splitlines() if "proven included" in line)
    proved, _, total = proven.split(" events proven")[0].partition(" of ")
    assert int(total) > 0 and proved == total
    assert "risk now:" in printed
    assert len(_outputs(executed, "image/png")) >= 1  # the risk history


def test_make_notebooks_starts_jupyterlab_on_the_project_kernel_with_home_and_store_set():
    planned = subprocess.run(["make", "-n", "notebooks"], cwd=NOTEBOOKS.parent, capture_output=True, text=True)
    assert 0 == planned.returncode, planned.stderr
    assert "jupyter lab --notebook-dir=notebooks" in planned.stdout
    assert "default_kernel_name=python3" in planned.stdout
    assert "QERBEROS_HOME=" in planned.stdout and "QERBEROS_MLFLOW_TRACKING_URI=" in planned.stdout
