"""The hyperparameter search space of the detectors and of the ensemble (Optuna, define-by-run).

A trial first picks a detector (a registry name or ``ensemble``), then that detector's parameters, under
names prefixed with it (``knn.n_neighbors``), so that Optuna keeps one distribution per name. An ensemble
trial picks its members (``ensemble.use_<name>``, at least two), a weight per member (``ensemble.weight_<name>``)
and the standardisation; its members keep their configured parameters. The result is a :class:`Candidate`,
which turns into a ``DetectorConfig`` for ``analytics.detector_pipeline.build_pipeline``.

``baseline_params`` gives, for each detector, the trial that reproduces ``config/detectors.toml``: tuning
enqueues them first, so every detector is measured as configured before the search moves on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from analytics.detectors import REGISTRY, DetectorConfig
from qerberos.errors import ConfigurationError

__all__ = [
    "ENSEMBLE",
    "SEARCH_SPACE",
    "Candidate",
    "Choice",
    "FloatRange",
    "IntRange",
    "baseline_params",
    "suggest_candidate",
]

ENSEMBLE = "ensemble"
_MIN_MEMBERS = 2


@dataclasses.dataclass(frozen=True, slots=True)
class IntRange:
    low: int
    high: int
    default: int  # PyOD's, for a detector configured without it
    step: int = 1

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step)


@dataclasses.dataclass(frozen=True, slots=True)
class FloatRange:
    low: float
    high: float
    default: float

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high)


@dataclasses.dataclass(frozen=True, slots=True)
class Choice:
    options: tuple[str, ...]
    default: str

    def suggest(self, trial: optuna.Trial, name: str) -> str:
        return str(trial.suggest_categorical(name, list(self.options)))


# registry name -> the parameters a trial picks for it (PyOD's names); others keep their configured values
SEARCH_SPACE: Mapping[str, Mapping[str, IntRange | FloatRange | Choice]] = {
    "iforest": {"n_estimators": IntRange(50, 300, 100, step=50), "max_features": FloatRange(0.5, 1.0, 1.0)},
    "ecod": {},
    "copod": {},
    "hbos": {"n_bins": IntRange(5, 50, 10), "alpha": FloatRange(0.05, 0.5, 0.1)},
    "lof": {"n_neighbors": IntRange(5, 60, 20)},
    "knn": {"n_neighbors": IntRange(3, 50, 5), "method": Choice(("largest", "mean", "median"), "largest")},
}


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """One point of the search: a registry detector with ``params``, or an ensemble of ``members`` with
    ``weights`` and ``standardise``."""

    detector: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    members: tuple[str, ...] = ()
    weights: tuple[float, ...] | None = None
    standardise: str = "zscore"

    @property
    def is_ensemble(self) -> bool:
        return self.detector == ENSEMBLE

    def config(self, base: DetectorConfig) -> DetectorConfig:
        """``base`` with this candidate's detector parameters, or its members, weights and standardisation."""
        if self.is_ensemble:
            return dataclasses.replace(base, members=self.members, weights=self.weights, standardise=self.standardise)
        params = {**base.detector_params, self.detector: {**base.params_of(self.detector), **self.params}}
        return dataclasses.replace(base, detector_params=params)

    def name(self) -> str:
        """A run name people can read: ``knn n_neighbors=12 method=mean``, ``ensemble iforest:0.8+knn:0.4``."""
        if self.is_ensemble:
            weights = self.weights or (1.0,) * len(self.members)
            members = "+".join(f"{m}:{w:.2g}" for m, w in zip(self.members, weights, strict=True))
            return f"{ENSEMBLE} {members} {self.standardise}"
        settings = " ".join(f"{k}={_short(v)}" for k, v in self.params.items())
        return f"{self.detector} {settings}".strip()

    def flat_params(self) -> dict[str, str]:
        """The candidate as MLflow params: the same keys on every run, so runs line up in compare views."""
        flat = {"detector": self.detector}
        if self.is_ensemble:
            flat["ensemble.members"] = ",".join(self.members)
            flat["ensemble.weights"] = ",".join(f"{w:.3g}" for w in self.weights or ())
            flat["ensemble.standardise"] = self.standardise
        flat.update({f"{self.detector}.{k}": _short(v) for k, v in self.params.items()})
        return flat


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def suggest_candidate(trial: optuna.Trial, detectors: Sequence[str]) -> Candidate:
    """The candidate of ``trial`` among ``detectors`` (registry names and ``ensemble``); an ensemble trial that
    picks fewer than two members is pruned."""
    unknown = [d for d in detectors if d != ENSEMBLE and d not in REGISTRY]
    if unknown or not detectors:
        raise ConfigurationError("unknown detectors to tune", details={"unknown": unknown, "known": sorted(REGISTRY)})
    detector = trial.suggest_categorical("detector", list(detectors))
    if detector != ENSEMBLE:
        space = SEARCH_SPACE[detector]
        return Candidate(detector, {key: value.suggest(trial, f"{detector}.{key}") for key, value in space.items()})
    members = tuple(name for name in REGISTRY if trial.suggest_categorical(f"ensemble.use_{name}", [True, False]))
    if len(members) < _MIN_MEMBERS:
        raise optuna.TrialPruned(f"an ensemble needs at least {_MIN_MEMBERS} members")
    weights = tuple(trial.suggest_float(f"ensemble.weight_{name}", 0.1, 1.0) for name in members)
    standardise = trial.suggest_categorical("ensemble.standardise", ["zscore", "rank"])
    return Candidate(ENSEMBLE, members=members, weights=weights, standardise=standardise)


def baseline_params(config: DetectorConfig, detectors: Sequence[str]) -> list[dict[str, Any]]:
    """For each of ``detectors``, the trial parameters that reproduce ``config`` (for ``study.enqueue_trial``)."""
    trials: list[dict[str, Any]] = []
    for detector in detectors:
        if detector == ENSEMBLE:
            weights = config.weights or (1.0,) * len(config.members)
            chosen = dict(zip(config.members, weights, strict=True))
            trial: dict[str, Any] = {f"ensemble.use_{name}": name in chosen for name in REGISTRY}
            trial.update({f"ensemble.weight_{name}": min(1.0, max(0.1, w)) for name, w in chosen.items()})
            trial["ensemble.standardise"] = config.standardise
        else:
            configured = config.params_of(detector)
            space = SEARCH_SPACE[detector]
            trial = {f"{detector}.{key}": configured.get(key, value.default) for key, value in space.items()}
        trials.append({"detector": detector, **trial})
    return trials
