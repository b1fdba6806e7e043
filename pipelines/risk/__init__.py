"""The risk service: read an identity's inputs from the stores, score them (``analytics.risk``), keep the
history and record level changes in the ledger.

``build_risk_service(engine, ledger).assess(identity, operation=, context=, access=, factors=)`` reads the
identity's ledger rows (``history_cache.py`` keeps them between assessments), alerts and detector score
(``models.alerts.AlertTables``) in one read session, scores them with ``analytics.risk.assess``, keeps the
history (``models.risk_store``, written behind by ``writer.py``) and appends a level change to the ledger as
``risk.level.changed`` (``level_events.py``).
"""

from pipelines.risk.level_events import EVENT_NAME, LEDGER_TYPE, level_changed_event, risk_scored_payload
from pipelines.risk.service import AlertReader, NoAlerts, RiskService, build_risk_service

__all__ = [
    "EVENT_NAME",
    "LEDGER_TYPE",
    "AlertReader",
    "NoAlerts",
    "RiskService",
    "build_risk_service",
    "level_changed_event",
    "risk_scored_payload",
]
