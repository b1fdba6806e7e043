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

How it is computed (none of this changes a definition): the events are first reduced to a narrow frame
of integers (``_narrow``): 64-bit keys of ``squid_id``, ``ref``, ``layer``, ``details.ip`` and
``details.country`` (the details regex runs once), a verdict code, the time and seq. ``features_to_parquet``
writes it to a Parquet file once and computes every window from it; the group-bys run on integers.
Identities and DAOs are decoded exactly: the table of identity keys keeps the ids behind each key and a
collision is refused (``HashCollisionError``), never merged, and the same holds for DAOs. Refs, layers,
IPs and countries are only compared within one identity, so a collision could change a feature only if
two different values of one identity shared a key: with at most ``k_i`` distinct values for identity
``i``, the chance is below ``sum(k_i**2) / 2**65``, under 3e-6 even if one identity held all of 10
million distinct values, and the keys are seeded at random per run, so colliding values cannot be
crafted in advance. (A per-run dictionary, Categorical, measured seven times the CPU time of the keys.)
"""

from __future__ import annotations

import logging
import secrets
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
_WINDOW_MS: dict[str, int] = {"5m": 300_000, "1h": 3_600_000, "1d": 86_400_000}
_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000
_ALLOW, _DENY, _WARN, _OTHER = 0, 1, 2, 3
_SW = ["s", "w"]
_IDENTITY_SCHEMA = pl.Schema({"s": pl.UInt64(), "squid_id": pl.String(), "order": pl.Int64()})
_MEMBERSHIP_SCHEMA = pl.Schema({"s": pl.UInt64(), "peer": pl.UInt64(), "members": pl.Int64()})


class HashCollisionError(ValueError):
    """Two distinct identities (or DAOs) got the same 64-bit key in one run: astronomically rare; rerun."""


def _detail(name: str) -> pl.Expr:
    """A string value of the details JSON text (a regex: cheaper than parsing 10M objects)."""
    return pl.col("details").str.extract(rf'"{name}"\s*:\s*"([^"]*)"', 1)


def _key(expr: pl.Expr, seed: int, *, keep_null: bool = False) -> pl.Expr:
    """A value's 64-bit key for this run (``seed``; see the module doc); a null stays null with ``keep_null``.

    Without ``keep_null`` a null gets a key of its own, so it counts as one value, as it did as a string.
    """
    hashed = expr.hash(seed)
    return pl.when(expr.is_not_null()).then(hashed) if keep_null else hashed


def _narrow(events: pl.LazyFrame, seed: int) -> pl.LazyFrame:
    """One narrow row per event: keys and small codes instead of the strings, the details read once.

    ``s`` identity key, ``m`` time (epoch ms), ``r``/``l`` ref and layer keys, ``v`` verdict code, ``a``
    authentication event, ``q`` seq, ``ip``/``c`` ip and country keys (null when absent or erased).
    """
    verdict = pl.col("verdict")
    return events.select(
        s=_key(pl.col("squid_id"), seed),
        m=pl.col("occurred_at").dt.epoch("ms"),
        r=_key(pl.col("ref"), seed),
        l=_key(pl.col("layer"), seed),
        v=pl.when(verdict == "ALLOW")
        .then(_ALLOW)
        .when(verdict == "DENY")
        .then(_DENY)
        .when(verdict == "WARN")
        .then(_WARN)
        .otherwise(_OTHER)
        .cast(pl.Int8),
        a=pl.col("type").is_in(AUTH_TYPES).fill_null(False),
        q="seq",
        ip=_key(_detail("ip"), seed, keep_null=True),
        c=_key(_detail("country"), seed, keep_null=True),
    )


def _identities(events: pl.LazyFrame, seed: int) -> pl.LazyFrame:
    """Per identity key: its ``squid_id`` and, to detect a collision, the largest id with that key."""
    return events.group_by(s=_key(pl.col("squid_id"), seed)).agg(
        squid_id=pl.col("squid_id").min(), squid_id_max=pl.col("squid_id").max()
    )


def _dao_counts(events: pl.LazyFrame, seed: int) -> pl.LazyFrame:
    """Events per (identity key, DAO key), with the DAO's id (smallest and largest, to detect a collision)."""
    return (
        events.filter(pl.col("dao_id").is_not_null())
        .group_by(s=_key(pl.col("squid_id"), seed), d=_key(pl.col("dao_id"), seed))
        .agg(n=pl.len(), dao_id=pl.col("dao_id").min(), dao_id_max=pl.col("dao_id").max())
    )


def _checked_identities(identities: pl.DataFrame) -> pl.DataFrame:
    """``s``, ``squid_id`` and ``order`` (rank of the id, for the output's sort), refusing a key collision."""
    clash = identities.filter(pl.col("squid_id").ne_missing(pl.col("squid_id_max")))
    if clash.height:
        raise HashCollisionError(f"{clash.height} identity keys collide in this run; run again (new seed)")
    return identities.sort("squid_id", nulls_last=False).select(
        "s", "squid_id", order=pl.int_range(pl.len(), dtype=pl.Int64)
    )


