"""What ``config/risk.toml`` says: factor weights, half-lives, windows, saturations, operation multipliers."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from analytics.config_file import config_path, read_toml
from qerberos.errors import ConfigurationError

_HOUR_MS = 3_600_000

#: Every factor an answer can carry, in answer order. ``operation_criticality`` is the multiplier's share,
#: ``severity_floor`` what lifts the score to the level of an active high or critical alert.
FACTOR_NAMES: tuple[str, ...] = (
    "active_alerts",
    "detector_score",
    "rule_hits",
    "failed_authentications",
    "deny_events",
    "unfamiliar_access",
    "new_country",
    "unknown_device",
    "new_ip",
    "off_hours",
    "operation_criticality",
    "severity_floor",
)
ADDITIVE_FACTORS: tuple[str, ...] = FACTOR_NAMES[:-2]


def _frozen(mapping: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(mapping))


@dataclasses.dataclass(frozen=True, slots=True)
class RiskConfig:
    weights: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: _frozen(
            {
                "active_alerts": 0.30,
                "detector_score": 0.15,
                "rule_hits": 0.10,
                "failed_authentications": 0.10,
                "deny_events": 0.10,
                "unfamiliar_access": 0.10,
                "new_country": 0.05,
                "unknown_device": 0.04,
                "new_ip": 0.03,
                "off_hours": 0.03,
            }
        )
    )
    model_version: str = "1.0.0"
    ttl_ms: int = 900_000
    as_of_rounding_ms: int = 60_000
    floor_severities: frozenset[str] = frozenset({"high", "critical"})
    floor_window_ms: int = 168 * _HOUR_MS
    future_skew_ms: int = 300_000
    history_limit: int = 2000
    cache_rows: int = 2_000_000
    alert_half_life_ms: int = 72 * _HOUR_MS
    alert_saturation: float = 1.5
    max_alerts: int = 100
    rule_window_ms: int = 168 * _HOUR_MS
    rule_saturation: float = 3.0
    severity_weights: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: _frozen({"low": 0.25, "medium": 0.5, "high": 0.75, "critical": 1.0})
    )
    detector_half_life_ms: int = 24 * _HOUR_MS
    window_ms: int = 24 * _HOUR_MS
    failed_auth_saturation: float = 10.0
    deny_saturation: float = 20.0
    unfamiliar_saturation: float = 5.0
    off_hours_min_history: int = 20
    off_hours_min_share: float = 0.02
    operations: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: _frozen(
            {
                "admin_operation": 1.5,
                "permission_grant": 1.5,
                "identity_update": 1.4,
                "payment": 1.3,
                "transfer": 1.5,
                "file_share": 1.3,
                "file_access": 1.2,
                "download": 1.2,
            }
        )
    )
    default_multiplier: float = 1.0

    def __post_init__(self) -> None:
        problems: dict[str, str] = {}
        unknown = sorted(set(self.weights) - set(ADDITIVE_FACTORS))
        if unknown:
            problems["weights"] = f"unknown factors: {', '.join(unknown)}"
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            problems["weights"] = "weights must be >= 0 and not all 0"
        multipliers = {**self.operations, "default": self.default_multiplier}
        bad = sorted(name for name, m in multipliers.items() if not 1.0 <= m <= 2.0)
        if bad:
            problems["operations"] = f"multipliers must lie in 1..2: {', '.join(bad)}"
        for name in ("alert_saturation", "rule_saturation", "failed_auth_saturation", "deny_saturation",
                     "unfamiliar_saturation", "alert_half_life_ms", "detector_half_life_ms", "window_ms"):  # fmt: skip
            if getattr(self, name) <= 0:
                problems[name] = "must be > 0"
        if problems:
            raise ConfigurationError("invalid risk configuration", details=problems)

    def weight(self, name: str) -> float:
        return float(self.weights.get(name, 0.0))

    def multiplier(self, operation: str | None) -> float:
        if operation is None:
            return 1.0
        return float(self.operations.get(operation, self.default_multiplier))

    def replace(self, **changes: Any) -> RiskConfig:
        return dataclasses.replace(self, **changes)


def load_config(path: Path | str | None = None) -> RiskConfig:
    """Read and check a risk TOML file (``path``, else the ``risk.toml`` in force; every key optional)."""
    path = config_path(path, "risk.toml")
    raw = read_toml(path, "risk")
    try:
        return _from_mapping(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"invalid risk configuration {path}: {exc}") from exc


def _from_mapping(raw: Mapping[str, Any]) -> RiskConfig:
    base = RiskConfig()
    alerts = dict(raw.get("alerts", {}))
    detector = raw.get("detector", {})
    behaviour = raw.get("behaviour", {})
    context = raw.get("context", {})
    operations = {str(k): float(v) for k, v in raw.get("operations", {}).items()}
    default_multiplier = operations.pop("default", base.default_multiplier)
    severity = alerts.pop("severity", None)

    def hours(section: Mapping[str, Any], key: str, fallback_ms: int) -> int:
        return round(float(section[key]) * _HOUR_MS) if key in section else fallback_ms

    return RiskConfig(
        weights=_frozen({str(k): float(v) for k, v in raw["weights"].items()}) if "weights" in raw else base.weights,
        model_version=str(raw.get("model_version", base.model_version)),
        ttl_ms=round(float(raw.get("ttl_seconds", base.ttl_ms / 1000)) * 1000),
        as_of_rounding_ms=max(1, round(float(raw.get("as_of_rounding_seconds", 60)) * 1000)),
        future_skew_ms=round(float(raw.get("future_skew_seconds", 300)) * 1000),
        history_limit=int(raw.get("history_limit", base.history_limit)),
        cache_rows=int(raw.get("cache_rows", base.cache_rows)),
        alert_half_life_ms=hours(alerts, "half_life_hours", base.alert_half_life_ms),
        alert_saturation=float(alerts.get("saturation", base.alert_saturation)),
        max_alerts=int(alerts.get("max_alerts", base.max_alerts)),
        rule_window_ms=hours(alerts, "rule_window_hours", base.rule_window_ms),
        floor_severities=frozenset(alerts.get("floor_severities", base.floor_severities)),
        floor_window_ms=hours(alerts, "floor_window_hours", base.floor_window_ms),
        rule_saturation=float(alerts.get("rule_saturation", base.rule_saturation)),
        severity_weights=_frozen({str(k): float(v) for k, v in severity.items()})
        if severity
        else base.severity_weights,
        detector_half_life_ms=hours(detector, "half_life_hours", base.detector_half_life_ms),
        window_ms=hours(behaviour, "window_hours", base.window_ms),
        failed_auth_saturation=float(behaviour.get("failed_auth_saturation", base.failed_auth_saturation)),
        deny_saturation=float(behaviour.get("deny_saturation", base.deny_saturation)),
        unfamiliar_saturation=float(behaviour.get("unfamiliar_saturation", base.unfamiliar_saturation)),
        off_hours_min_history=int(context.get("off_hours_min_history", base.off_hours_min_history)),
        off_hours_min_share=float(context.get("off_hours_min_share", base.off_hours_min_share)),
        operations=_frozen(operations) if "operations" in raw else base.operations,
        default_multiplier=float(default_multiplier),
    )
