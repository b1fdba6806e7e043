"""Hand-computed risk scores: each factor alone, combinations, decay, resolved alerts, caps, boundaries.

Default configuration (config/risk.toml): weights active_alerts 0.30, detector_score 0.15, rule_hits 0.10,
failed_authentications 0.10, deny_events 0.10, unfamiliar_access 0.10, new_country 0.05, unknown_device 0.04,
new_ip 0.03, off_hours 0.03 (sum 1); alert half-life 72 h, saturation 1.5; detector half-life 24 h; window 24 h.
The additive algebra is checked without the severity floor (``CONFIG``); the floor has tests of its own.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.risk import (
    FACTOR_NAMES,
    AlertView,
    DetectorScoreView,
    HistoryEvent,
    OperationContext,
    RiskConfig,
    RiskInputs,
    assess,
    level_for,
    load_config,
)
from analytics.taxonomy import default_taxonomy
from qerberos.errors import ValidationError

H = 3_600_000
NOW = 1_000 * 24 * H + 12 * H  # a day at 12:00 UTC
SHIPPED = RiskConfig()
CONFIG = SHIPPED.replace(floor_severities=frozenset())  # the additive factors alone


def alert(severity: str = "critical", *, age_h: float = 0, status: str = "active", pattern: str = "anomaly",
          score: float = 0.0) -> AlertView:  # fmt: skip
    updated = NOW - round(age_h * H)
    return AlertView(severity, score, status, updated, updated, pattern, None)


def event(age_h: float, type_: str = "access", verdict: str = "ALLOW", *, country: str = "DE",
          device: str = "web", ip: str = "10.0.0.1") -> HistoryEvent:  # fmt: skip
    category = default_taxonomy().classify(type_, "module", verdict)
    return HistoryEvent(NOW - round(age_h * H), category, ip, country, device)


def score(**changes: object) -> float:
    return assess(RiskInputs(identity="did:squid:a", as_of_ms=NOW, **changes), CONFIG).score  # type: ignore[arg-type]


def contributions(**changes: object) -> dict[str, float]:
    result = assess(RiskInputs(identity="did:squid:a", as_of_ms=NOW, **changes), CONFIG)  # type: ignore[arg-type]
    return {f.name: f.weight * f.value for f in result.factors if f.weight * f.value}


def test_the_shipped_configuration_is_the_documented_default() -> None:
    assert RiskConfig() == load_config()


def test_no_signal_scores_zero_and_lists_every_factor() -> None:
    result = assess(RiskInputs(identity="x", as_of_ms=NOW), CONFIG)
    assert (0.0, "low") == (result.score, result.level)
    assert FACTOR_NAMES == tuple(f.name for f in result.factors)


def test_one_fresh_critical_alert_alone() -> None:
    # rank 1 counts 1.0: sum 1.0 / saturation 1.5 = 0.6667; x 0.30 = 0.2
    assert {"active_alerts": pytest.approx(0.2)} == contributions(alerts=(alert(),))


def test_two_alerts_rank_weighted_like_elastic() -> None:
    # 1.0 + 0.75 / 2**1.5 = 1.26517; / 1.5 = 0.84345; x 0.30 = 0.25303
    expected = 0.3 * (1.0 + 0.75 / 2**1.5) / 1.5
    assert score(alerts=(alert("high"), alert("critical"))) == pytest.approx(expected)
    assert expected == pytest.approx(0.25303, abs=1e-5)


def test_alert_risk_is_the_larger_of_severity_and_score() -> None:
    assert score(alerts=(alert("low", score=0.9),)) == pytest.approx(0.3 * 0.9 / 1.5)


def test_alert_risk_halves_every_half_life() -> None:
    assert score(alerts=(alert(age_h=72),)) == pytest.approx(0.3 * 0.5 / 1.5)
    assert score(alerts=(alert(age_h=144),)) == pytest.approx(0.3 * 0.25 / 1.5)
    assert score(alerts=(alert(age_h=72),)) < score(alerts=(alert(age_h=1),)) < score(alerts=(alert(),))


@pytest.mark.parametrize("status", ["resolved", "dismissed"])
def test_resolved_and_dismissed_alerts_drop_out(status: str) -> None:
    assert 0.0 == score(alerts=(alert(status=status, pattern="brute_force"),))
    assert score(alerts=(alert(), alert("high", status=status))) == score(alerts=(alert(),))


def test_rule_hits_count_distinct_rules_with_a_recent_active_alert() -> None:
    alerts = (alert("low", pattern="brute_force"), alert("low", pattern="brute_force", age_h=2),
              alert("low", pattern="spray", age_h=200), alert("low", pattern="anomaly"))  # fmt: skip
    # one distinct rule within 7 days (anomaly is not a rule; spray is too old): 1 / 3 x 0.10
    assert contributions(alerts=alerts)["rule_hits"] == pytest.approx(0.1 / 3)


def test_detector_score_alone_decays_by_its_window_age() -> None:
    assert score(detector=DetectorScoreView(0.8, NOW)) == pytest.approx(0.15 * 0.8)
    assert score(detector=DetectorScoreView(0.8, NOW - 24 * H)) == pytest.approx(0.15 * 0.4)
    assert score(detector=DetectorScoreView(0.8, None)) == pytest.approx(0.15 * 0.8)


def test_failed_authentications_in_the_window_only() -> None:
    history = tuple(event(h, "login", "DENY") for h in (1, 2, 3, 4, 5, 30, 40))
    assert score(history=history) == pytest.approx(0.1 * 5 / 10)


def test_other_denials_count_apart_from_sign_ins() -> None:
    history = (*tuple(event(h, "download", "DENY") for h in range(10)), event(1, "login", "DENY"))
    assert contributions(history=history) == {
        "deny_events": pytest.approx(0.1 * 10 / 20),
        "failed_authentications": pytest.approx(0.1 / 10),
    }


def test_unfamiliar_access_needs_a_baseline_before_the_window() -> None:
    baseline = tuple(event(48 + h) for h in range(5))
    recent = (event(1, country="RU"), event(2, device="curl"), event(3))
    assert score(history=baseline + recent) == pytest.approx(0.1 * 2 / 5)
    assert 0.0 == score(history=recent)


def test_context_new_country_ip_and_device() -> None:
    history = (event(48),)
    seen = OperationContext(ip="10.0.0.1", country="DE", device="web")
    assert 0.0 == score(history=history, operation="access", context=seen)
    assert score(history=history, operation="access", context=OperationContext(country="FR")) == pytest.approx(0.05)
    assert score(history=history, operation="access", context=OperationContext(ip="1.1.1.1")) == pytest.approx(0.03)
    assert score(history=history, operation="access", context=OperationContext(device="curl")) == pytest.approx(0.04)
    new_everything = OperationContext(ip="1.1.1.1", country="FR", device="curl")
    assert score(history=history, operation="access", context=new_everything) == pytest.approx(0.12)


def test_off_hours_against_the_identitys_usual_hours() -> None:
    usual = tuple(event(24 * d + 1) for d in range(1, 21))  # 20 events at 11:00 UTC; now is 12:00 (+- 1 h)
    assert 0.0 == score(history=usual, operation="access")
    assert 0.0 == score(history=usual)  # no operation: no hour to judge
    night = tuple(event(24 * d + 9) for d in range(1, 21))  # all at 03:00
    assert score(history=night, operation="access") == pytest.approx(0.03)
    assert 0.0 == score(history=night[:19], operation="access")  # too little history to judge


def test_operation_multiplies_the_risk_and_shows_as_its_own_factor() -> None:
    # base 0.2 (one fresh critical anomaly alert); payment x1.3 adds 0.3 x 0.2 = 0.06
    result = assess(RiskInputs(identity="x", as_of_ms=NOW, alerts=(alert(),), operation="payment"), CONFIG)
    criticality = next(f for f in result.factors if f.name == "operation_criticality")
    # the share as configured, exactly: 0.3, not 0.30000000000000004
    assert ("operation_criticality", 0.3, pytest.approx(0.2)) == (
        criticality.name, criticality.weight, criticality.value,
    )  # fmt: skip
    assert result.score == pytest.approx(0.26)
    assert score(alerts=(alert(),), operation="unknown-operation") == pytest.approx(0.2)


def test_combination_is_the_sum_of_the_parts() -> None:
    parts = {
        "alerts": (alert(),),
        "detector": DetectorScoreView(0.8, NOW),
        "history": tuple(event(h, "login", "DENY") for h in (1, 2, 3, 4, 5)),
    }
    alone = sum(score(**{key: value}) for key, value in parts.items())
    assert score(**parts) == pytest.approx(alone)
    assert score(**parts) == pytest.approx(0.2 + 0.12 + 0.05)


def test_above_one_every_weight_is_scaled_so_the_factors_still_add_up() -> None:
    saturated = {
        "alerts": tuple(alert(pattern=f"rule{i}") for i in range(5)),
        "detector": DetectorScoreView(1.0, NOW),
        "history": tuple(event(48 + h) for h in range(30))
        + tuple(event(1, "login", "DENY", country="RU", device="curl") for _ in range(25)),
    }
    result = assess(RiskInputs(identity="x", as_of_ms=NOW, operation="admin_operation", **saturated), CONFIG)
    base = {f.name: f for f in result.factors}
    assert result.score == pytest.approx(1.0)
    assert math.fsum(f.weight * f.value for f in result.factors) == pytest.approx(result.score, abs=1e-12)
    # unscaled total = m x base; every weight is divided by it
    raw_base = base["operation_criticality"].value
    total = 1.5 * raw_base
    assert base["operation_criticality"].weight == pytest.approx(0.5 / total)
    assert base["active_alerts"].weight == pytest.approx(0.3 / total)
    assert "critical" == result.level


def test_selected_factors_are_renormalised_to_sum_to_one() -> None:
    history = tuple(event(h, "login", "DENY") for h in range(5))
    result = assess(
        RiskInputs(identity="x", as_of_ms=NOW, history=history), CONFIG, ["deny_events", "failed_authentications"]
    )
    assert [("failed_authentications", 0.5, 0.5), ("deny_events", 0.5, 0.0)] == [
        (f.name, f.weight, f.value) for f in result.factors
    ]
    assert result.score == pytest.approx(0.25)


def test_unknown_factor_names_are_an_error_naming_them() -> None:
    with pytest.raises(ValidationError) as raised:
        assess(RiskInputs(identity="x", as_of_ms=NOW), CONFIG, ["deny_events", "karma", "luck"])
    assert "unknown: karma, luck" in raised.value.details["factors"]


@pytest.mark.parametrize(
    ("denials", "level"), [(0, "low"), (2, "low"), (3, "medium"), (5, "medium"), (6, "high"), (8, "critical")]
)
def test_levels_at_their_boundaries_end_to_end(denials: int, level: str) -> None:
    # one selected factor, weight 1: the score is denials / 10 exactly (0.3, 0.6, 0.8 land on the bound)
    history = tuple(event(1, "login", "DENY") for _ in range(denials))
    result = assess(RiskInputs(identity="x", as_of_ms=NOW, history=history), CONFIG, ["failed_authentications"])
    assert (denials / 10, level) == (result.score, result.level)


@pytest.mark.parametrize(
    ("value", "level"),
    [(0.0, "low"), (0.29999999, "low"), (0.3, "medium"), (0.59999999, "medium"), (0.6, "high"),
     (0.79999999, "high"), (0.8, "critical"), (1.0, "critical")],
)  # fmt: skip
def test_level_for_boundaries(value: float, level: str) -> None:
    assert level == level_for(value)


def test_same_inputs_same_answer() -> None:
    inputs = RiskInputs(identity="x", as_of_ms=NOW, alerts=(alert(), alert("high", age_h=5)), operation="payment")
    assert assess(inputs, CONFIG) == assess(inputs, CONFIG)


_alerts = st.builds(
    AlertView,
    severity=st.sampled_from(["low", "medium", "high", "critical", "odd"]),
    score=st.floats(0, 1),
    status=st.sampled_from(["active", "resolved", "dismissed"]),
    created_at_ms=st.just(NOW),
    updated_at_ms=st.integers(NOW - 30 * 24 * H, NOW + H),
    pattern=st.sampled_from(["anomaly", "brute_force", "spray", "probe"]),
    technique=st.none(),
)
_events = st.builds(
    HistoryEvent,
    occurred_at_ms=st.integers(NOW - 10 * 24 * H, NOW),
    category=st.builds(
        default_taxonomy().classify,
        st.sampled_from(["login", "user.signin", "download", "payment"]),
        st.just("module"),
        st.sampled_from(["ALLOW", "DENY", "WARN"]),
    ),
    ip=st.sampled_from(["1", "2", None]),
    country=st.sampled_from(["DE", "RU", None]),
    device=st.sampled_from(["web", "curl", None]),
)


@settings(max_examples=150, deadline=None)
@given(
    alerts=st.lists(_alerts, max_size=8),
    history=st.lists(_events, max_size=40),
    detector=st.none() | st.builds(DetectorScoreView, st.floats(0, 1), st.none() | st.integers(NOW - 48 * H, NOW)),
    operation=st.sampled_from([None, "payment", "admin_operation", "file_access", "other"]),
    context=st.builds(OperationContext, st.sampled_from([None, "1", "9"]), st.sampled_from([None, "DE", "FR"])),
    selected=st.none() | st.lists(st.sampled_from(FACTOR_NAMES), min_size=1, unique=True),
)
def test_factors_always_add_up_to_a_score_in_0_1(
    alerts: list[AlertView], history: list[HistoryEvent], detector: DetectorScoreView | None, operation: str | None,
    context: OperationContext, selected: list[str] | None,
) -> None:  # fmt: skip
    inputs = RiskInputs(identity="x", as_of_ms=NOW, alerts=tuple(alerts), detector=detector,
                        history=tuple(sorted(history, key=lambda e: e.occurred_at_ms)), operation=operation,
                        context=context)  # fmt: skip
    result = assess(inputs, CONFIG, selected)
    assert 0.0 <= result.score <= 1.0
    assert math.fsum(f.weight * f.value for f in result.factors) == pytest.approx(result.score, abs=1e-12)
    assert all(0.0 <= f.weight <= 1.0 and 0.0 <= f.value <= 1.0 for f in result.factors)
    assert level_for(result.score) == result.level


@pytest.mark.parametrize(("severity", "level", "floor"), [("high", "high", 0.6), ("critical", "critical", 0.8)])
def test_an_active_high_or_critical_alert_sets_the_level_floor(severity: str, level: str, floor: float) -> None:
    result = assess(RiskInputs(identity="x", as_of_ms=NOW, alerts=(alert(severity),)), SHIPPED)
    assert level == result.level
    # the floor, plus the alert's own active_alerts risk (0.3 x its decayed risk / 1.5) scaled into what is left
    alone = 0.3 * {"high": 0.75, "critical": 1.0}[severity] / 1.5
    assert floor + (1 - floor) * alone == pytest.approx(result.score)
    assert result.score == math.fsum(f.weight * f.value for f in result.factors)
    assert "severity_floor" == result.factors[-1].name


def test_behaviour_moves_a_floored_score_within_its_level() -> None:
    failed = tuple(event(h / 10, "login", "DENY") for h in range(10))
    floored = assess(RiskInputs(identity="x", as_of_ms=NOW, alerts=(alert("high"),)), SHIPPED)
    busier = assess(
        RiskInputs(identity="x", as_of_ms=NOW, alerts=(alert("high"),), history=failed, operation="admin_operation"),
        SHIPPED,
    )
    assert 0.6 < floored.score < busier.score
    assert ("high", pytest.approx(0.6 + 0.4 * 1.5 * (0.3 * 0.75 / 1.5 + 0.1))) == (busier.level, busier.score)
    assert busier.score == math.fsum(f.weight * f.value for f in busier.factors)


def test_the_floor_ends_with_the_alert_and_its_window() -> None:
    assert (
        "low"
        == assess(RiskInputs(identity="x", as_of_ms=NOW, alerts=(alert("high", status="resolved"),)), SHIPPED).level
    )
    stale = assess(RiskInputs(identity="x", as_of_ms=NOW, alerts=(alert("critical", age_h=169),)), SHIPPED)
    assert "low" == stale.level


def test_a_medium_alert_sets_no_floor() -> None:
    assert "low" == assess(RiskInputs(identity="x", as_of_ms=NOW, alerts=(alert("medium"),)), SHIPPED).level


def test_a_rule_alert_dated_just_after_now_still_counts() -> None:
    """ "Now" is the newest event time rounded to the minute; an alert stamped by an event of that minute must
    not drop out of rule_hits (it did when "now" was rounded down)."""
    just_after = AlertView("low", 0.0, "active", NOW + 30_000, NOW + 30_000, "brute_force", "T1110")
    assert contributions(alerts=(just_after,))["rule_hits"] == pytest.approx(0.1 / 3)
