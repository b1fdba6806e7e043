"""The window features (``definition.py``) of an event frame, every window at once (Polars, lazy, streaming).

Rows come out sorted by ``squid_id``, then ``window_start`` (the streaming engine does not keep order). The
identity's DAO (for ``peer_deviation``) is the one it acts under most often over the whole frame.

How it is computed (none of this changes a definition): the events are first reduced to a narrow frame
of integers (``_narrow``): 64-bit keys of ``squid_id``, ``ref``, ``layer``, ``details.ip`` and
``details.country`` (the details regex runs once), a verdict code, the sign-in status (from the event's
category, ``analytics.taxonomy``), the time and seq. ``features_to_parquet`` writes it to a Parquet file once
and computes every window from it; the group-bys run on integers and end in the facts that
``definition.feature_exprs`` turns into features.
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
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from analytics.live_events import detail_pattern
from analytics.taxonomy import STATUS_IDS, Taxonomy, category_expr, default_taxonomy
from analytics.window_features.definition import (
    WINDOW_MS,
    check_window,
    feature_exprs,
    hour_of_day,
    hour_of_week,
    off_hour_events,
    unusual_hour,
    window_start,
)
from models.event_frame import scan_parquet_events

logger = logging.getLogger(__name__)

_ALLOW, _DENY, _WARN, _OTHER = 0, 1, 2, 3
_SW = ["s", "w"]
_IDENTITY_SCHEMA = pl.Schema({"s": pl.UInt64(), "squid_id": pl.String(), "order": pl.Int64()})
_MEMBERSHIP_SCHEMA = pl.Schema({"s": pl.UInt64(), "peer": pl.UInt64(), "members": pl.Int64()})


class HashCollisionError(ValueError):
    """Two distinct identities (or DAOs) got the same 64-bit key in one run: astronomically rare; rerun."""


def _detail(name: str) -> pl.Expr:
    """A string value of the details JSON text."""
    return pl.col("details").str.extract(detail_pattern(name), 1)


def _key(expr: pl.Expr, seed: int, *, keep_null: bool = False) -> pl.Expr:
    """A value's 64-bit key for this run (``seed``; see the module doc); a null stays null with ``keep_null``.

    Without ``keep_null`` a null gets a key of its own, so it counts as one value, as it did as a string.
    """
    hashed = expr.hash(seed)
    return pl.when(expr.is_not_null()).then(hashed) if keep_null else hashed


def _sign_in_status(taxonomy: Taxonomy) -> pl.Expr:
    """The OCSF status_id of a sign-in (``Taxonomy.sign_in``), 0 for any other event."""
    category = category_expr(taxonomy)
    class_uid, activity_id = taxonomy.sign_in
    is_sign_in = (category.struct.field("class_uid") == class_uid) & (
        category.struct.field("activity_id") == activity_id
    )
    return pl.when(is_sign_in).then(category.struct.field("status_id")).otherwise(0).cast(pl.Int8)


def _narrow(events: pl.LazyFrame, seed: int, taxonomy: Taxonomy) -> pl.LazyFrame:
    """One narrow row per event: keys and small codes instead of the strings, the details read once.

    ``s`` identity key, ``m`` time (epoch ms), ``r``/``l`` ref and layer keys, ``v`` verdict code, ``a``
    the status_id of a sign-in (0: not a sign-in), ``q`` seq, ``ip``/``c`` ip and country keys (null when
    absent or erased).
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
        a=_sign_in_status(taxonomy),
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
    size = WINDOW_MS[window]
    narrow = narrow.with_columns(w=window_start(pl.col("m"), size), h=hour_of_day(pl.col("m")).cast(pl.Int8))
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
    auth = narrow.filter(pl.col("a") > 0).select("s", "w", "m", "q", "a").sort("s", "w", "m", "q")
    same_window = (pl.col("s") == pl.col("s").shift(1)) & (pl.col("w") == pl.col("w").shift(1))
    success, failure = STATUS_IDS["success"], STATUS_IDS["failure"]
    fails = (
        auth.with_columns(
            fts=((pl.col("a") == success) & (pl.col("a").shift(1) == failure) & same_window).fill_null(False)
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
    base = _priors(
        base.with_columns(slot=hour_of_week(pl.col("w"))),
        ["s", "slot"],
        "event_count",
        "prior_slot_events",
        "prior_slot_windows",
        sorted_in_time=True,
    )
    if size <= WINDOW_MS["1h"]:  # a window lies within one hour: its events' hour is its start's, no join needed
        base = _priors(
            base.with_columns(h=hour_of_day(pl.col("w")).cast(pl.Int8)),
            ["s", "h"],
            "event_count",
            "prior_hour",
            None,
            sorted_in_time=True,
        ).with_columns(off_events=pl.when(unusual_hour(pl.col("prior_hour"))).then(pl.col("event_count")).otherwise(0))
    else:
        hours = narrow.group_by("s", "w", "h").agg(n=pl.len().cast(pl.Int64))
        off_hours = off_hour_events(
            _priors(hours, ["s", "h"], "n", "prior_hour", None, sorted_in_time=False).join(
                base.select(*_SW, "prior_events"), on=_SW, how="inner"
            )
        )
        base = base.join(off_hours, on=_SW, how="left").sort(in_order)  # a join does not keep the order
    return base.select(
        pl.col("squid_id"),
        pl.col("w").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC").alias("window_start"),
        pl.lit(window, dtype=pl.String).alias("window"),
        *feature_exprs(),
    )


def compute_features(
    events: pl.LazyFrame, window: str, *, seed: int | None = None, taxonomy: Taxonomy | None = None
) -> pl.LazyFrame:
    """The features of every (identity, window) of ``events`` (an event frame), sorted; see the module doc.

    ``seed`` keys the run's 64-bit value keys (random by default; see ``_key``); ``taxonomy`` says which events
    are sign-ins (``config/taxonomy.toml`` by default).
    """
    check_window(window)
    seed = _new_seed() if seed is None else seed
    return _features(
        _narrow(events, seed, taxonomy or default_taxonomy()),
        window,
        _identities(events, seed).map_batches(_checked_identities, schema=_IDENTITY_SCHEMA),
        _dao_counts(events, seed).map_batches(_membership, schema=_MEMBERSHIP_SCHEMA),
    )


def _new_seed() -> int:
    return secrets.randbits(63)


def _stage_events(
    events: pl.LazyFrame, seed: int, narrow: Path, taxonomy: Taxonomy
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Write the narrow events to ``narrow``; return the identity and DAO-count tables.

    Three queries, not one multiplexed query: the identity and DAO tables read two narrow columns again
    (under half a CPU second at 10M events), while a multiplexed query held 1.5 GB more at its peak.
    """
    _narrow(events, seed, taxonomy).sink_parquet(narrow, compression="lz4", engine="streaming")
    identities = _identities(events, seed).collect(engine="streaming")
    return identities, _dao_counts(events, seed).collect(engine="streaming")


def features_to_parquet(
    source: str | Path | pl.LazyFrame,
    out: Path,
    windows: Sequence[str] = ("1h",),
    taxonomy: Taxonomy | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the features of ``source`` (an event frame, lazy, or the Parquet export of one: a file, a directory
    or a glob) for every window to ``out``, streaming: one window at a time, rows sorted by window, identity,
    window start. (``pipelines.feature_table`` reads a ledger's database.) ``taxonomy`` as for
    ``compute_features``. ``progress(done, total)`` is called after reading the events and after each window."""
    report = progress or (lambda done, total: None)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".features-", dir=out.parent))
    try:
        events = source if isinstance(source, pl.LazyFrame) else scan_parquet_events(source)
        seed = _new_seed()
        narrow = work / "narrow.parquet"
        identities, dao_counts = _stage_events(events, seed, narrow, taxonomy or default_taxonomy())
        identities, membership = _checked_identities(identities), _membership(dao_counts)
        logger.info("events read once into %s (%d identities)", narrow.name, identities.height)
        report(1, len(windows) + 1)
        parts = []
        for done, window in enumerate(windows, start=2):
            check_window(window)
            part = work / f"features-{window}.parquet"
            _features(pl.scan_parquet(narrow), window, identities.lazy(), membership.lazy()).sink_parquet(
                part, engine="streaming"
            )
            parts.append(part)
            logger.info("features for window %s written", window)
            report(done, len(windows) + 1)
        pl.concat([pl.scan_parquet(p) for p in parts], how="vertical").sink_parquet(
            out, engine="streaming", maintain_order=True
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out
