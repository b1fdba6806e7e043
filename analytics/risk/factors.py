"""Each risk factor as a small pure function: inputs -> a value in 0..1.

A factor's contribution to the score is ``weight x value`` (``scoring.py``); nothing here reads a database
or a clock: "now" (``now_ms``) is always an argument, so the same inputs give the same value.

Inputs are plain values: :class:`AlertView` (what risk reads of an alert, the TEAM.md alerts contract),
:class:`HistoryEvent` (one of the identity's ledger events) and :class:`OperationContext`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from analytics.risk.levels import level_floor
from analytics.taxonomy import Category

_HOUR_MS = 3_600_000
_DAY_HOURS = 24
ANOMALY_PATTERN = "anomaly"


@dataclasses.dataclass(frozen=True, slots=True)
class AlertView:
    """An alert of the identity as risk sees it (``models.alerts`` rows adapt to this)."""

    severity: str
    score: float
    status: str
    created_at_ms: int
    updated_at_ms: int
    pattern: str
    technique: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class DetectorScoreView:
    score: float
    window_start_ms: int | None  # None: the age is unknown, no decay


class HistoryEvent(msgspec.Struct, frozen=True):
    """One ledger event of the identity: time, category (``analytics.taxonomy``) and the access details risk
    uses. A Struct: an assessment builds its ~100 of them from the history cache, 4x faster than a frozen
    dataclass."""

    occurred_at_ms: int
    category: Category
    ip: str | None = None
    country: str | None = None
    device: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class OperationContext:
    """Where the assessed operation comes from (each None when the caller did not say)."""

    ip: str | None = None
    country: str | None = None
    device: str | None = None

    @classmethod
    def of_request(cls, context: Mapping[str, Any] | None) -> OperationContext:
        """From a ``RiskScoreRequest.context``: the first of each field's keys (``CONTEXT_KEYS``) present."""
        if not context:
            return cls()
        found = {field: next((context[k] for k in keys if k in context), None) for field, keys in CONTEXT_KEYS.items()}
        return cls(**found)


CONTEXT_KEYS = {"ip": ("ipAddress", "ip"), "country": ("country",), "device": ("deviceId", "device")}
"""The keys of a ``RiskScoreRequest.context`` that name each field of ``OperationContext``, preferred first."""


def decay(age_ms: int, half_life_ms: int) -> float:
    """``0.5 ** (age / half_life)``; an age below 0 (a clock ahead of "now") counts as 0."""
    return float(0.5 ** (max(0, age_ms) / half_life_ms))


def saturating(count: float, saturation: float) -> float:
    """``min(1, count / saturation)``."""
    return min(1.0, count / saturation)


def alert_risk(alert: AlertView, now_ms: int, severity_weights: Mapping[str, float], half_life_ms: int) -> float:
    """One alert's risk now: ``max(severity weight, alert score) x decay(now - updated_at)``."""
    base = max(severity_weights.get(alert.severity, 0.0), min(1.0, max(0.0, alert.score)))
    return base * decay(now_ms - alert.updated_at_ms, half_life_ms)


def active_alerts(
    alerts: Iterable[AlertView],
    now_ms: int,
    *,
    severity_weights: Mapping[str, float],
    half_life_ms: int,
    saturation: float,
    max_alerts: int,
) -> float:
    """Elastic's entity risk: active alerts sorted by risk, the i-th counting ``1 / i**1.5``; then
    ``min(1, sum / saturation)``. Resolved and dismissed alerts do not count at all."""
    risks = sorted(
        (alert_risk(a, now_ms, severity_weights, half_life_ms) for a in alerts if a.status == "active"),
        reverse=True,
    )[:max_alerts]
    total = sum(risk / rank**1.5 for rank, risk in enumerate(risks, start=1))
    return saturating(total, saturation)


