"""Features on hand-built frames (exact values for every feature) and their algebra (hypothesis)."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from analytics.labels import label_windows
from analytics.window_features import (
    FEATURE_COLUMNS,
    FEATURE_SCHEMA,
    HashCollisionError,
    batch,
    compute_features,
    features_to_parquet,
)
from models.event_frame import EVENT_SCHEMA

MONDAY = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


def _event(
    squid: str,
    at: dt.datetime,
    *,
    ref: str = "r1",
    layer: str = "qdrive",
    type: str = "access",
    verdict: str = "ALLOW",
    dao: str | None = "D",
    ip: str | None = "1.1.1.1",
    country: str = "DE",
) -> dict:
    details = None if ip is None else json.dumps({"ip": ip, "country": country, "device": "web", "size_bytes": 1})
    return {
        "id": None,
        "type": type,
        "ref": ref,
        "squid_id": squid,
        "sub_id": None,
        "dao_id": dao,
        "layer": layer,
        "verdict": verdict,
        "occurred_at": at,
        "details": details,
    }


def _frame(rows: list[dict]) -> pl.DataFrame:
    rows = sorted(rows, key=lambda r: r["occurred_at"])
    for seq, row in enumerate(rows):
        row["seq"], row["id"] = seq, f"id-{seq}"
    return pl.DataFrame(rows, schema=EVENT_SCHEMA)


def _scenario() -> pl.DataFrame:
    rows = [_event("A", MONDAY + dt.timedelta(hours=9, minutes=m)) for m in range(20)]  # W1: a habit at 09:00
    tuesday_3 = MONDAY + dt.timedelta(days=1, hours=3)
    auth = {"ref": "identity:A", "layer": "squid", "dao": None, "ip": "2.2.2.2", "country": "RU"}
    rows += [
        _event("A", tuesday_3, type="authentication", verdict="DENY", **auth),
        _event("A", tuesday_3 + dt.timedelta(minutes=1), type="authentication", verdict="DENY", **auth),
        _event("A", tuesday_3 + dt.timedelta(minutes=2), type="login", verdict="ALLOW", **auth),
        _event("A", tuesday_3 + dt.timedelta(minutes=3), ref="r2", type="download", verdict="WARN"),
    ]
    rows += [_event("A", MONDAY + dt.timedelta(days=7, hours=9, minutes=m)) for m in range(5)]  # W3: next Monday
    rows += [
        _event(
            "B",
            MONDAY + dt.timedelta(hours=9, minutes=m),
            ref="r9",
            layer="qmail",
            type="read",
            ip="3.3.3.3",
            country="FR",
        )
        for m in range(10)
    ]
    rows += [
        _event("C", MONDAY + dt.timedelta(hours=10), ref="x", layer="qchat", dao=None, ip=None),
        _event(
            "C",
            MONDAY + dt.timedelta(hours=10, minutes=30),
            ref="y",
            layer="qsocial",
            verdict="DENY",
            dao=None,
            ip=None,
        ),
    ]
    return _frame(rows)


def _row(squid: str, start: dt.datetime, values: tuple) -> dict:
    return {"squid_id": squid, "window_start": start, "window": "1h", **dict(zip(FEATURE_COLUMNS, values, strict=True))}


def test_hourly_features_of_a_hand_built_frame_have_their_exact_values() -> None:
    #            count refs layers deny warn  off  newref rate  peer fts  newc newip
    expected = pl.DataFrame(
        [
            # a first window (no history, no baseline): nothing in it is "new"
            _row("A", MONDAY + dt.timedelta(hours=9), (20, 1, 1, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0, 0, 0)),
            _row("A", MONDAY + dt.timedelta(days=1, hours=3), (4, 2, 2, 0.5, 0.25, 1.0, 1.0, 0.2, 1.0, 1, 1, 1)),
            _row("A", MONDAY + dt.timedelta(days=7, hours=9), (5, 1, 1, 0.0, 0.0, 0.0, 0.0, 0.25, 1.0, 0, 0, 0)),
            _row("B", MONDAY + dt.timedelta(hours=9), (10, 1, 1, 0.0, 0.0, 0.0, 0.0, 1.0, -1.0, 0, 0, 0)),
            _row("C", MONDAY + dt.timedelta(hours=10), (2, 2, 2, 0.5, 0.0, 0.0, 0.0, 1.0, 0.0, 0, 0, 0)),
        ],
        schema=FEATURE_SCHEMA,
    )
    actual = compute_features(_scenario().lazy(), "1h").collect(engine="streaming")
    assert_frame_equal(expected, actual)


def test_daily_window_pools_the_day_and_compares_with_earlier_days() -> None:
    actual = compute_features(_scenario().lazy(), "1d").collect().filter(pl.col("squid_id") == "A")
    assert actual["event_count"].to_list() == [20, 4, 5]
    assert actual["window"].to_list() == ["1d"] * 3
    # Tuesday's 4 against Monday's 20 (no earlier Tuesday); next Monday's 5 against the first Monday's 20
    assert actual["rate_vs_baseline"].to_list() == [1.0, 0.2, 0.25]


def test_unknown_window_is_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        compute_features(_scenario().lazy(), "2h")


def test_label_windows_marks_windows_holding_attack_events() -> None:
    features = compute_features(_scenario().lazy(), "1h").collect()
    truth = pl.DataFrame(
        {
            "id": ["id-20"],
            "squid_id": ["A"],
            "technique": ["T1110"],
            "occurred_at": [MONDAY + dt.timedelta(days=1, hours=3)],
        }
    )
    labelled = label_windows(features, truth)
    assert labelled["label"].to_list() == [0, 1, 0, 0, 0]
    assert labelled["technique"].to_list() == [None, "T1110", None, None, None]
    assert pl.Int8 == labelled.schema["label"]


def test_features_to_parquet_writes_every_window_sorted(tmp_path) -> None:
    events = tmp_path / "events.parquet"
    _scenario().write_parquet(events)
    out = features_to_parquet(events, tmp_path / "features.parquet", ["5m", "1h", "1d"])
    written = pl.read_parquet(out)
    assert written["window"].unique(maintain_order=True).to_list() == ["5m", "1h", "1d"]
    for window in ("5m", "1h", "1d"):
        part = written.filter(pl.col("window") == window)
        assert part.equals(part.sort("squid_id", "window_start"))
        assert _scenario().height == part["event_count"].sum()


@st.composite
def _events(draw: st.DrawFn) -> pl.DataFrame:
    count = draw(st.integers(1, 40))
    rows = []
    for _ in range(count):
        ip = draw(st.sampled_from([None, "1.1.1.1", "2.2.2.2", "3.3.3.3"]))
        rows.append(
            _event(
                draw(st.sampled_from(["A", "B", "C"])),
                MONDAY + dt.timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)), seconds=draw(st.integers(0, 59))),
                ref=draw(st.sampled_from(["r1", "r2", "r3", "r4"])),
                layer=draw(st.sampled_from(["squid", "qdrive", "dao"])),
                type=draw(st.sampled_from(["authentication", "login", "access"])),
                verdict=draw(st.sampled_from(["ALLOW", "DENY", "WARN"])),
                dao=draw(st.sampled_from([None, "D1", "D2"])),
                ip=ip,
                country=draw(st.sampled_from(["DE", "FR"])),
            )
        )
    return _frame(rows)


_fast = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_fast
@given(_events(), st.sampled_from(["5m", "1h", "1d"]))
def test_event_counts_add_up_to_the_events_and_bounds_hold(events: pl.DataFrame, window: str) -> None:
    features = compute_features(events.lazy(), window).collect()
    assert events.height == features["event_count"].sum()
    assert features.null_count().sum_horizontal().item() == 0
    for column in ("deny_ratio", "warn_ratio", "off_hours_share", "new_ref_share"):
        assert features[column].is_between(0.0, 1.0).all(), column
    assert features.select(pl.col(pl.Float64).is_finite().all()).row(0) == (True,) * 6
    assert (features["distinct_refs"] <= features["event_count"]).all()
    assert (features["fail_then_success"] * 2 <= features["event_count"]).all()


@_fast
@given(_events())
def test_five_minute_counts_add_up_to_hourly_counts(events: pl.DataFrame) -> None:
    small = compute_features(events.lazy(), "5m").collect()
    hourly = compute_features(events.lazy(), "1h").collect()
    rolled = (
        small.group_by("squid_id", pl.col("window_start").dt.truncate("1h"))
        .agg(pl.col("event_count").sum())
        .sort("squid_id", "window_start")
    )
    assert_frame_equal(rolled, hourly.select("squid_id", "window_start", "event_count"))


@_fast
@given(_events(), st.randoms(use_true_random=False))
def test_permuting_input_rows_does_not_change_the_features(events: pl.DataFrame, rnd) -> None:
    order = list(range(events.height))
    rnd.shuffle(order)
    shuffled = events[order]
    expected = compute_features(events.lazy(), "1h").collect()
    assert_frame_equal(expected, compute_features(shuffled.lazy(), "1h").collect(), check_exact=False)


@_fast
@given(_events(), st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))
def test_the_run_seed_of_the_value_keys_does_not_change_the_features(events: pl.DataFrame, one: int, two: int) -> None:
    for window in ("5m", "1d"):
        expected = compute_features(events.lazy(), window, seed=one).collect()
        assert_frame_equal(expected, compute_features(events.lazy(), window, seed=two).collect())


@_fast
@given(_events())
def test_the_narrow_file_path_gives_the_features_of_the_lazy_path(events: pl.DataFrame) -> None:
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "events.parquet"
        events.write_parquet(source)
        written = pl.read_parquet(features_to_parquet(source, Path(work) / "f.parquet", ["5m", "1h", "1d"]))
    expected = pl.concat([compute_features(events.lazy(), w).collect(engine="streaming") for w in ("5m", "1h", "1d")])
    assert_frame_equal(expected, written)


def test_features_to_parquet_takes_a_lazy_frame_and_equals_the_exact_values(tmp_path: Path) -> None:
    out = features_to_parquet(_scenario().lazy(), tmp_path / "features.parquet", ["1h"])
    assert_frame_equal(compute_features(_scenario().lazy(), "1h").collect(), pl.read_parquet(out))


def test_an_identity_key_collision_is_refused_not_merged() -> None:
    clash = pl.DataFrame(
        {"s": [7, 8], "squid_id": ["did:squid:a", "did:squid:c"], "squid_id_max": ["did:squid:b", "did:squid:c"]},
        schema={"s": pl.UInt64, "squid_id": pl.String, "squid_id_max": pl.String},
    )
    with pytest.raises(HashCollisionError, match="identity keys collide"):
        batch._checked_identities(clash)


def test_a_dao_key_collision_is_refused_not_merged() -> None:
    same_key = pl.DataFrame(
        {"s": [1, 2], "d": [5, 5], "n": [3, 4], "dao_id": ["D1", "D2"], "dao_id_max": ["D1", "D2"]},
        schema={"s": pl.UInt64, "d": pl.UInt64, "n": pl.UInt32, "dao_id": pl.String, "dao_id_max": pl.String},
    )
    with pytest.raises(HashCollisionError, match="DAO keys collide"):
        batch._membership(same_key)


def test_peer_dao_is_the_most_used_then_the_smallest_id() -> None:
    rows = [_event("A", MONDAY + dt.timedelta(minutes=m), dao="D2") for m in range(2)]
    rows += [_event("A", MONDAY + dt.timedelta(minutes=10 + m), dao="D1") for m in range(2)]  # a tie: D1
    rows += [_event("B", MONDAY + dt.timedelta(minutes=m), dao="D1") for m in range(3)]
    rows += [_event("C", MONDAY + dt.timedelta(minutes=m), dao="D2") for m in range(5)]
    actual = compute_features(_frame(rows).lazy(), "1h").collect()
    # A (4) and B (3) share D1: mean 3.5, population std 0.5; C is alone in D2
    assert [1.0, -1.0, 0.0] == actual["peer_deviation"].to_list()


def test_daily_off_hours_count_each_hour_against_the_history_before_the_day() -> None:
    rows = [_event("A", MONDAY + dt.timedelta(hours=9, minutes=m)) for m in range(20)]
    tuesday = MONDAY + dt.timedelta(days=1)
    rows += [_event("A", tuesday + dt.timedelta(hours=9)), _event("A", tuesday + dt.timedelta(hours=3))]
    rows += [_event("A", tuesday + dt.timedelta(hours=3, minutes=5))]
    actual = compute_features(_frame(rows).lazy(), "1d").collect()
    # Tuesday: the two 03:00 events are off-hours; 09:00 is usual (20 of 20 earlier events)
    assert [0.0, 2 / 3] == actual["off_hours_share"].to_list()
