"""Per-identity, per-window behaviour features: their one definition, shared by the batch computation over an
event frame (``batch.py``) and the incremental one that live detection updates event by event
(``incremental.py``).

One row per identity (``squid_id``) and window in which it has at least one event. Windows are
tumbling and aligned on the epoch (``occurred_at`` truncated to ``5m``, ``1h`` or ``1d``, UTC).

Definitions (``W`` is the window, "history" is every event of the identity strictly before ``W``'s start:
no feature looks at anything after its window, except ``peer_deviation``'s group membership):

``event_count``, ``distinct_refs``, ``distinct_layers``
    events in ``W``; distinct ``ref`` and ``layer`` values among them.
``deny_ratio``, ``warn_ratio``
    share of ``W``'s events with verdict DENY (WARN).
``off_hours_share``
    share of ``W``'s events in an hour of day (UTC) that is not usual for the identity. Hour ``h`` is usual
    when the history holds at least ``MIN_HISTORY_EVENTS`` events and at least ``USUAL_HOUR_MIN_SHARE`` of
    them fell in hour ``h``. With a shorter history nothing is judged off-hours (the share is 0).
``new_ref_share``
    share of ``W``'s events whose ``ref`` never occurs in the history; 0 while the history holds fewer than
    ``MIN_HISTORY_EVENTS`` events (a newcomer has no baseline: everything it does is "new", which says nothing).
``rate_vs_baseline``
    ``event_count`` divided by the identity's baseline for the window's hour of the week (the weekday and
    hour of ``W``'s start): the mean ``event_count`` over the identity's earlier windows with events that
    started in the same hour of the week; with no such window, the mean over all its earlier windows with
    events; with none at all the feature is 1 (no evidence either way).
``peer_deviation``
    z-score of ``event_count`` among the members of the identity's DAO in ``W``, members without events in
    ``W`` counting as 0: ``(count - mean) / std`` (population std). The identity's DAO is the ``dao_id``
    it acts under most often (ties: the smallest id), a membership, not a behaviour. 0 when the identity has
    no DAO, the DAO has one member, or every member has the same count.
``fail_then_success``
    number of sign-ins (events of the taxonomy's class ``authentication``, activity ``logon``: see
    ``analytics.taxonomy``, whatever the module calls them) in ``W`` with status success whose previous sign-in of
    the identity in ``W`` (by ``occurred_at``, then ``seq``) failed.
``new_country_count``, ``new_ip_count``
    distinct ``details.country`` (``details.ip``) values in ``W`` absent from the history. Erased details
    (null) count as neither. 0 while the history holds fewer than ``MIN_HISTORY_EVENTS`` events: a newcomer's
    first country and address are not new to anything (every newcomer brings one; judging them made every
    newcomer's first hour an anomaly). A newcomer is compared with the population through the other features.

How the two computations share it: each gathers, per identity and window, the same facts (``FACT_COLUMNS``:
counts of the window's events, of its history and of its peers) and, per hour of day holding some of the
window's events, that hour's events and the history's events in that hour (``HOUR_FACT_COLUMNS``); the features
are then the same Polars expressions over those facts (``off_hour_events``, ``feature_exprs``). The time
arithmetic (``window_start``, ``hour_of_day``, ``hour_of_week``) is written once for Python integers and
Polars expressions alike, and the details are read with one pattern (``analytics.live_events.detail_pattern``).
"""

from __future__ import annotations

from typing import TypeVar

import polars as pl

__all__ = [
    "COUNT_COLUMNS",
    "FACT_COLUMNS",
    "FEATURE_COLUMNS",
    "FEATURE_SCHEMA",
    "HOUR_FACT_COLUMNS",
    "MIN_HISTORY_EVENTS",
    "RATIO_COLUMNS",
    "USUAL_HOUR_MIN_SHARE",
    "WINDOWS",
    "WINDOW_MS",
    "check_window",
    "feature_exprs",
    "hour_of_day",
    "hour_of_week",
    "off_hour_events",
    "unusual_hour",
    "window_start",
]

