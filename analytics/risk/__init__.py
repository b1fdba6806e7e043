"""Explainable risk scores for identities and operations (issue 5).

``RiskService(engine, load_config(), ledger=..., alerts=AlertTables()).assess(identity, operation=,
context=, access=, factors=)`` reads the identity's ledger events (``history_cache.py`` keeps them between
assessments), alerts and detector score (``alerts.py``) in one transaction, scores them
with the pure factor functions (``factors.py``) combined by ``scoring.assess`` (the factors add up to the
score), keeps the history (``models.risk``) and records a level change as ``q.qerberos.risk.scored.v1``.
"""

from analytics.risk.config import ADDITIVE_FACTORS, DEFAULT_CONFIG, FACTOR_NAMES, RiskConfig, load_config
from analytics.risk.events import EVENT_NAME, LEDGER_TYPE, level_changed_event, risk_scored_payload
from analytics.risk.factors import AlertView, DetectorScoreView, HistoryEvent, OperationContext
from analytics.risk.history import AlertReader, NoAlerts
from analytics.risk.levels import LEVELS, Level, level_for
from analytics.risk.scoring import Factor, RiskAssessment, RiskInputs, assess, select_factors
from analytics.risk.service import RiskService

__all__ = [
    "ADDITIVE_FACTORS",
    "DEFAULT_CONFIG",
    "EVENT_NAME",
    "FACTOR_NAMES",
    "LEDGER_TYPE",
    "LEVELS",
    "AlertReader",
    "AlertView",
    "DetectorScoreView",
    "Factor",
    "HistoryEvent",
    "Level",
    "NoAlerts",
    "OperationContext",
    "RiskAssessment",
    "RiskConfig",
    "RiskInputs",
    "RiskService",
    "assess",
    "level_changed_event",
    "level_for",
    "load_config",
    "risk_scored_payload",
    "select_factors",
]
