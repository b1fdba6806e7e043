"""Per-identity, per-window behaviour features of the event frame (Polars, lazy, streaming).

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
    share of ``W``'s events whose ``ref`` never occurs in the history.
``rate_vs_baseline``
    ``event_count`` divided by the identity's baseline for the window's hour of the week (the weekday and
    hour of ``W``'s start): the mean ``event_count`` over the identity's earlier windows with events that
    started in the same hour of the week; with no such window, the mean over all its earlier windows with
    events; with none at all the feature is 1 (no evidence either way).
``peer_deviation``
    z-score of ``event_count`` among the members of the identity's DAO in ``W``, members without events in
    ``W`` counting as 0: ``(count - mean) / std`` (population std). The identity's DAO is the ``dao_id``
    it acts under most often over the whole source (ties: the smallest id), a membership, not a
    behaviour. 0 when the identity has no DAO, the DAO has one member, or every member has the same count.
``fail_then_success``
    number of authentication events (types ``AUTH_TYPES``) in ``W`` with verdict ALLOW whose previous
    authentication event of the identity in ``W`` (by ``occurred_at``, then ``seq``) was a DENY.
``new_country_count``, ``new_ip_count``
    distinct ``details.country`` (``details.ip``) values in ``W`` absent from the history. Erased details
    (null) count as neither.

Rows come out sorted by ``squid_id``, then ``window_start`` (the streaming engine does not keep order).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import polars as pl

logger = logging.getLogger(__name__)

WINDOWS: tuple[str, ...] = ("5m", "1h", "1d")
AUTH_TYPES: tuple[str, ...] = ("authentication", "login")
USUAL_HOUR_MIN_SHARE = 0.02
MIN_HISTORY_EVENTS = 20
KEY_COLUMNS: tuple[str, ...] = ("squid_id", "window_start", "window")
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
_KEY = ["squid_id", "window_start"]


def _detail(name: str) -> pl.Expr:
    """A string value of the details JSON text (a regex: cheaper than parsing 10M objects)."""
    return pl.col("details").str.extract(rf'"{name}"\s*:\s*"([^"]*)"', 1)


def _first_seen_count(ev: pl.LazyFrame, column: str, out: str) -> pl.LazyFrame:
    """Per (identity, window): distinct ``column`` values whose first window is this one."""
    return (
        ev.filter(pl.col(column).is_not_null())
        .group_by("squid_id", column)
        .agg(window_start=pl.col("window_start").min())
        .group_by(_KEY)
        .agg(pl.len().cast(pl.Int64).alias(out))
    )


def compute_features(events: pl.LazyFrame, window: str) -> pl.LazyFrame:
    """The features of every (identity, window) of ``events`` (an event frame), sorted; see the module doc."""
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, not {window!r}")
    ev = events.select(
        "squid_id",
        "ref",
        "layer",
        "verdict",
        "type",
        "dao_id",
        "seq",
        "occurred_at",
        window_start=pl.col("occurred_at").dt.truncate(window),
        hour=pl.col("occurred_at").dt.hour().cast(pl.Int8),
        ip=_detail("ip"),
        country=_detail("country"),
    )
    base = ev.group_by(_KEY).agg(
        event_count=pl.len().cast(pl.Int64),
        distinct_refs=pl.col("ref").n_unique().cast(pl.Int64),
        distinct_layers=pl.col("layer").n_unique().cast(pl.Int64),
        deny=(pl.col("verdict") == "DENY").sum().cast(pl.Int64),
        warn=(pl.col("verdict") == "WARN").sum().cast(pl.Int64),
    )
    by_time = {"order_by": "window_start"}
    base = base.with_columns(
        prior_events=pl.col("event_count").cum_sum().over("squid_id", **by_time) - pl.col("event_count"),
        prior_windows=pl.col("event_count").cum_count().over("squid_id", **by_time).cast(pl.Int64) - 1,
        slot=(pl.col("window_start").dt.weekday().cast(pl.Int16) - 1) * 24 + pl.col("window_start").dt.hour(),
    ).with_columns(
        prior_slot_events=pl.col("event_count").cum_sum().over("squid_id", "slot", **by_time) - pl.col("event_count"),
        prior_slot_windows=pl.col("event_count").cum_count().over("squid_id", "slot", **by_time).cast(pl.Int64) - 1,
    )
    off_hours = (
        ev.group_by("squid_id", "window_start", "hour")
        .agg(n=pl.len().cast(pl.Int64))
        .with_columns(prior_hour=pl.col("n").cum_sum().over("squid_id", "hour", **by_time) - pl.col("n"))
        .join(base.select(*_KEY, "prior_events"), on=_KEY, how="inner")
        .with_columns(
            off=pl.when(
                (pl.col("prior_events") >= MIN_HISTORY_EVENTS)
                & (pl.col("prior_hour") < USUAL_HOUR_MIN_SHARE * pl.col("prior_events"))
            )
            .then(pl.col("n"))
            .otherwise(0)
        )
        .group_by(_KEY)
        .agg(off_events=pl.col("off").sum())
    )
    new_refs = (
        ev.group_by("squid_id", "ref")
        .agg(
            window_start=pl.col("window_start").min(),
            n=(pl.col("window_start") == pl.col("window_start").min()).sum().cast(pl.Int64),
        )
        .group_by(_KEY)
        .agg(new_ref_events=pl.col("n").sum())
    )
    membership = (
        ev.filter(pl.col("dao_id").is_not_null())
        .group_by("squid_id", "dao_id")
        .agg(n=pl.len())
        .sort(["squid_id", "n", "dao_id"], descending=[False, True, False])
        .group_by("squid_id")
        .agg(peer_dao=pl.col("dao_id").first())
    )
    members = membership.group_by("peer_dao").agg(members=pl.len().cast(pl.Int64))
    peers = (
        base.select(*_KEY, "event_count")
        .join(membership, on="squid_id", how="inner")
        .group_by("peer_dao", "window_start")
        .agg(
            peer_sum=pl.col("event_count").sum().cast(pl.Float64),
            peer_sumsq=(pl.col("event_count").cast(pl.Float64) ** 2).sum(),
        )
        .join(members, on="peer_dao", how="inner")
    )
    fails = (
        ev.filter(pl.col("type").is_in(AUTH_TYPES))
        .with_columns(
            previous=pl.col("verdict").shift(1).over(_KEY, order_by=["occurred_at", "seq"]),
        )
        .group_by(_KEY)
        .agg(fail_then_success=((pl.col("verdict") == "ALLOW") & (pl.col("previous") == "DENY")).sum().cast(pl.Int64))
    )
    frame = (
        base.join(off_hours, on=_KEY, how="left")
        .join(new_refs, on=_KEY, how="left")
        .join(fails, on=_KEY, how="left")
        .join(_first_seen_count(ev, "country", "new_country_count"), on=_KEY, how="left")
        .join(_first_seen_count(ev, "ip", "new_ip_count"), on=_KEY, how="left")
        .join(membership, on="squid_id", how="left")
        .join(peers, on=["peer_dao", "window_start"], how="left")
    )
    count = pl.col("event_count").cast(pl.Float64)
    peer_mean = pl.col("peer_sum") / pl.col("members")
    peer_var = pl.col("peer_sumsq") / pl.col("members") - peer_mean**2
    baseline = (
        pl.when(pl.col("prior_slot_windows") > 0)
        .then(pl.col("prior_slot_events") / pl.col("prior_slot_windows"))
        .when(pl.col("prior_windows") > 0)
        .then(pl.col("prior_events") / pl.col("prior_windows"))
    )
    return frame.select(
        "squid_id",
        pl.col("window_start").cast(pl.Datetime("ms", "UTC")),
        pl.lit(window, dtype=pl.String).alias("window"),
        "event_count",
        "distinct_refs",
        "distinct_layers",
        deny_ratio=pl.col("deny") / count,
        warn_ratio=pl.col("warn") / count,
        off_hours_share=pl.col("off_events").fill_null(0) / count,
        new_ref_share=pl.col("new_ref_events").fill_null(0) / count,
        rate_vs_baseline=(count / baseline).fill_null(1.0),
        peer_deviation=pl.when((pl.col("members") >= 2) & (peer_var > 1e-12))
        .then((count - peer_mean) / peer_var.sqrt())
        .otherwise(0.0),
        fail_then_success=pl.col("fail_then_success").fill_null(0),
        new_country_count=pl.col("new_country_count").fill_null(0),
        new_ip_count=pl.col("new_ip_count").fill_null(0),
    ).sort(_KEY)


def features_to_parquet(
    source: str | Path | pl.LazyFrame, out: Path, windows: Sequence[str] = ("1h",), *, chunk_rows: int = 250_000
) -> Path:
    """Write the features of ``source`` (a Parquet path, a database URL or an event LazyFrame) for every
    window to ``out``, streaming: one window at a time, rows sorted by window, identity, window start.

    A database is first copied, ``chunk_rows`` rows at a time, into a Parquet file beside ``out`` so that it
    is read once, however many windows are asked for.
    """
    from analytics.sources import export_parquet, is_database_url, scan_events

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".features-", dir=out.parent))
    try:
        if isinstance(source, pl.LazyFrame):
            events = source
        elif is_database_url(str(source)):
            events = pl.scan_parquet(export_parquet(str(source), work / "events.parquet", chunk_rows=chunk_rows))
        else:
            events = scan_events(source)
        parts = []
        for window in windows:
            part = work / f"features-{window}.parquet"
            compute_features(events, window).sink_parquet(part, engine="streaming")
            parts.append(part)
            logger.info("features for window %s written", window)
        pl.concat([pl.scan_parquet(p) for p in parts], how="vertical").sink_parquet(
            out, engine="streaming", maintain_order=True
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out
