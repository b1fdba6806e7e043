"""How well detection and risk did on labelled traffic: per attacker, alerted or not, how soon, with which
technique, at which final risk level; benign identities alerted; alerts per attacker and per benign identity;
the ROC-AUC of identity risk. Pure computation over the replay's alerts and risk (``pipelines.detection_evaluation``).

Truth: one row per attack event (the simulator's labels: ``squid_id``, ``technique``, ``attack_id``,
``occurred_at``), or one row per identity (``squid_id``, ``technique``; ``benign`` or empty for benign ones).
An *attacker* is one attack (``attack_id``; else one labelled identity). It is alerted when an alert on one of
its entities was raised at or after its first attack event (event time). Its entities are the identities its
events belong to and the source addresses they came from, except for an attack whose events belong to several
identities (a password spray: one address trying many accounts): its actor is the address, and the identities
are its *targets*, neither attackers nor benign. Their own alerts are counted apart (``targets_alerted``), and
they stay out of the ROC-AUC of identity risk, which ranks attacking identities against benign ones.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
from sklearn.metrics import roc_auc_score

from analytics.entities import address_entity
from analytics.risk.levels import rank

__all__ = ["Attacker", "AttackerResult", "DetectionReport", "attackers_of", "report", "table"]

BENIGN = "benign"


@dataclasses.dataclass(frozen=True, slots=True)
class Attacker:
    name: str
    technique: str
    first_ms: int
    entities: frozenset[str]
    identities: frozenset[str]  # the attacking identities (none for a spray)
    targets: frozenset[str] = frozenset()  # the identities a spray tried


@dataclasses.dataclass(frozen=True, slots=True)
class AttackerResult:
    attacker: str
    technique: str
    alerted: bool
    delay_seconds: float | None
    techniques_named: tuple[str, ...]
    risk_level: str
    alerts: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"techniques_named": list(self.techniques_named)}


@dataclasses.dataclass(frozen=True, slots=True)
class DetectionReport:
    attackers: tuple[AttackerResult, ...]
    benign_identities: int
    benign_alerted: int
    targets: int
    targets_alerted: int
    alerts_per_attacker: float
    alerts_per_benign_identity: float
    risk_roc_auc: float | None
    high_or_above: float
    median_delay_seconds: float | None

    def to_json(self) -> dict[str, Any]:
        summary = {k: v for k, v in dataclasses.asdict(self).items() if k != "attackers"}
        summary["benign_alerted_share"] = self.benign_alerted / self.benign_identities if self.benign_identities else 0
        return {"summary": summary, "attackers": [a.to_json() for a in self.attackers]}


def _ms(column: str) -> pl.Expr:
    return pl.col(column).dt.epoch("ms")


def attackers_of(events: pl.DataFrame, truth: pl.DataFrame) -> list[Attacker]:
    """The attackers of the module doc; ``events`` has ``id``, ``squid_id``, ``occurred_at``, ``details``."""
    truth = truth.filter(pl.col("technique").is_not_null() & (pl.col("technique") != BENIGN))
    if "id" in truth.columns:
        joined = truth.select("id", "technique", "attack_id").join(
            events.select("id", "squid_id", "occurred_at", "details"), on="id", how="inner"
        )
        group = "attack_id"
    else:
        joined = truth.select("squid_id", "technique").join(
            events.select("squid_id", "occurred_at", "details"), on="squid_id", how="inner"
        )
        group = "squid_id"
    joined = joined.with_columns(ip=pl.col("details").str.json_path_match("$.ip"))
    attackers = []
    for key, part in joined.group_by(group, maintain_order=True):
        identities = frozenset(part["squid_id"].to_list())
        addresses = frozenset(address_entity(ip) for ip in part["ip"].drop_nulls().unique().to_list())
        spray = group == "attack_id" and len(identities) > 1 and bool(addresses)
        attackers.append(
            Attacker(
                name=str(key[0]),
                technique=str(part["technique"][0]),
                first_ms=int(part.select(_ms("occurred_at").min()).item()),
                entities=addresses if spray else identities | addresses,
                identities=frozenset() if spray else identities,
                targets=identities if spray else frozenset(),
            )
        )
    return attackers


def report(
    attackers: Sequence[Attacker],
    identities: Sequence[str],
    alerts: pl.DataFrame,
    levels: Mapping[str, tuple[str, float]],
) -> DetectionReport:
    """``alerts``: ``entity``, ``technique``, ``created_at_ms``; ``levels``: entity -> (risk level, score)."""
    attacked = {identity for a in attackers for identity in a.identities}
    targets = {identity for a in attackers for identity in a.targets} - attacked
    benign = [identity for identity in identities if identity not in attacked and identity not in targets]
    results = []
    claimed: set[int] = set()
    rows = list(alerts.iter_rows(named=True))
    for attacker in attackers:
        mine = [
            (i, row) for i, row in enumerate(rows)
            if row["entity"] in attacker.entities and row["created_at_ms"] >= attacker.first_ms
        ]  # fmt: skip
        claimed.update(i for i, _ in mine)
        first = min((row["created_at_ms"] for _, row in mine), default=None)
        entity_levels = [levels.get(e, ("low", 0.0))[0] for e in attacker.entities]
        results.append(
            AttackerResult(
                attacker=attacker.name,
                technique=attacker.technique,
                alerted=first is not None,
                delay_seconds=None if first is None else (first - attacker.first_ms) / 1000,
                techniques_named=tuple(sorted({row["technique"] for _, row in mine if row["technique"]})),
                risk_level=max(entity_levels, key=rank, default="low"),
                alerts=len(mine),
            )
        )
    benign_set = set(benign)
    benign_alerts = [row for row in rows if row["entity"] in benign_set]
    scores = [levels.get(i, ("low", 0.0))[1] for i in (*attacked, *benign)]
    truth = [1] * len(attacked) + [0] * len(benign)
    delays = sorted(r.delay_seconds for r in results if r.delay_seconds is not None)
    return DetectionReport(
        attackers=tuple(results),
        benign_identities=len(benign),
        benign_alerted=len({row["entity"] for row in benign_alerts}),
        targets=len(targets),
        targets_alerted=len({row["entity"] for row in rows if row["entity"] in targets}),
        alerts_per_attacker=sum(r.alerts for r in results) / len(results) if results else 0.0,
        alerts_per_benign_identity=len(benign_alerts) / len(benign) if benign else 0.0,
        risk_roc_auc=float(roc_auc_score(truth, scores)) if attacked and benign else None,
        high_or_above=sum(rank(r.risk_level) >= rank("high") for r in results) / len(results) if results else 0.0,
        median_delay_seconds=delays[len(delays) // 2] if delays else None,
    )


def table(result: DetectionReport) -> str:
    """The report as a plain-text table (one line per attacker, then the summary)."""
    lines = [f"{'attacker':24} {'technique':10} {'alerted':8} {'delay s':>9} {'named':16} {'risk':9} alerts"]
    for a in result.attackers:
        delay = "-" if a.delay_seconds is None else f"{a.delay_seconds:.0f}"
        lines.append(
            f"{a.attacker[:24]:24} {a.technique:10} {a.alerted!s:8} {delay:>9} "
            f"{','.join(a.techniques_named)[:16]:16} {a.risk_level:9} {a.alerts}"
        )
    summary = result.to_json()["summary"]
    lines += [f"{key}: {value:.4g}" if isinstance(value, float) and not math.isnan(value) else f"{key}: {value}"
              for key, value in summary.items()]  # fmt: skip
    return "\n".join(lines)
