"""Combine the factors into one explainable score whose factors add up to it.

For the selected additive factors (``config.ADDITIVE_FACTORS``), the configured weights are renormalised
to sum to 1 over the selection, and each factor reports ``{name, weight, value}`` with ``value`` in 0..1.
Their sum ``base = sum(weight x value)`` lies in 0..1.

The operation's criticality multiplier ``m`` (1..2, Splunk RBA-style: admin x1.5) amplifies that risk;
it appears as the factor ``operation_criticality`` with ``weight = m - 1`` and ``value = base``, so its
contribution is ``(m - 1) x base`` and the total is ``m x base``. When the total exceeds 1, every weight
is scaled by ``1 / total`` (values untouched): the shares stay proportional and the sum is exactly 1.

An active high or critical alert (event time within ``floor_window``) sets a floor ``F``: the lowest score
of the level of the same name (0.6, 0.8). The score is then ``F + (1 - F) x (the score above)``: the factor
``severity_floor`` (weight ``F``, value 1) and every other factor's weight scaled by ``1 - F``. Such an
identity is at least "high", and behaviour and the operation's criticality still move it within and above
that level (Splunk's risk-based alerting likewise lets a notable's severity set the risk an object starts at).

So ``score == fsum(f.weight * f.value for f in factors)`` always holds (``score`` is computed that way
from the reported numbers, not beside them); numbers are not rounded, but for the multiplier's share, cut
to nine decimals (more than any configured multiplier needs).

Determinism: nothing here reads a clock. ``as_of_ms`` ("now") comes from the ledger (``history.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from analytics.risk import factors as f
from analytics.risk.config import ADDITIVE_FACTORS, FACTOR_NAMES, RiskConfig
from analytics.risk.levels import Level, level_for
from qerberos.errors import ValidationError

_MULTIPLIER_DIGITS = 9
_DESCRIPTIONS = {
    "active_alerts": "active alerts, rank-weighted (i-th counts 1/i^1.5) and decayed by age",
    "detector_score": "latest anomaly-detector score, decayed by age",
    "rule_hits": "distinct detection rules with an active recent alert",
    "failed_authentications": "failed sign-ins in the recent window",
    "deny_events": "other denied operations in the recent window",
    "unfamiliar_access": "recent events from a country or device unseen before",
    "new_country": "operation from a country never seen for this identity",
    "unknown_device": "operation from a device never seen for this identity",
    "new_ip": "operation from an IP address never seen for this identity",
    "off_hours": "operation outside the identity's usual hours",
    "operation_criticality": "criticality multiplier of the operation applied to the risk above",
    "severity_floor": "lifts the score to the level of the most severe active high or critical alert",
}


class Factor(msgspec.Struct, frozen=True):
    name: str
    weight: float
    value: float

    @property
    def contribution(self) -> float:
        return self.weight * self.value

    @property
    def description(self) -> str:
        return _DESCRIPTIONS.get(self.name, "")


class RiskInputs(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a score depends on: read once (``history.py``), then scored without I/O."""

    identity: str
    as_of_ms: int
    alerts: tuple[f.AlertView, ...] = ()
    detector: f.DetectorScoreView | None = None
    history: tuple[f.HistoryEvent, ...] = ()  # the identity's events up to as_of_ms, qerberos's own excluded
    operation: str | None = None
    context: f.OperationContext = f.OperationContext()


class RiskAssessment(msgspec.Struct, frozen=True, kw_only=True):
    identity: str
    score: float
    level: Level
    factors: tuple[Factor, ...]
    as_of_ms: int
    expires_at_ms: int
    operation: str | None
    model_version: str


