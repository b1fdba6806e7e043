"""``qerberos detection evaluate``: replay labelled traffic through the whole path in a scratch home.

The events (the simulator's Parquet: ``id``, ``type``, ``ref``, ``squid_id``, ``sub_id``, ``dao_id``, ``layer``,
``verdict``, ``details``, ``occurred_at``) are appended to a fresh SQLite ledger in event-time order; live
detection (``pipelines.live_detection.LiveDetection``: incremental features, rules, the anomaly detector)
tails them as it would in service, its alerts dated in event time; then the risk service scores every
identity and every alerted address as of the newest event. ``analytics.detection_report`` measures the
result against the truth. The detector: the champion of ``tracking_uri`` (never the evaluated traffic).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import polars as pl

from analytics.detection_report import DetectionReport, attackers_of, report
from analytics.risk import load_config as load_risk_config
from models.alerts import AlertStore, AlertTables, create_alert_tables
from models.ledger import initialise
from models.records import NewEvent
from models.risk_store import create_risk_tables
from pipelines.live_detection import LiveDetection
from pipelines.risk.service import RiskService
from qerberos.settings import load_settings

__all__ = ["evaluate_detection"]

logger = logging.getLogger(__name__)
_BATCH = 5000


class _Champion:
    """The watcher ``LiveDetection`` asks for its model: one loaded detector, never refreshed."""

    def __init__(self, detector: Any) -> None:
        self._detector = detector

    def current(self) -> Any:
        return self._detector

    def refresh(self) -> bool:
        return False


def evaluate_detection(
    events: pl.DataFrame, truth: pl.DataFrame, *, scratch: Path, tracking_uri: str | None
) -> DetectionReport:
    """Replay ``events`` (see the module doc) and measure detection and risk against ``truth``."""
    from pipelines.model_registry import load_champion

    detector = load_champion(tracking_uri) if tracking_uri else None
    if detector is None:
        logger.warning("no champion detector: rules only")
    settings = dataclasses.replace(
        load_settings(), home=scratch, database_url=f"sqlite:///{scratch / 'qerberos.db'}", log_dir=scratch / "logs"
    )
    ledger = initialise(settings)
    try:
        create_alert_tables(ledger.engine)
        create_risk_tables(ledger.engine)
        ordered = events.sort("occurred_at", maintain_order=True)
        batch: list[NewEvent] = []
        for event in new_events(ordered, "evaluation"):
            batch.append(event)
            if len(batch) == _BATCH:
                ledger.append(batch)
                batch = []
        if batch:
            ledger.append(batch)
        detection = LiveDetection(ledger, _Champion(detector) if detector is not None else None)
        while detection.run_once():
            pass
        store = AlertStore(ledger.engine)
        alerts = pl.DataFrame(
            [{"entity": a.squid_id, "technique": a.technique, "created_at_ms": a.created_at_ms}
             for a in store.list(limit=1_000_000)],
            schema={"entity": pl.String, "technique": pl.String, "created_at_ms": pl.Int64},
        )  # fmt: skip
        risk = RiskService(ledger.engine, load_risk_config(), alerts=AlertTables())
        identities = sorted(events["squid_id"].unique().to_list())
        entities = sorted(set(identities) | set(alerts["entity"].to_list()))
        levels = {}
        for entity in entities:
            assessment = risk.assess(entity)
            levels[entity] = (assessment.level, assessment.score)
        return report(attackers_of(events, truth), identities, alerts, levels)
    finally:
        ledger.close()