def _membership(dao_counts: pl.DataFrame) -> pl.DataFrame:
    """``s`` -> ``peer`` (key of the identity's DAO: most events, ties the smallest id) and ``members``."""
    if dao_counts.filter(pl.col("dao_id") != pl.col("dao_id_max")).height or (
        dao_counts.select(pl.col("d").n_unique() != pl.col("dao_id").n_unique()).item()
    ):
        raise HashCollisionError("DAO keys collide in this run; run again (new seed)")
    membership = (
        dao_counts.group_by("s", "dao_id")
        .agg(pl.col("n").sum(), peer=pl.col("d").first())
        .sort(["s", "n", "dao_id"], descending=[False, True, False])
        .group_by("s", maintain_order=True)
        .agg(pl.col("peer").first())
    )
    members = membership.group_by("peer").agg(members=pl.len().cast(pl.Int64))
    return membership.join(members, on="peer", how="inner")


def _priors(
    frame: pl.LazyFrame, by: Sequence[str], value: str, events: str, windows: str | None, *, sorted_in_time: bool
) -> pl.LazyFrame:
    """The sum of ``value`` (and the number of rows) over the group's (``by``) rows of earlier windows.

    ``frame`` is a per-window frame (one row per identity and window, never the events). When it is
    already sorted by identity and window (``sorted_in_time``), the cumulative sums follow that order with
    no sort of their own.
    """
    order_by = None if sorted_in_time else "w"
    columns = {events: pl.col(value).cum_sum().over(by, order_by=order_by) - pl.col(value)}
    if windows is not None:
        columns[windows] = pl.col(value).cum_count().over(by, order_by=order_by).cast(pl.Int64) - 1
    return frame.with_columns(**columns)


def _first_seen_count(narrow: pl.LazyFrame, column: str, out: str) -> pl.LazyFrame:
    """Per (identity, window): distinct ``column`` values whose first window is this one."""
    return (
        narrow.filter(pl.col(column).is_not_null())
        .group_by("s", column)
        .agg(w=pl.col("w").min())
        .group_by(_SW)
        .agg(pl.len().cast(pl.Int64).alias(out))
    )