def select_factors(names: Sequence[str] | None) -> tuple[str, ...]:
    """The factors a request asks for, in answer order; all of them when ``names`` is None.
    Unknown names raise ``ValidationError`` naming each of them."""
    if names is None:
        return FACTOR_NAMES
    unknown = [name for name in names if name not in FACTOR_NAMES]
    if unknown:
        raise ValidationError(
            "unknown risk factors",
            details={"factors": f"unknown: {', '.join(unknown)}; known: {', '.join(FACTOR_NAMES)}"},
        )
    chosen = set(names)
    return tuple(name for name in FACTOR_NAMES if name in chosen)


def factor_values(inputs: RiskInputs, config: RiskConfig) -> dict[str, float]:
    """The value (0..1) of every additive factor."""
    now, history, context = inputs.as_of_ms, inputs.history, inputs.context
    window = config.window_ms
    return {
        "active_alerts": f.active_alerts(
            inputs.alerts,
            now,
            severity_weights=config.severity_weights,
            half_life_ms=config.alert_half_life_ms,
            saturation=config.alert_saturation,
            max_alerts=config.max_alerts,
        ),
        "detector_score": f.detector_score(inputs.detector, now, half_life_ms=config.detector_half_life_ms),
        "rule_hits": f.rule_hits(
            inputs.alerts, now, window_ms=config.rule_window_ms, saturation=config.rule_saturation
        ),
        "failed_authentications": f.failed_authentications(
            history, now, window_ms=window, saturation=config.failed_auth_saturation
        ),
        "deny_events": f.deny_events(history, now, window_ms=window, saturation=config.deny_saturation),
        "unfamiliar_access": f.unfamiliar_access(
            history, now, window_ms=window, saturation=config.unfamiliar_saturation
        ),
        "new_country": f.never_seen(context.country, (e.country for e in history)),
        "unknown_device": f.never_seen(context.device, (e.device for e in history)),
        "new_ip": f.never_seen(context.ip, (e.ip for e in history)),
        "off_hours": (
            f.off_hours(history, now, min_history=config.off_hours_min_history, min_share=config.off_hours_min_share)
            if inputs.operation is not None
            else 0.0
        ),
    }


def assess(inputs: RiskInputs, config: RiskConfig, selected: Sequence[str] | None = None) -> RiskAssessment:
    """Score ``inputs`` over the ``selected`` factor names (all when None); see the module doc for the algebra."""
    names = select_factors(selected)
    additive = [name for name in names if name in ADDITIVE_FACTORS]
    values = factor_values(inputs, config)
    total_weight = math.fsum(config.weight(name) for name in additive)
    chosen: list[Factor] = []
    for name in additive:
        weight = config.weight(name) / total_weight if total_weight > 0 else 0.0
        chosen.append(Factor(name, weight, values[name]))
    base = min(1.0, math.fsum(x.contribution for x in chosen))
    if "operation_criticality" in names:
        # rounded to the multiplier's own precision: 1.3 - 1.0 is 0.30000000000000004 in binary floating point
        share = round(config.multiplier(inputs.operation) - 1.0, _MULTIPLIER_DIGITS)
        chosen.append(Factor("operation_criticality", share, base))
    total = math.fsum(x.contribution for x in chosen)
    if total > 1.0:
        chosen = [Factor(x.name, x.weight / total, x.value) for x in chosen]
    if "severity_floor" in names:
        floor = f.severity_floor(
            inputs.alerts, inputs.as_of_ms, severities=config.floor_severities, window_ms=config.floor_window_ms
        )
        chosen = [Factor(x.name, x.weight * (1.0 - floor), x.value) for x in chosen]
        chosen.append(Factor("severity_floor", floor, 1.0 if floor else 0.0))
    score = min(1.0, max(0.0, math.fsum(x.contribution for x in chosen)))
    return RiskAssessment(
        identity=inputs.identity,
        score=score,
        level=level_for(score),
        factors=tuple(chosen),
        as_of_ms=inputs.as_of_ms,
        expires_at_ms=inputs.as_of_ms + config.ttl_ms,
        operation=inputs.operation,
        model_version=config.model_version,
    )
