"""Training, registration, the promotion gate, rollback, hot reload and safe loading, on a real MLflow store."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest

from analytics.detectors import DetectorError
from pipelines.model_registry import (
    CHALLENGER,
    CHAMPION,
    MODEL_NAME,
    ChampionWatcher,
    champion_history,
    champion_version,
    client,
    load_champion,
    load_version,
    use_experiment,
    use_tracking_uri,
)
from pipelines.promote import list_versions, promote, rollback
from pipelines.train import EXPERIMENT, train
from qerberos.errors import NotFoundError, ValidationError
from qerberos.settings import load_settings
from tests.unit.detection.synthetic import synthetic_features


def test_training_logs_params_metrics_gate_plots_and_registers_a_challenger(empty_store, config, labelled):
    result = train(labelled, config=config, tracking_uri=empty_store, gate=True)
    registry = client(empty_store)
    run = registry.get_run(result.run_id)
    assert "passed" == result.gate == run.data.tags["gate.features"]
    assert run.data.tags["train_data_sha256"].startswith("sha256:")
    assert run.data.tags["eval_data_sha256"].startswith("sha256:")
    # members, parameters and preprocessing chosen on the latest labelled training windows, and logged
    chosen = run.data.params["ensemble.members"].split()
    assert {label.split("/")[0] for label in chosen} <= {"iforest", "ecod", "knn"}
    assert "validation_pr_auc" in run.data.metrics
    assert ["ensemble-selection.json"] == [
        a.path for a in registry.list_artifacts(result.run_id, "") if a.path.endswith(".json")
    ]
    assert {"roc_auc", "pr_auc", "precision_at_k", "recall_at_budget", "alert_threshold"} <= set(run.data.metrics)
    assert any(k.startswith("recall.T") for k in run.data.metrics)
    artifacts = {a.path for a in registry.list_artifacts(result.run_id, "plots")}
    assert {"plots/roc_curve.png", "plots/pr_curve.png", "plots/score_histogram.png"} == artifacts
    assert ["gates/gate-features.json"] == [a.path for a in registry.list_artifacts(result.run_id, "gates")]
    version = registry.get_model_version_by_alias(MODEL_NAME, CHALLENGER)
    assert "1" == result.version == str(version.version)
    assert version.tags["detector_sha256"].startswith("sha256:")
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1")
    assert ["event_count", "distinct_refs"] == model.metadata.get_input_schema().input_names()[:2]
    assert "pyod" in model.metadata.metadata["libraries"]
    rows = synthetic_features(20, seed=3)
    scores = model.predict(rows.select(config.features).to_pandas().astype("float64"))
    np.testing.assert_allclose(load_version(empty_store, "1").score(rows), scores.to_numpy())


def test_training_keeps_artifacts_beside_a_local_store_not_in_the_working_directory(
    tmp_path, monkeypatch, config, labelled
):
    store = tmp_path / "store"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    result = train(labelled, config=config, tracking_uri=uri, gate=False)
    assert [] == list(elsewhere.iterdir())
    artifacts = client(uri).get_run(result.run_id).info.artifact_uri
    assert artifacts.startswith((store / EXPERIMENT).as_uri())


def test_a_version_loads_from_its_store_while_mlflow_points_elsewhere(store, tmp_path):
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"  # a serving process never points MLflow at the store
    use_tracking_uri(elsewhere)
    try:
        assert "1" == load_version(store, "1").version
    finally:
        use_tracking_uri(store)


def test_first_candidate_becomes_champion(store):
    decision = promote(store, "1")
    assert decision.promoted and "first champion" == decision.reason
    assert "1" == champion_version(store)


def test_gate_accepts_a_better_model_and_refuses_a_worse_one(store):
    promote(store, "1")
    better = promote(store, "2")
    assert better.promoted, better.reason
    worse = promote(store, "3")
    assert not worse.promoted
    assert worse.reason.startswith("worse on")
    assert "2" == champion_version(store)
    assert ["1", "2"] == champion_history(store)


def test_force_promotes_a_worse_model_with_its_reason_kept(store):
    promote(store, "2")
    with pytest.raises(ValidationError):
        promote(store, "3", force=True)
    decision = promote(store, "3", force=True, reason="incident 42: v2 floods analysts")
    assert decision.promoted
    tags = client(store).get_model_version(MODEL_NAME, "3").tags
    assert "forced: incident 42: v2 floods analysts" == tags["promotion_reason"]
    assert ("true", "2") == (tags["promotion_forced"], tags["previous_champion"])


def test_rollback_returns_to_the_previous_champion(store):
    for version in ("1", "2"):
        promote(store, version)
    promote(store, "3", force=True, reason="trial")
    assert "2" == rollback(store, reason="trial over")
    assert "2" == champion_version(store)
    assert "1" == rollback(store)
    with pytest.raises(NotFoundError):
        rollback(store)
    assert "trial over" == client(store).get_model_version(MODEL_NAME, "3").tags["rolled_back"]


def test_promotion_refuses_models_evaluated_on_different_data(store, config):
    promote(store, "2")
    other = train(synthetic_features(1500, seed=12), config=config, tracking_uri=store, gate=False)
    decision = promote(store, other.version)
    assert not decision.promoted and "different data" in decision.reason
    rescored = promote(store, other.version, evaluation=synthetic_features(1500, seed=13))
    assert rescored.reason.startswith(("better", "worse", "no better"))


def test_watcher_hot_reloads_a_new_champion(store):
    watcher = ChampionWatcher(store)
    assert (False, None) == (watcher.refresh(), watcher.current())
    promote(store, "1")
    assert watcher.refresh()
    assert "1" == watcher.current().version
    assert not watcher.refresh()
    promote(store, "2")
    assert watcher.refresh()
    assert "2" == watcher.current().version
    rows = synthetic_features(10, seed=4)
    np.testing.assert_array_equal(load_champion(store).score(rows), watcher.current().score(rows))


def test_list_shows_versions_aliases_and_metrics(store):
    promote(store, "2")
    listed = {v.version: v for v in list_versions(store)}
    assert ["3", "2", "1"] == list(listed)
    assert (CHAMPION,) == listed["2"].aliases
    assert (CHALLENGER,) == listed["3"].aliases
    assert listed["2"].metrics["roc_auc"] > listed["1"].metrics["roc_auc"]


def test_loading_refuses_a_tampered_model(empty_store, config, labelled, tmp_path):
    result = train(labelled, config=config, tracking_uri=empty_store, gate=False)
    [envelope] = list((tmp_path / "fresh" / EXPERIMENT).rglob("detector.pyod.joblib"))
    envelope.write_bytes(envelope.read_bytes() + b"\0")
    with pytest.raises(DetectorError, match="differs from what was registered"):
        load_version(empty_store, result.version)
    promote(empty_store, result.version)
    watcher = ChampionWatcher(empty_store)
    assert (False, None) == (watcher.refresh(), watcher.current())


def test_history_is_a_registered_model_tag(store):
    promote(store, "1")
    promote(store, "2")
    tags = client(store).get_registered_model(MODEL_NAME).tags
    assert ["1", "2"] == json.loads(tags["champion_history"])


def test_the_default_store_is_the_homes_whatever_the_working_directory(tmp_path, monkeypatch):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("QERBEROS_HOME", str(home))
    monkeypatch.delenv("QERBEROS_MLFLOW_TRACKING_URI", raising=False)
    uri = load_settings().mlflow_tracking_uri
    use_experiment(uri, EXPERIMENT)
    location = mlflow.get_experiment_by_name(EXPERIMENT).artifact_location
    assert (f"sqlite:///{home / 'mlflow.db'}", (home / EXPERIMENT).as_uri()) == (uri, location)
    assert [] == list(elsewhere.iterdir())