def rule_hits(alerts: Iterable[AlertView], now_ms: int, *, window_ms: int, saturation: float) -> float:
    """Breadth: how many distinct rules (patterns other than ``anomaly``) have an active alert updated within
    the window, ``min(1, n / saturation)``. An alert dated after ``now`` (stamped by an event newer than the
    snapshot) counts: it exists."""
    rules = {
        a.pattern
        for a in alerts
        if a.status == "active" and a.pattern != ANOMALY_PATTERN and now_ms - a.updated_at_ms <= window_ms
    }
    return saturating(len(rules), saturation)


def severity_floor(alerts: Iterable[AlertView], now_ms: int, *, severities: Collection[str], window_ms: int) -> float:
    """The lower bound of the highest level named by an active alert of ``severities`` (``high`` -> 0.6,
    ``critical`` -> 0.8) updated within the window (event time); 0 without one. An identity with such an
    alert is at least at that level, whatever its other factors."""
    return max(
        (
            level_floor(a.severity)
            for a in alerts
            if a.status == "active" and a.severity in severities and now_ms - a.updated_at_ms <= window_ms
        ),
        default=0.0,
    )


def detector_score(latest: DetectorScoreView | None, now_ms: int, *, half_life_ms: int) -> float:
    """The newest detector score of the identity, decayed by the age of its window."""
    if latest is None:
        return 0.0
    score = min(1.0, max(0.0, latest.score))
    if latest.window_start_ms is None:
        return score
    return score * decay(now_ms - latest.window_start_ms, half_life_ms)


def _recent(history: Iterable[HistoryEvent], now_ms: int, window_ms: int) -> list[HistoryEvent]:
    return [e for e in history if now_ms - window_ms < e.occurred_at_ms <= now_ms]


def failed_authentications(history: Iterable[HistoryEvent], now_ms: int, *, window_ms: int, saturation: float) -> float:
    """Failed sign-ins (``Category.is_sign_in``, status failure) within ``(now - window, now]``."""
    recent = _recent(history, now_ms, window_ms)
    count = sum(1 for e in recent if e.category.status == "failure" and e.category.is_sign_in())
    return saturating(count, saturation)


def deny_events(history: Iterable[HistoryEvent], now_ms: int, *, window_ms: int, saturation: float) -> float:
    """Failures of every other event within ``(now - window, now]`` (sign-ins count above)."""
    recent = _recent(history, now_ms, window_ms)
    count = sum(1 for e in recent if e.category.status == "failure" and not e.category.is_sign_in())
    return saturating(count, saturation)


def unfamiliar_access(history: Sequence[HistoryEvent], now_ms: int, *, window_ms: int, saturation: float) -> float:
    """Recent events from a country or device the identity never used before the window. An identity
    with no earlier events has no baseline and scores 0 here (``new_*`` judge single operations)."""
    start = now_ms - window_ms
    earlier = [e for e in history if e.occurred_at_ms <= start]
    if not earlier:
        return 0.0
    countries = {e.country for e in earlier if e.country is not None}
    devices = {e.device for e in earlier if e.device is not None}
    count = sum(
        1
        for e in _recent(history, now_ms, window_ms)
        if (e.country is not None and e.country not in countries) or (e.device is not None and e.device not in devices)
    )
    return saturating(count, saturation)


def never_seen(value: str | None, seen: Iterable[str | None]) -> float:
    """1 when the operation names a value (country, IP, device) the identity's history never shows."""
    if value is None:
        return 0.0
    return 0.0 if value in set(seen) else 1.0


def off_hours(history: Sequence[HistoryEvent], now_ms: int, *, min_history: int, min_share: float) -> float:
    """1 when the hour of ``now`` (UTC, +-1 h) holds less than ``min_share`` of the identity's earlier
    events; 0 with fewer than ``min_history`` events (no usual hours to compare with)."""
    earlier = [e.occurred_at_ms for e in history if e.occurred_at_ms <= now_ms]
    if len(earlier) < min_history:
        return 0.0
    hour = (now_ms // _HOUR_MS) % _DAY_HOURS
    near = {(hour - 1) % _DAY_HOURS, hour, (hour + 1) % _DAY_HOURS}
    share = sum(1 for t in earlier if (t // _HOUR_MS) % _DAY_HOURS in near) / len(earlier)
    return 1.0 if share < min_share else 0.0