WINDOWS: tuple[str, ...] = ("5m", "1h", "1d")
WINDOW_MS: dict[str, int] = {"5m": 300_000, "1h": 3_600_000, "1d": 86_400_000}
USUAL_HOUR_MIN_SHARE = 0.02
MIN_HISTORY_EVENTS = 20
FEATURE_COLUMNS: tuple[str, ...] = (
    "event_count",
    "distinct_refs",
    "distinct_layers",
    "deny_ratio",
    "warn_ratio",
    "off_hours_share",
    "new_ref_share",
    "rate_vs_baseline",
    "peer_deviation",
    "fail_then_success",
    "new_country_count",
    "new_ip_count",
)
RATIO_COLUMNS: tuple[str, ...] = ("deny_ratio", "warn_ratio", "off_hours_share", "new_ref_share")
COUNT_COLUMNS: tuple[str, ...] = (
    "event_count",
    "distinct_refs",
    "distinct_layers",
    "fail_then_success",
    "new_country_count",
    "new_ip_count",
)
FEATURE_SCHEMA: dict[str, pl.DataType] = {
    "squid_id": pl.String(),
    "window_start": pl.Datetime("ms", "UTC"),
    "window": pl.String(),
    **{name: pl.Int64() if name in COUNT_COLUMNS else pl.Float64() for name in FEATURE_COLUMNS},
}
#: Per (identity ``s``, window start ``w``): the window's events (``event_count``), distinct refs and layers,
#: DENY and WARN verdicts, successful sign-ins right after a failed one; its events whose ref, and its
#: distinct countries and IPs, the history lacks (``new_*``); the history's events and windows with events, in
#: all and in the window's hour of the week (``prior_*``); events in unusual hours (``off_events``,
#: from ``off_hour_events``); the sum and sum of squares of the peers' event counts and their number.
FACT_COLUMNS: tuple[str, ...] = (
    "event_count", "distinct_refs", "distinct_layers", "deny", "warn", "fail_then_success", "new_ref_events",
    "new_country_count", "new_ip_count", "prior_events", "prior_windows", "prior_slot_events", "prior_slot_windows",
    "off_events", "peer_sum", "peer_sumsq", "members",
)  # fmt: skip
#: Per (identity ``s``, window start ``w``, hour of day): the window's events in that hour (``n``), the history's
#: events in that hour (``prior_hour``) and in all (``prior_events``).
HOUR_FACT_COLUMNS: tuple[str, ...] = ("s", "w", "n", "prior_hour", "prior_events")
_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000
_Time = TypeVar("_Time", int, pl.Expr)


def check_window(window: str) -> None:
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, not {window!r}")


def window_start(ms: _Time, size_ms: int) -> _Time:
    """The start of the window of ``size_ms`` holding the instant ``ms`` (epoch ms)."""
    return ms // size_ms * size_ms


def hour_of_day(ms: _Time) -> _Time:
    """0..23, UTC."""
    return ms // _HOUR_MS % 24


def hour_of_week(ms: _Time) -> _Time:
    """0..167 from Monday 00:00 UTC (1970-01-01 was a Thursday)."""
    return (ms // _DAY_MS + 3) % 7 * 24 + ms // _HOUR_MS % 24


def unusual_hour(prior_hour: pl.Expr) -> pl.Expr:
    """Whether an hour holding ``prior_hour`` of the history's ``prior_events`` is not usual for the identity."""
    prior_events = pl.col("prior_events")
    return (prior_events >= MIN_HISTORY_EVENTS) & (prior_hour < USUAL_HOUR_MIN_SHARE * prior_events)


_Frame = TypeVar("_Frame", pl.DataFrame, pl.LazyFrame)


def off_hour_events(hours: _Frame) -> _Frame:
    """``off_events`` per (``s``, ``w``) from the hour facts (``HOUR_FACT_COLUMNS``)."""
    off = pl.when(unusual_hour(pl.col("prior_hour"))).then(pl.col("n")).otherwise(0)
    return hours.group_by("s", "w").agg(off_events=off.sum())


def feature_exprs() -> list[pl.Expr]:
    """The features (``FEATURE_COLUMNS``, in order) from the facts (``FACT_COLUMNS``; missing counts are 0)."""
    count = pl.col("event_count").cast(pl.Float64)
    peer_mean = pl.col("peer_sum") / pl.col("members")
    peer_var = pl.col("peer_sumsq") / pl.col("members") - peer_mean**2
    baseline = (
        pl.when(pl.col("prior_slot_windows") > 0)
        .then(pl.col("prior_slot_events") / pl.col("prior_slot_windows"))
        .when(pl.col("prior_windows") > 0)
        .then(pl.col("prior_events") / pl.col("prior_windows"))
    )
    has_baseline = pl.col("prior_events") >= MIN_HISTORY_EVENTS
    return [
        pl.col("event_count"),
        pl.col("distinct_refs"),
        pl.col("distinct_layers"),
        (pl.col("deny") / count).alias("deny_ratio"),
        (pl.col("warn") / count).alias("warn_ratio"),
        (pl.col("off_events").fill_null(0) / count).alias("off_hours_share"),
        pl.when(has_baseline).then(pl.col("new_ref_events") / count).otherwise(0.0).alias("new_ref_share"),
        (count / baseline).fill_null(1.0).alias("rate_vs_baseline"),
        pl.when((pl.col("members") >= 2) & (peer_var > 1e-12))
        .then((count - peer_mean) / peer_var.sqrt())
        .otherwise(0.0)
        .alias("peer_deviation"),
        pl.col("fail_then_success").fill_null(0),
        pl.when(has_baseline).then(pl.col("new_country_count").fill_null(0)).otherwise(0).alias("new_country_count"),
        pl.when(has_baseline).then(pl.col("new_ip_count").fill_null(0)).otherwise(0).alias("new_ip_count"),
    ]
