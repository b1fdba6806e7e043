"""The evaluation report on hand-built alerts: a spray alerted on its address (its accounts its targets, not
attackers), a missed attacker, benign noise."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from analytics.detection_report import attackers_of, report, table

T0 = dt.datetime(2026, 1, 5, 8, tzinfo=dt.UTC)
T0_MS = int(T0.timestamp() * 1000)


def _events() -> pl.DataFrame:
    rows = [
        ("e1", "did:squid:v1", T0, '{"ip": "203.0.113.9"}'),
        ("e2", "did:squid:v2", T0 + dt.timedelta(seconds=5), '{"ip": "203.0.113.9"}'),
        ("e3", "did:squid:thief", T0 + dt.timedelta(minutes=1), '{"ip": "10.0.0.3"}'),
        ("e4", "did:squid:alice", T0, '{"ip": "10.0.0.1"}'),
        ("e5", "did:squid:bob", T0, None),
    ]
    return pl.DataFrame(rows, schema=["id", "squid_id", "occurred_at", "details"], orient="row")


def test_attackers_their_delay_risk_and_the_benign_noise():
    truth = pl.DataFrame({"id": ["e1", "e2", "e3"], "technique": ["T1110", "T1110", "T1530"], "attack_id": [1, 1, 2]})
    attackers = attackers_of(_events(), truth)
    assert ({"ip:203.0.113.9"}, set(), {"did:squid:v1", "did:squid:v2"}) == (
        set(attackers[0].entities),
        set(attackers[0].identities),
        set(attackers[0].targets),
    )
    assert {"did:squid:thief", "ip:10.0.0.3"} == set(attackers[1].entities)
    alerts = pl.DataFrame(
        {
            "entity": ["ip:203.0.113.9", "did:squid:alice", "did:squid:v2"],
            "technique": ["T1110", "T1078", "T1110"],
            "created_at_ms": [T0_MS + 30_000, T0_MS, T0_MS + 40_000],
        }
    )
    levels = {"ip:203.0.113.9": ("high", 0.7), "did:squid:v1": ("low", 0.2), "did:squid:v2": ("low", 0.25),
              "did:squid:thief": ("medium", 0.4), "did:squid:alice": ("low", 0.1)}  # fmt: skip
    identities = ["did:squid:alice", "did:squid:bob", "did:squid:thief", "did:squid:v1", "did:squid:v2"]
    result = report(attackers, identities, alerts, levels)
    spray, theft = result.attackers
    assert (True, 30.0, ("T1110",), "high", 1) == (
        spray.alerted,
        spray.delay_seconds,
        spray.techniques_named,
        spray.risk_level,
        spray.alerts,
    )
    assert (False, None, "medium") == (theft.alerted, theft.delay_seconds, theft.risk_level)
    assert (2, 1, 2, 1, 0.5, 0.5) == (
        result.benign_identities,
        result.benign_alerted,
        result.targets,
        result.targets_alerted,
        result.alerts_per_attacker,
        result.alerts_per_benign_identity,
    )
    assert pytest.approx(1.0) == result.risk_roc_auc  # the attacking identity outscores both benign ones
    assert 0.5 == result.high_or_above
    assert "benign_alerted_share: 0.5" in table(result)
