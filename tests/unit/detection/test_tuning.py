"""The search space of ``analytics.tuning`` and the ensemble's weights."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from analytics.detector_pipeline import build_pipeline
from analytics.detectors import load_config
from analytics.ensemble import ScoreEnsemble
from analytics.tuning import ENSEMBLE, SEARCH_SPACE, Candidate, baseline_params, suggest_candidate
from qerberos.errors import ConfigurationError

CONFIG = load_config()
DETECTORS = (*SEARCH_SPACE, ENSEMBLE)


def _candidate(params: dict[str, object]) -> Candidate:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.enqueue_trial(params)
    return suggest_candidate(study.ask(), DETECTORS)


@pytest.mark.parametrize("params", baseline_params(CONFIG, DETECTORS), ids=lambda p: p["detector"])
def test_the_baseline_trial_of_each_detector_reproduces_the_configuration(params):
    candidate = _candidate(params)
    if candidate.is_ensemble:
        assert (CONFIG.members, CONFIG.standardise) == (candidate.members, candidate.standardise)
        assert (1.0,) * len(CONFIG.members) == candidate.weights
    else:
        configured = candidate.config(CONFIG).params_of(candidate.detector)
        assert {**CONFIG.params_of(candidate.detector), **candidate.params} == configured
        assert all(configured[k] == v for k, v in CONFIG.params_of(candidate.detector).items())


def test_run_names_and_params_say_what_was_tried():
    knn = Candidate("knn", {"n_neighbors": 12, "method": "mean"})
    assert "knn n_neighbors=12 method=mean" == knn.name()
    assert {"detector": "knn", "knn.n_neighbors": "12", "knn.method": "mean"} == knn.flat_params()
    ensemble = Candidate(ENSEMBLE, members=("iforest", "knn"), weights=(0.8, 0.4), standardise="rank")
    assert "ensemble iforest:0.8+knn:0.4 rank" == ensemble.name()
    assert "0.8,0.4" == ensemble.flat_params()["ensemble.weights"]


def test_an_ensemble_of_fewer_than_two_members_is_pruned():
    alone = {f"ensemble.use_{name}": name == "ecod" for name in SEARCH_SPACE}
    with pytest.raises(optuna.TrialPruned):
        _candidate({"detector": ENSEMBLE, **alone})


def test_ensemble_weights_make_a_weighted_mean_of_the_members():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 4))
    equal = ScoreEnsemble(members=(("hbos", {}), ("ecod", {}))).fit(X)
    weighted = ScoreEnsemble(members=(("hbos", {}), ("ecod", {})), weights=(3.0, 1.0)).fit(X)
    hbos, ecod = equal.member_scores(X[:20]).values()  # keyed by member label (name/preprocessing/parameters)
    assert np.allclose(0.75 * hbos + 0.25 * ecod, weighted.decision_function(X[:20]))
    with pytest.raises(ConfigurationError, match="one non-negative number per member"):
        ScoreEnsemble(members=(("hbos", {}), ("ecod", {})), weights=(1.0,)).fit(X)


def test_a_candidate_config_builds_the_pipeline_it_names():
    candidate = Candidate(ENSEMBLE, members=("hbos", "ecod"), weights=(0.5, 1.0), standardise="rank")
    pipeline = build_pipeline(candidate.config(CONFIG), ENSEMBLE)
    assert "ensemble(hbos+ecod)" == pipeline.name
    assert (0.5, 1.0) == pipeline.detector.weights
