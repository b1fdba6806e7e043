"""Known attack patterns as rules over the event stream, each mapped to its MITRE ATT&CK technique.

Thresholds live in ``config/rules.toml`` (see the comments there for every key). ``RuleEngine.observe``
takes one event at a time (in ``seq`` order, as live detection reads the ledger) and returns the rules it
made fire. Rules select events by their category (``analytics.taxonomy``: class, activity, status), never by
their type name, so every module's sign-ins meet the same brute-force rule. Time is the events' own
``occurred_at``: a replay of history fires the same hits as live traffic.

A rule fires when its measure (events, distinct refs or distinct identities within ``window_seconds``)
reaches ``threshold``, again each time the measure doubles, and re-arms once the window drains below the
threshold, so a 500-event bulk download raises a handful of hits, not 450.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from analytics.config_file import config_path, read_toml
from analytics.entities import address_entity
from analytics.live_events import LiveEvent
from analytics.taxonomy import STATUS_IDS, Taxonomy, default_taxonomy
from qerberos.errors import ConfigurationError

__all__ = [
    "AnomalySettings",
    "DetectionConfig",
    "LiveSettings",
    "RuleEngine",
    "RuleHit",
    "RuleSpec",
    "load_detection_config",
]

RuleKind = Literal["count", "spray", "privilege", "off_hours", "new_location"]
_KINDS = ("count", "spray", "privilege", "off_hours", "new_location")
_SEVERITIES = ("low", "medium", "high", "critical")
MAX_LISTED = 50  # accounts (or other values) an alert's evidence lists; the count is always given


@dataclasses.dataclass(frozen=True, slots=True)
class RuleSpec:
    name: str
    kind: RuleKind
    technique: str
    severity: str
    threshold: int
    window_seconds: float
    classes: frozenset[str] = frozenset()  # taxonomy class names (analytics.taxonomy); empty: any class
    activities: frozenset[str] = frozenset()  # activity names of those classes; empty: any activity
    statuses: frozenset[str] = frozenset()  # success, failure, other, unknown; empty: any status
    layers: frozenset[str] = frozenset()  # empty: any layer
    distinct: str | None = None  # "ref": count distinct refs instead of events
    min_history: int = 20
    usual_hour_share: float = 0.02
    alerts_as: str = ""  # the pattern its alerts carry (another rule's, to watch one attack at a slower pace)

    @property
    def pattern(self) -> str:
        return self.alerts_as or self.name

    def matches(self, event: LiveEvent) -> bool:
        return (
            (not self.classes or event.category.class_key in self.classes)
            and (not self.activities or event.category.activity in self.activities)
            and (not self.statuses or event.category.status in self.statuses)
            and (not self.layers or event.layer in self.layers)
        )


@dataclasses.dataclass(frozen=True, slots=True)
class RuleHit:
    rule: str
    technique: str
    severity: str
    squid_id: str
    occurred_at_ms: int
    value: int
    threshold: int
    description: str
    evidence: Mapping[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class AnomalySettings:
    min_confidence: float = 0.9999
    high_confidence: float = 0.99999
    corroborated_confidence: float = 0.995  # enough when a rule hit the identity within the window (then high)
    explain_top: int = 5
    # feature -> ATT&CK technique an anomaly alert names (``analytics.alert_evidence.technique_of``)
    techniques: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class LiveSettings:
    window: str = "1h"
    poll_seconds: float = 0.5
    refresh_seconds: float = 30.0
    batch_rows: int = 5000
    keep_windows: int = 3
    leader_retry_seconds: float = 5.0


@dataclasses.dataclass(frozen=True, slots=True)
class DetectionConfig:
    rules: tuple[RuleSpec, ...]
    anomaly: AnomalySettings = AnomalySettings()
    live: LiveSettings = LiveSettings()
    taxonomy: Taxonomy = dataclasses.field(default_factory=default_taxonomy)  # classifies the events rules read


def _spec(name: str, raw: Mapping[str, Any], path: Path) -> RuleSpec:
    kind = raw.get("kind", "count")
    problems = []
    if kind not in _KINDS:
        problems.append(f"kind must be one of {_KINDS}")
    if raw.get("severity", "medium") not in _SEVERITIES:
        problems.append(f"severity must be one of {_SEVERITIES}")
    if not str(raw.get("technique", "")).startswith("T"):
        problems.append("technique must be an ATT&CK id (T....)")
    if int(raw.get("threshold", 0)) < 1 or float(raw.get("window_seconds", 0)) <= 0:
        problems.append("threshold >= 1 and window_seconds > 0 are required")
    if {"types", "verdicts"} & set(raw):
        problems.append("types and verdicts are no longer read: name classes, activities and statuses of the taxonomy")
    if problems:
        raise ConfigurationError(f"{path}: rule {name} is invalid", details={"problems": problems})
    return RuleSpec(
        name=name,
        kind=kind,
        technique=str(raw["technique"]),
        severity=str(raw.get("severity", "medium")),
        threshold=int(raw["threshold"]),
        window_seconds=float(raw["window_seconds"]),
        classes=frozenset(raw.get("classes", ())),
        activities=frozenset(raw.get("activities", ())),
        statuses=frozenset(raw.get("statuses", ())),
        layers=frozenset(raw.get("layers", ())),
        distinct=raw.get("distinct"),
        min_history=int(raw.get("min_history", 20)),
        usual_hour_share=float(raw.get("usual_hour_share", 0.02)),
        alerts_as=str(raw.get("alerts_as", "")),
    )


def _check_categories(rule: RuleSpec, taxonomy: Taxonomy, path: Path) -> None:
    """A class or activity the taxonomy does not name would never match: refuse it."""
    unknown = sorted(rule.classes - set(taxonomy.classes))
    named = [taxonomy.classes[key] for key in rule.classes if key in taxonomy.classes]
    classes = named if rule.classes else list(taxonomy.classes.values())
    unknown += sorted(rule.activities - {name for c in classes for name in c.activities})
    unknown += sorted(rule.statuses - set(STATUS_IDS))
    if unknown:
        raise ConfigurationError(
            f"{path}: rule {rule.name} names categories the taxonomy lacks",
            details={"unknown": unknown, "taxonomy": taxonomy.source},
        )


def load_detection_config(path: Path | str | None = None, taxonomy: Taxonomy | None = None) -> DetectionConfig:
    """Read ``rules.toml`` (``path``, else the one in force): the rules, the ``[anomaly]`` alerting and the
    ``[live]`` engine settings. The rules' categories are checked against ``taxonomy`` (the ``taxonomy.toml``
    in force by default)."""
    path = config_path(path, "rules.toml")
    raw = read_toml(path, "rules")
    taxonomy = taxonomy or default_taxonomy()
    rules = tuple(_spec(name, spec, path) for name, spec in raw.get("rules", {}).items())
    for rule in rules:
        _check_categories(rule, taxonomy, path)
        if rule.alerts_as and rule.alerts_as not in {other.name for other in rules}:
            raise ConfigurationError(f"{path}: rule {rule.name} alerts as {rule.alerts_as!r}, which is no rule")
    try:
        anomaly = AnomalySettings(**raw.get("anomaly", {}))
        live = LiveSettings(**raw.get("live", {}))
    except TypeError as exc:
        raise ConfigurationError(f"{path}: unknown key in [anomaly] or [live]: {exc}") from exc
    return DetectionConfig(rules, anomaly, live, taxonomy)


class _Window:
    """Timestamped items within ``span`` ms of the newest; measures events or distinct keys."""

    __slots__ = ("counts", "items", "newest", "next_fire", "span")

    def __init__(self, span_ms: int, threshold: int) -> None:
        self.span = span_ms
        # (time, key, ledger seq); the key is None where only events are counted, and then not in ``counts``:
        # a key per event (its seq) cost a string and a Counter entry for each event of the window
        self.items: collections.deque[tuple[int, str | None, int]] = collections.deque()
        self.counts: collections.Counter[str] = collections.Counter()  # distinct keys in the window
        self.next_fire = threshold
        self.newest = 0

    def add(self, at_ms: int, key: str | None, seq: int) -> None:
        self.items.append((at_ms, key, seq))
        if key is not None:
            self.counts[key] += 1
        self.newest = max(self.newest, at_ms)
        horizon = self.newest - self.span
        while self.items and self.items[0][0] <= horizon:
            _, old, _ = self.items.popleft()
            if old is not None:
                self.counts[old] -= 1
                if not self.counts[old]:
                    del self.counts[old]

    def linked(self) -> dict[str, Any]:
        """The ledger sequence numbers of the events in the window (the newest ``MAX_LISTED``) and their count:
        an inclusion proof can be asked for each."""
        seqs = [seq for _, _, seq in self.items]
        return {"sequenceNumbers": seqs[-MAX_LISTED:], "eventCount": len(seqs)}

    def measure(self, distinct: bool) -> int:
        return len(self.counts) if distinct else len(self.items)

    def check(self, value: int, threshold: int) -> bool:
        """True when ``value`` reaches the next firing level (then the level doubles)."""
        if value < threshold:
            self.next_fire = threshold
            return False
        if value >= self.next_fire:
            self.next_fire = max(self.next_fire * 2, value + 1)
            return True
        return False


@dataclasses.dataclass(slots=True)
class _Identity:
    total: int = 0
    hours: list[int] = dataclasses.field(default_factory=lambda: [0] * 24)
    countries: set[str] = dataclasses.field(default_factory=set)
    first_allowed_ms: dict[str, int] = dataclasses.field(default_factory=dict)  # rule -> first ALLOW match
    last_hit_ms: int = -1  # event time of the newest rule hit on the identity itself


def _counts(rule: RuleSpec, event: LiveEvent, who: _Identity) -> bool:
    """Whether ``event`` counts towards ``rule``'s measure, given what came before of its identity (``who``); a
    ``privilege`` rule also remembers the identity's first allowed use of the right."""
    at = event.occurred_at_ms
    if rule.kind == "privilege":
        first = who.first_allowed_ms.get(rule.name)
        if first is not None and first < at - rule.window_seconds * 1000:
            return False  # the identity held this right before the window: an admin, not an escalation
        if event.category.status == "success" and first is None:
            who.first_allowed_ms[rule.name] = at
        return True
    if rule.kind == "off_hours":
        hour = (at // 3_600_000) % 24
        return who.total >= rule.min_history and who.hours[hour] < rule.usual_hour_share * who.total
    if rule.kind == "new_location":
        return event.country is not None and event.country not in who.countries and who.total >= rule.min_history
    return True


class RuleEngine:
    """Evaluates every rule on each observed event; keeps only bounded per-identity state."""

    def __init__(self, rules: Iterable[RuleSpec]) -> None:
        self.rules = tuple(rules)
        self._windows: dict[tuple[str, str], _Window] = {}
        self._identities: dict[str, _Identity] = collections.defaultdict(_Identity)

    def observe(self, event: LiveEvent) -> list[RuleHit]:
        who = self._identities[event.squid_id]
        hits: list[RuleHit] = []
        for rule in self.rules:
            if rule.matches(event):
                hits.extend(self._evaluate(rule, event, who))
        if any(hit.squid_id == event.squid_id for hit in hits):
            who.last_hit_ms = max(who.last_hit_ms, event.occurred_at_ms)
        who.total += 1
        who.hours[(event.occurred_at_ms // 3_600_000) % 24] += 1
        if event.country:
            who.countries.add(event.country)
        return hits

    def hit_since(self, squid_id: str, at_ms: int) -> bool:
        """Whether a rule hit the identity ``squid_id`` itself at or after ``at_ms`` (event time)."""
        who = self._identities.get(squid_id)
        return who is not None and who.last_hit_ms >= at_ms

    def spraying_addresses(self, squid_id: str, at_ms: int) -> frozenset[str]:
        """The source addresses of the sprays (``spray`` rules at or past their threshold, their newest event
        within a window of ``at_ms``) that list ``squid_id`` among the accounts they tried."""
        sprays = {rule.name: rule.threshold for rule in self.rules if rule.kind == "spray"}
        return frozenset(
            address
            for (name, address), window in self._windows.items()
            if name in sprays
            and squid_id in window.counts
            and len(window.counts) >= sprays[name]
            and window.newest >= at_ms - window.span
        )

    def _window(self, rule: RuleSpec, key: str) -> _Window:
        window = self._windows.get((rule.name, key))
        if window is None:
            window = self._windows[rule.name, key] = _Window(int(rule.window_seconds * 1000), rule.threshold)
        return window

    def _evaluate(self, rule: RuleSpec, event: LiveEvent, who: _Identity) -> list[RuleHit]:
        at = event.occurred_at_ms
        if rule.kind == "spray":
            return self._spray(rule, event)
        if not _counts(rule, event, who):
            return []
        window = self._window(rule, event.squid_id)
        window.add(at, event.ref if rule.distinct == "ref" else None, event.seq)
        value = window.measure(rule.distinct == "ref")
        if not window.check(value, rule.threshold):
            return []
        evidence: dict[str, Any] = {
            "value": value, "threshold": rule.threshold, "windowSeconds": rule.window_seconds, **window.linked()
        }  # fmt: skip
        if rule.distinct == "ref":
            evidence["resources"] = sorted(window.counts)[:MAX_LISTED]
        if rule.kind == "new_location":
            evidence["country"] = event.country
        if event.ip:
            evidence["ip"] = event.ip
        return [self._hit(rule, event.squid_id, at, value, evidence)]

    def _spray(self, rule: RuleSpec, event: LiveEvent) -> list[RuleHit]:
        """One hit for the source address (``analytics.entities``), listing the accounts it touched; again for
        each further account, which updates the address's one alert so that it lists them all."""
        if not event.ip:
            return []
        window = self._window(rule, event.ip)
        window.add(event.occurred_at_ms, event.squid_id, event.seq)
        value = window.measure(True)
        if not window.check(value, rule.threshold):
            return []
        window.next_fire = value + 1
        evidence = {
            "value": value, "threshold": rule.threshold, "windowSeconds": rule.window_seconds, "ip": event.ip,
            "accounts": sorted(window.counts)[:MAX_LISTED], "accountCount": value, **window.linked(),
        }  # fmt: skip
        return [self._hit(rule, address_entity(event.ip), event.occurred_at_ms, value, evidence)]

    @staticmethod
    def _hit(rule: RuleSpec, squid_id: str, at: int, value: int, evidence: Mapping[str, Any]) -> RuleHit:
        return RuleHit(
            rule=rule.pattern,
            technique=rule.technique,
            severity=rule.severity,
            squid_id=squid_id,
            occurred_at_ms=at,
            value=value,
            threshold=rule.threshold,
            description=_describe(rule, value),
            evidence=dict(evidence),
        )


def _describe(rule: RuleSpec, value: int) -> str:
    minutes = rule.window_seconds / 60
    span = f"{minutes:g} min" if minutes < 120 else f"{minutes / 60:g} h"
    what = {
        "count": "distinct resources denied" if rule.distinct == "ref" else "matching events",
        "spray": "identities denied sign-in from one address",
        "privilege": "privileged operations by an identity that held no such right",
        "off_hours": "privileged operations at an hour unusual for the identity",
        "new_location": "successful sign-ins from a country never used before",
    }[rule.kind]
    name = rule.name.replace("_", " ")
    return f"{name} ({rule.technique}): {value} {what} within {span} (threshold {rule.threshold})"