def _features(narrow: pl.LazyFrame, window: str, identities: pl.LazyFrame, membership: pl.LazyFrame) -> pl.LazyFrame:
    """The feature rows from the narrow events (``_narrow``) and the identity and membership frames."""
    size = _WINDOW_MS[window]
    narrow = narrow.with_columns(w=pl.col("m") // size * size, h=(pl.col("m") // _HOUR_MS % 24).cast(pl.Int8))
    first_ref_window = narrow.group_by("s", "r").agg(first_ref_w=pl.col("w").min())
    base = (
        narrow.join(first_ref_window, on=["s", "r"], how="left")
        .group_by(_SW)
        .agg(
            event_count=pl.len().cast(pl.Int64),
            new_ref_events=(pl.col("w") == pl.col("first_ref_w")).sum().cast(pl.Int64),
            distinct_refs=pl.col("r").n_unique().cast(pl.Int64),
            distinct_layers=pl.col("l").n_unique().cast(pl.Int64),
            deny=(pl.col("v") == _DENY).sum().cast(pl.Int64),
            warn=(pl.col("v") == _WARN).sum().cast(pl.Int64),
        )
    )
    auth = narrow.filter(pl.col("a")).select("s", "w", "m", "q", "v").sort("s", "w", "m", "q")
    same_window = (pl.col("s") == pl.col("s").shift(1)) & (pl.col("w") == pl.col("w").shift(1))
    fails = (
        auth.with_columns(
            fts=((pl.col("v") == _ALLOW) & (pl.col("v").shift(1) == _DENY) & same_window).fill_null(False)
        )
        .group_by(_SW)
        .agg(fail_then_success=pl.col("fts").sum().cast(pl.Int64))
    )
    peers = (
        base.select(*_SW, "event_count")
        .join(membership.select("s", "peer"), on="s", how="inner")
        .group_by("peer", "w")
        .agg(
            peer_sum=pl.col("event_count").sum().cast(pl.Float64),
            peer_sumsq=(pl.col("event_count").cast(pl.Float64) ** 2).sum(),
        )
    )
    people = identities.join(membership, on="s", how="left")
    # one integer sort key (identity rank, window number) sorts four times faster than the pair
    in_order = pl.col("order") * (1 << 32) + (pl.col("w") // size + (1 << 31))
    base = (
        base.join(fails, on=_SW, how="left")
        .join(_first_seen_count(narrow, "c", "new_country_count"), on=_SW, how="left")
        .join(_first_seen_count(narrow, "ip", "new_ip_count"), on=_SW, how="left")
        .join(people, on="s", how="left")
        .join(peers, on=["peer", "w"], how="left")
        .sort(in_order)
    )
    base = _priors(base, ["s"], "event_count", "prior_events", "prior_windows", sorted_in_time=True)
    base = base.with_columns(
        slot=(pl.col("w") // _DAY_MS + 3) % 7 * 24 + pl.col("w") // _HOUR_MS % 24  # 1970-01-01 was a Thursday
    )
    base = _priors(base, ["s", "slot"], "event_count", "prior_slot_events", "prior_slot_windows", sorted_in_time=True)
    off = (pl.col("prior_events") >= MIN_HISTORY_EVENTS) & (
        pl.col("prior_hour") < USUAL_HOUR_MIN_SHARE * pl.col("prior_events")
    )
    if size <= _HOUR_MS:  # a window lies within one hour: its events' hour is its start's, no join needed
        base = _priors(
            base.with_columns(h=(pl.col("w") // _HOUR_MS % 24).cast(pl.Int8)),
            ["s", "h"],
            "event_count",
            "prior_hour",
            None,
            sorted_in_time=True,
        ).with_columns(off_events=pl.when(off).then(pl.col("event_count")).otherwise(0))
    else:
        hours = narrow.group_by("s", "w", "h").agg(n=pl.len().cast(pl.Int64))
        off_hours = (
            _priors(hours, ["s", "h"], "n", "prior_hour", None, sorted_in_time=False)
            .join(base.select(*_SW, "prior_events"), on=_SW, how="inner")
            .group_by(_SW)
            .agg(off_events=pl.when(off).then(pl.col("n")).otherwise(0).sum())
        )
        base = base.join(off_hours, on=_SW, how="left").sort(in_order)  # a join does not keep the order
    frame = base
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
        window_start=pl.col("w").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
        window=pl.lit(window, dtype=pl.String),
        event_count="event_count",
        distinct_refs="distinct_refs",
        distinct_layers="distinct_layers",
        deny_ratio=pl.col("deny") / count,
        warn_ratio=pl.col("warn") / count,
        off_hours_share=pl.col("off_events").fill_null(0) / count,
        new_ref_share=pl.col("new_ref_events") / count,
        rate_vs_baseline=(count / baseline).fill_null(1.0),
        peer_deviation=pl.when((pl.col("members") >= 2) & (peer_var > 1e-12))
        .then((count - peer_mean) / peer_var.sqrt())
        .otherwise(0.0),
        fail_then_success=pl.col("fail_then_success").fill_null(0),
        new_country_count=pl.col("new_country_count").fill_null(0),
        new_ip_count=pl.col("new_ip_count").fill_null(0),
    )


def _check_window(window: str) -> None:
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, not {window!r}")


def compute_features(events: pl.LazyFrame, window: str, *, seed: int | None = None) -> pl.LazyFrame:
    """The features of every (identity, window) of ``events`` (an event frame), sorted; see the module doc.

    ``seed`` keys the run's 64-bit value keys (random by default; see ``_key``).
    """
    _check_window(window)
    seed = _new_seed() if seed is None else seed
    return _features(
        _narrow(events, seed),
        window,
        _identities(events, seed).map_batches(_checked_identities, schema=_IDENTITY_SCHEMA),
        _dao_counts(events, seed).map_batches(_membership, schema=_MEMBERSHIP_SCHEMA),
    )


def _new_seed() -> int:
    return secrets.randbits(63)


def _stage_events(events: pl.LazyFrame, seed: int, narrow: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Write the narrow events to ``narrow``; return the identity and DAO-count tables.

    Three queries, not one multiplexed query: the identity and DAO tables read two narrow columns again
    (under half a CPU second at 10M events), while a multiplexed query held 1.5 GB more at its peak.
    """
    _narrow(events, seed).sink_parquet(narrow, compression="lz4", engine="streaming")
    identities = _identities(events, seed).collect(engine="streaming")
    return identities, _dao_counts(events, seed).collect(engine="streaming")


def features_to_parquet(
    source: str | Path | pl.LazyFrame, out: Path, windows: Sequence[str] = ("1h",), *, chunk_rows: int = 250_000
) -> Path:
    """Write the features of ``source`` (a Parquet path, a database URL or an event LazyFrame) for every
    window to ``out``, streaming: one window at a time, rows sorted by window, identity, window start.

    A database is first copied, ``chunk_rows`` rows at a time, into a Parquet file beside ``out`` so that it
    is read once, however many windows are asked for.
    """
    from models.reader import export_parquet, is_database_url, scan_events

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
        seed = _new_seed()
        narrow = work / "narrow.parquet"
        identities, dao_counts = _stage_events(events, seed, narrow)
        identities, membership = _checked_identities(identities), _membership(dao_counts)
        logger.info("events read once into %s (%d identities)", narrow.name, identities.height)
        parts = []
        for window in windows:
            _check_window(window)
            part = work / f"features-{window}.parquet"
            _features(pl.scan_parquet(narrow), window, identities.lazy(), membership.lazy()).sink_parquet(
                part, engine="streaming"
            )
            parts.append(part)
            logger.info("features for window %s written", window)
        pl.concat([pl.scan_parquet(p) for p in parts], how="vertical").sink_parquet(
            out, engine="streaming", maintain_order=True
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out
