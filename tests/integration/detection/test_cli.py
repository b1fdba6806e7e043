"""``qerberos models`` end to end on a real MLflow store: train, list, evaluate, promote, rollback."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from cli import detector_models as models
from qerberos.settings import get_settings
from tests.unit.detection.synthetic import synthetic_features


def test_models_commands_train_evaluate_promote_and_roll_back(empty_store, tmp_path, monkeypatch):
    monkeypatch.setenv("QERBEROS_MLFLOW_TRACKING_URI", empty_store)
    get_settings.cache_clear()
    app = typer.Typer()
    models.register(app)
    runner = CliRunner()
    table = tmp_path / "features.parquet"
    synthetic_features(1500, seed=21).write_parquet(table)

    trained = runner.invoke(app, ["models", "train", "--features", str(table)])
    assert 0 == trained.exit_code, trained.output
    assert "registered version 1" in trained.output and "gate passed" in trained.output
    evaluated = runner.invoke(
        app, ["models", "evaluate", "--features", str(table), "--label", "label", "--detector", "ecod"]
    )
    assert 0 == evaluated.exit_code, evaluated.output
    assert "roc_auc" in evaluated.output and "precision_at_50" in evaluated.output
    assert 0 == runner.invoke(app, ["models", "promote"]).exit_code
    again = runner.invoke(app, ["models", "train", "--features", str(table), "--detector", "hbos"])
    assert 0 == again.exit_code, again.output
    refused = runner.invoke(app, ["models", "promote", "--version", "2", "--force"])
    assert 2 == refused.exit_code
    forced = runner.invoke(app, ["models", "promote", "--version", "2", "--force", "--reason", "test"])
    assert 0 == forced.exit_code, forced.output
    listed = runner.invoke(app, ["models", "list"])
    assert listed.output.splitlines()[0].split()[:2] == ["2", "champion"]
    rolled = runner.invoke(app, ["models", "rollback", "--reason", "test over"])
    assert "champion: version 1" in rolled.output
    again = runner.invoke(app, ["models", "rollback"])
    assert 2 == again.exit_code
    assert "error: nothing to roll back to: version 1 is the oldest champion on record\n" == again.output
    get_settings.cache_clear()
