"""Labelled, simulated audit traffic of the Q ecosystem (``qerberos simulate``).

``simulate(config)`` is deterministic for ``config.seed``: the same config gives the same events, ids and
labels, bit for bit. The labels (which event belongs to which attack, with its ATT&CK technique) are a
separate frame and file; the events themselves carry no trace of them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from analytics.simulation.attacks import ATTACKS, inject
from analytics.simulation.frame import LABEL_SCHEMA, build_frames, labels_path, to_requests
from analytics.simulation.population import build_population
from analytics.simulation.traffic import concat, normal_traffic
from models.event_frame import EVENT_SCHEMA

__all__ = [
    "ATTACKS",
    "EVENT_SCHEMA",
    "LABEL_SCHEMA",
    "SimulationConfig",
    "SimulationResult",
    "labels_path",
    "simulate",
    "to_requests",
    "write_simulation",
]
logger = logging.getLogger(__name__)
DEFAULT_START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # a Monday


@dataclasses.dataclass(frozen=True, slots=True)
class SimulationConfig:
    """``attacks_per_kind`` defaults to one per 200 identities (at least one of every kind)."""

    identities: int
    days: int
    seed: int
    start: dt.datetime = DEFAULT_START
    events_per_day: float = 25.0
    attacks_per_kind: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class SimulationResult:
    events: pl.DataFrame  # the event frame of TEAM.md, ordered by seq
    labels: pl.DataFrame  # id, squid_id, technique, attack, attack_id: one row per attack event


def simulate(config: SimulationConfig, progress: Callable[[int, int], None] | None = None) -> SimulationResult:
    if config.identities < 2 or config.days < 3:
        raise ValueError("simulate needs at least 2 identities and 3 days")
    rng = np.random.default_rng(config.seed)
    population = build_population(rng, config.identities, config.events_per_day, config.days)
    parts = []
    for number, who in enumerate(population.identities, start=1):
        parts.append(normal_traffic(rng, who, config.days, config.start.weekday()))
        if progress is not None and number % 100 == 0:
            progress(number, config.identities)
    per_kind = config.attacks_per_kind or max(1, config.identities // 200)
    attack_events, attacks = inject(rng, population, config.days, per_kind)
    events, labels = build_frames(rng, concat([*parts, attack_events]), population, attacks, config.start)
    if progress is not None:
        progress(config.identities, config.identities)
    logger.info("simulated %d events, %d of them in %d attacks", events.height, labels.height, len(attacks))
    return SimulationResult(events, labels)


def write_simulation(result: SimulationResult, out: Path) -> tuple[Path, Path]:
    """Write the events to ``out`` and the ground truth to ``labels_path(out)``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    result.events.write_parquet(out)
    result.labels.write_parquet(labels_path(out))
    return out, labels_path(out)
