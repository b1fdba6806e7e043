"""``qerberos detection evaluate``: replay labelled traffic through the whole path in a scratch home.

The events (the simulator's Parquet: ``id``, ``type``, ``ref``, ``squid_id``, ``sub_id``, ``dao_id``, ``layer``,
``verdict``, ``details``, ``occurred_at``) are appended to a fresh SQLite ledger in event-time order; live
detection (``pipelines.live_detection.LiveDetection``: incremental features, rules, the anomaly detector)
tails them as it would in service, its alerts dated in event time. The events go in ``step`` by ``step`` of
event time (default a minute: the service polls every half second, and an anomaly alert is dated by its
identity's newest event of the round, so a coarser step delays anomaly alerts; 15 minutes delayed two of nine
attackers' first alerts by 39-42 s on the simulator); after each step the risk service scores every identity
with events in it and every entity with an active alert, as the service would have then, and each entity's peak
is kept (its risk level in the report: how high the service rated it while it attacked).
``analytics.detection_report`` measures the result against the truth. The detector: the champion of
``tracking_uri`` (never the evaluated traffic).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import Any

import polars as pl

from analytics.detection_report import DetectionReport, attackers_of, report
from analytics.risk import load_config as load_risk_config
from models.alerts import AlertStore, AlertTables, create_alert_tables
from models.ledger import initialise
from models.risk_store import create_risk_tables
from pipelines.event_ingest import ingest_events
from pipelines.live_detection import LiveDetection
from pipelines.risk.service import RiskService
from qerberos.errors import ValidationError
from qerberos.settings import load_settings

__all__ = ["evaluate_detection"]

logger = logging.getLogger(__name__)


_STEP = re.compile(r"[1-9][0-9]*(s|m|h|d)")


class _Champion:
    """The watcher ``LiveDetection`` asks for its model: one loaded detector, never refreshed."""

    def __init__(self, detector: Any) -> None:
        self._detector = detector

    def current(self) -> Any:
        return self._detector

    def refresh(self) -> bool:
        return False


def evaluate_detection(
    events: pl.DataFrame, truth: pl.DataFrame, *, scratch: Path, tracking_uri: str | None, step: str = "1m"
) -> DetectionReport:
    """Replay ``events`` (see the module doc) and measure detection and risk against ``truth``."""
    if not _STEP.fullmatch(step):
        raise ValidationError("invalid step", details={"step": "a duration such as 30s, 1m, 15m or 1h"})
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
        detection = LiveDetection(ledger, _Champion(detector) if detector is not None else None)
        risk = RiskService(ledger.engine, load_risk_config(), alerts=AlertTables())
        store = AlertStore(ledger.engine)
        peaks: dict[str, tuple[str, float]] = {}
        ordered = events.sort("occurred_at", maintain_order=True).with_columns(
            _step=pl.col("occurred_at").dt.truncate(step)
        )
        try:
            for (_,), part in ordered.group_by("_step", maintain_order=True):
                ingest_events(ledger, part, source="evaluation")
                while detection.run_once():
                    pass
                touched = set(part["squid_id"].to_list()) | {
                    a.squid_id for a in store.list(status="active", limit=10_000)
                }
                for entity in touched:
                    assessment = risk.assess(entity)
                    if assessment.score >= peaks.get(entity, ("low", -1.0))[1]:
                        peaks[entity] = (assessment.level, assessment.score)
        finally:
            detection.stop()  # releases the detector lock it took as leader
        alerts = pl.DataFrame(
            [{"entity": a.squid_id, "technique": a.technique, "created_at_ms": a.created_at_ms}
             for a in store.list(limit=1_000_000)],
            schema={"entity": pl.String, "technique": pl.String, "created_at_ms": pl.Int64},
        )  # fmt: skip
        identities = sorted(events["squid_id"].unique().to_list())
        return report(attackers_of(events, truth), identities, alerts, peaks)
    finally:
        ledger.close()
