"""Storage limitation (GDPR Art. 5(1)(e)): the personal details still held, measured at the report's
generation time against the retention configured per event category (the event's module, ``layer``).

Age is measured when the report is generated, not at the period's end: details of January still held in
December are eleven months old, whatever the period reported. The details counted are every event's details
still held in the ledger at generation time (erased details are gone from ``event_details``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any, Protocol

import polars as pl

DAY_MS = 86_400_000


@dataclasses.dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Days personal details may be held: per module (``layer``), else ``default_days``; None: no limit set."""

    default_days: int | None
    by_module: Mapping[str, int] = dataclasses.field(default_factory=dict)

    @property
    def configured(self) -> bool:
        return self.default_days is not None or bool(self.by_module)

    def days_for(self, module: str) -> int | None:
        return self.by_module.get(module, self.default_days)

    def cutoffs_ms(self, now_ms: int) -> tuple[dict[str, int], int | None]:
        """Per configured module, and for every other module, the instant before which details are too old."""
        modules = {module: now_ms - days * DAY_MS for module, days in self.by_module.items()}
        return modules, None if self.default_days is None else now_ms - self.default_days * DAY_MS

    def to_json(self) -> dict[str, Any]:
        return {"defaultDays": self.default_days, "byModule": dict(self.by_module)}


class HeldDetails(Protocol):
    """What the evaluation reads of the ledger (``models.reader.LedgerReader.details_held``)."""

    def details_held(self, cutoffs: Mapping[str, int], default_cutoff: int | None) -> pl.DataFrame: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Retention:
    policy: RetentionPolicy
    evaluated_at: dt.datetime
    by_module: pl.DataFrame  # layer, retention_days, details_held, oldest_held, oldest_age_days, past_retention

    @property
    def past_retention(self) -> int:
        return int(self.by_module["past_retention"].sum()) if self.by_module.height else 0

    @property
    def details_held(self) -> int:
        return int(self.by_module["details_held"].sum()) if self.by_module.height else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "evaluatedAt": self.evaluated_at.isoformat(),
            "policy": self.policy.to_json(),
            "detailsHeld": self.details_held,
            "detailsPastRetention": self.past_retention,
        }


def evaluate_retention(ledger: HeldDetails, policy: RetentionPolicy, generated_at: dt.datetime) -> Retention:
    """Each module's held details, their oldest and how many are past its retention, at ``generated_at``."""
    now_ms = int(generated_at.timestamp() * 1000)
    cutoffs, default_cutoff = policy.cutoffs_ms(now_ms)
    held = ledger.details_held(cutoffs, default_cutoff)
    days = {module: policy.days_for(module) for module in held["layer"].to_list()}
    by_module = held.select(
        "layer",
        retention_days=pl.col("layer").replace_strict(days, default=None, return_dtype=pl.Int64),
        details_held=pl.col("held"),
        oldest_held=pl.col("oldest_ms").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
        oldest_age_days=((now_ms - pl.col("oldest_ms")) / DAY_MS).round(1),
        past_retention=pl.col("past_retention"),
    ).sort("layer")
    return Retention(policy, generated_at, by_module)
