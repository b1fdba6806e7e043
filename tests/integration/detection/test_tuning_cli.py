"""``qerberos models train`` without a feature file, ``models tune``, and what a refused rollback says."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from pipelines.model_registry import EXPERIMENT_KIND, client
from pipelines.tune import TUNING_EXPERIMENT
from qerberos.settings import Settings
from tests.unit.detection.synthetic import synthetic_features

runner = CliRunner()


def test_train_help_says_what_happens_without_features() -> None:
    shown = runner.invoke(app, ["models", "train", "--help"], env={"COLUMNS": "200"})
    assert 0 == shown.exit_code
    assert "simulated" in shown.output and "ledger" in shown.output


@pytest.mark.slow
def test_train_without_features_reads_the_ingested_ledger_and_its_ground_truth(sqlite_settings: Settings) -> None:
    assert 0 == runner.invoke(app, ["init"]).exit_code
    ingested = runner.invoke(app, ["simulate", "--identities", "30", "--days", "5", "--seed", "4", "--ingest"])
    assert 0 == ingested.exit_code, ingested.output
    trained = runner.invoke(app, ["models", "train", "--detector", "hbos"])
    assert 0 == trained.exit_code, trained.output
    assert "from the ledger" in trained.output and "registered version 1" in trained.output
    assert "pr_auc" in trained.output  # labelled by the ground truth `simulate --ingest` kept in the home


@pytest.mark.slow
def test_tune_logs_nested_runs_and_registers_the_best_as_challenger(sqlite_settings: Settings, tmp_path: Path) -> None:
    table = tmp_path / "features.parquet"
    synthetic_features(1200, seed=5).write_parquet(table)
    arguments = ["models", "tune", "--features", str(table), "--trials", "5"]
    tuned = runner.invoke(app, [*arguments, "--detector", "hbos", "--detector", "ecod", "--detector", "ensemble"])
    assert 0 == tuned.exit_code, tuned.output
    assert "registered version 1 as challenger" in tuned.output

    registry = client(sqlite_settings.mlflow_tracking_uri)
    experiment = registry.get_experiment_by_name(TUNING_EXPERIMENT)
    assert EXPERIMENT_KIND[1] == experiment.tags[EXPERIMENT_KIND[0]]
    runs = registry.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    trials = [r for r in children if "optuna.trial" in r.data.tags]
    assert 5 == len(trials)
    assert {"hbos", "ecod", "ensemble"} == {r.data.params["detector"] for r in trials}
    assert all(r.info.run_name.startswith(r.data.params["detector"]) for r in trials)
    assert all({"training", "evaluation"} == {i.tags[0].value for i in r.inputs.dataset_inputs} for r in trials)
    [best] = [r for r in children if r.info.run_name.startswith("best ")]
    assert "1" == str(registry.get_model_version_by_alias("qerberos-detector", "challenger").version)
    assert best.info.run_id == registry.get_model_version("qerberos-detector", "1").run_id
    assert {"comparison/pr_curves.png", "comparison/roc_curves.png", "comparison/trials.csv"} <= {
        a.path for a in registry.list_artifacts(parent.info.run_id, "comparison")
    }
