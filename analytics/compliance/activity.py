"""Activity over the period: events by module (``layer``), type and verdict over time, DENY trends,
privileged actions, and access outside each identity's usual hours."""

from __future__ import annotations

import dataclasses
from typing import Any

import polars as pl

from analytics.compliance.period import Period

#: ``layer.type`` of actions that change who may do what, or act on others' data as an administrator.
PRIVILEGED_PATTERN = (
    r"(admin|privilege|permission_grant|permission_revoke|role_|erasure|key_rotat|security\.alert\.updated)"
)
#: An identity's usual hours: its busiest UTC hours that together hold this share of its events.
USUAL_HOURS_SHARE = 0.95
#: Identities with fewer events in the period have no baseline and are never flagged.
MIN_BASELINE_EVENTS = 20
VERDICTS = ("ALLOW", "DENY", "WARN")


@dataclasses.dataclass(frozen=True, slots=True)
class Activity:
    total_events: int
    identities: int
    by_layer: dict[str, int]
    by_type: dict[str, int]
    by_verdict: dict[str, int]
    deny_rate: float
    privileged_count: int
    off_hours_count: int
    bucket: str
    over_time: pl.DataFrame  # bucket, verdict, events
    deny_by_layer: pl.DataFrame  # bucket, layer, deny, events, deny_rate
    by_layer_type: pl.DataFrame  # layer, type, ALLOW, DENY, WARN, events
    privileged: pl.DataFrame  # the privileged actions, newest first
    off_hours: pl.DataFrame  # squid_id, off_hours_events, events, share, usual_hours
    hour_of_day: pl.DataFrame  # hour, verdict, events

    def to_json(self) -> dict[str, Any]:
        return {
            "totalEvents": self.total_events,
            "identities": self.identities,
            "byLayer": self.by_layer,
            "byType": self.by_type,
            "byVerdict": self.by_verdict,
            "denyRate": round(self.deny_rate, 6),
            "privilegedActions": self.privileged_count,
            "offHoursEvents": self.off_hours_count,
        }


def bucket_for(period: Period) -> str:
    days = (period.end - period.start).total_seconds() / 86400
    return "1h" if days <= 3 else "1d" if days <= 92 else "1w" if days <= 731 else "1mo"


def summarise_activity(events: pl.DataFrame, period: Period) -> Activity:
    bucket = bucket_for(period)
    total = events.height
    by_verdict = {verdict: 0 for verdict in VERDICTS} | _counts(events, "verdict")
    timed = events.with_columns(bucket=pl.col("occurred_at").dt.truncate(bucket))
    over_time = timed.group_by("bucket", "verdict").agg(events=pl.len()).sort("bucket", "verdict")
    deny_by_layer = (
        timed.group_by("bucket", "layer")
        .agg(deny=(pl.col("verdict") == "DENY").sum().cast(pl.Int64), events=pl.len())
        .with_columns(deny_rate=pl.col("deny") / pl.col("events"))
        .sort("bucket", "layer")
    )
    by_layer_type = (
        events.group_by("layer", "type")
        .agg(
            *((pl.col("verdict") == verdict).sum().cast(pl.Int64).alias(verdict) for verdict in VERDICTS),
            events=pl.len(),
        )
        .sort("events", "layer", "type", descending=[True, False, False])
    )
    privileged = (
        events.filter(privileged_expr())
        .select("occurred_at", "squid_id", "layer", "type", "ref", "verdict", "dao_id", "seq")
        .sort("occurred_at", "seq", descending=True)
    )
    off_hours_events, off_hours = _off_hours(events)
    hour_of_day = (
        events.group_by(hour=pl.col("occurred_at").dt.hour(), verdict=pl.col("verdict"))
        .agg(events=pl.len())
        .sort("hour", "verdict")
    )
    return Activity(
        total_events=total,
        identities=events["squid_id"].n_unique() if total else 0,
        by_layer=_counts(events, "layer"),
        by_type=_counts(events, "type"),
        by_verdict=by_verdict,
        deny_rate=by_verdict["DENY"] / total if total else 0.0,
        privileged_count=privileged.height,
        off_hours_count=off_hours_events,
        bucket=bucket,
        over_time=over_time,
        deny_by_layer=deny_by_layer,
        by_layer_type=by_layer_type,
        privileged=privileged,
        off_hours=off_hours,
        hour_of_day=hour_of_day,
    )


def privileged_expr() -> pl.Expr:
    return pl.concat_str(pl.col("layer"), pl.lit("."), pl.col("type")).str.contains(PRIVILEGED_PATTERN)


def _counts(events: pl.DataFrame, column: str) -> dict[str, int]:
    counted = events.group_by(column).agg(n=pl.len()).sort(column)
    return {str(key): int(n) for key, n in counted.iter_rows()}


def _off_hours(events: pl.DataFrame) -> tuple[int, pl.DataFrame]:
    """Events in hours outside the identity's usual hours (see ``USUAL_HOURS_SHARE``)."""
    hours = events.select("squid_id", hour=pl.col("occurred_at").dt.hour())
    profile = (
        hours.group_by("squid_id", "hour")
        .agg(n=pl.len())
        .with_columns(total=pl.col("n").sum().over("squid_id"))
        .sort(["squid_id", "n", "hour"], descending=[False, True, False])
        .with_columns(before=pl.col("n").cum_sum().over("squid_id") - pl.col("n"))
        .with_columns(
            usual=(pl.col("before") < USUAL_HOURS_SHARE * pl.col("total")) | (pl.col("total") < MIN_BASELINE_EVENTS)
        )
    )
    per_identity = (
        profile.group_by("squid_id")
        .agg(
            off_hours_events=pl.col("n").filter(~pl.col("usual")).sum().cast(pl.Int64),
            events=pl.col("n").sum().cast(pl.Int64),
            usual_hours=pl.col("hour").filter(pl.col("usual")).sort().cast(pl.String).str.join(","),
        )
        .filter(pl.col("off_hours_events") > 0)
        .with_columns(share=pl.col("off_hours_events") / pl.col("events"))
        .sort(["off_hours_events", "squid_id"], descending=[True, False])
    )
    return int(per_identity["off_hours_events"].sum()), per_identity
