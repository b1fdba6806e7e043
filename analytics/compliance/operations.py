"""Operations evidence: change management (detector promotions from the MLflow registry, configuration
fingerprints against the previous report's), backups and restore drills recorded in the ledger, and clock
synchronisation (each event's time against the ledger's receipt time, per source).

``pipelines.report_build`` reads the registry and the configuration files; this module only shapes them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

import polars as pl

from analytics.compliance.period import Period

#: An event stamped this far after the ledger received it is future-dated (clock fault or forgery).
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)
#: An event received this long after it occurred arrived late (batch ingest, a buffering client).
LATE_AFTER = dt.timedelta(days=1)
BACKUP_PATTERN = r"^ops\.backup"
RESTORE_PATTERN = r"^ops\.restore"
PROMOTION_SCHEMA: dict[str, pl.DataType] = {
    "version": pl.String(),
    "champion_since": pl.String(),
    "reason": pl.String(),
    "forced": pl.Boolean(),
    "previous_champion": pl.String(),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Operations:
    promotions_available: bool  # the MLflow registry answered
    promotions: pl.DataFrame  # PROMOTION_SCHEMA, the champions whose promotion fell in the period
    configuration: pl.DataFrame  # file, sha256, previous_sha256, changed
    previous_report: str | None  # the report whose configuration fingerprints this one compares with
    backups: pl.DataFrame  # the period's ops.backup* events
    restores: pl.DataFrame  # the period's ops.restore* events
    clock_skew: pl.DataFrame  # source, events, median_s, p99_s, future_dated, late

    @property
    def configuration_changes(self) -> int:
        return self.configuration.filter(pl.col("changed")).height

    def to_json(self) -> dict[str, Any]:
        return {
            "promotions": self.promotions.height if self.promotions_available else None,
            "configuration": {file: sha for file, sha in self.configuration.select("file", "sha256").rows() if sha},
            "configurationChanged": self.configuration_changes if self.previous_report else None,
            "previousReport": self.previous_report,
            "backups": self.backups.height,
            "restores": self.restores.height,
            "futureDatedEvents": int(self.clock_skew["future_dated"].sum()) if self.clock_skew.height else 0,
        }


def summarise_operations(
    events: pl.DataFrame,
    period: Period,
    *,
    promotions: pl.DataFrame | None,
    configuration: Mapping[str, str],
    previous_configuration: Mapping[str, str] | None,
    previous_report: str | None,
) -> Operations:
    """``promotions``: every champion promotion (``PROMOTION_SCHEMA``), None when the registry cannot be read;
    ``configuration``: file name to SHA-256 now, ``previous_configuration`` as the previous report saw it."""
    in_period = (
        pl.col("champion_since")
        .str.to_datetime(time_zone="UTC", strict=False)
        .is_between(period.start, period.end, closed="left")
    )
    chosen = pl.DataFrame(schema=PROMOTION_SCHEMA) if promotions is None else promotions.filter(in_period)
    before = previous_configuration or {}
    files = sorted(set(configuration) | set(before))
    config = pl.DataFrame(
        {
            "file": files,
            "sha256": [configuration.get(name) for name in files],
            "previous_sha256": [before.get(name) for name in files],
        },
        schema={"file": pl.String(), "sha256": pl.String(), "previous_sha256": pl.String()},
    ).with_columns(
        changed=pl.lit(previous_configuration is not None) & pl.col("sha256").ne_missing(pl.col("previous_sha256"))
    )
    kind = pl.col("type")
    shown = ("occurred_at", "received_at", "type", "ref", "squid_id", "verdict", "seq")
    return Operations(
        promotions_available=promotions is not None,
        promotions=chosen,
        configuration=config,
        previous_report=previous_report,
        backups=events.filter(kind.str.contains(BACKUP_PATTERN)).select(shown).sort("occurred_at"),
        restores=events.filter(kind.str.contains(RESTORE_PATTERN)).select(shown).sort("occurred_at"),
        clock_skew=clock_skew(events),
    )


def clock_skew(events: pl.DataFrame) -> pl.DataFrame:
    """Per source: receipt minus event time (seconds; negative: stamped ahead of the ledger's clock)."""
    skew = (pl.col("received_at") - pl.col("occurred_at")).dt.total_milliseconds() / 1000
    return (
        events.with_columns(skew=skew)
        .group_by("source")
        .agg(
            events=pl.len(),
            median_s=pl.col("skew").median(),
            p99_s=pl.col("skew").quantile(0.99),
            future_dated=(pl.col("skew") < -MAX_CLOCK_SKEW.total_seconds()).sum().cast(pl.Int64),
            late=(pl.col("skew") > LATE_AFTER.total_seconds()).sum().cast(pl.Int64),
        )
        .sort("events", "source", descending=[True, False])
    )
