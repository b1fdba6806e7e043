"""Explainable risk scores for identities and operations (issue 5): the computation.

The pure factor functions (``factors.py``) combined by ``scoring.assess`` (the factors add up to the score),
with the weights of ``config/risk.toml`` (``config.py``), over the identity's ledger rows as risk reads them
(``history.py``). ``pipelines.risk.RiskService`` reads the inputs, calls ``assess``, keeps the history and
records a level change as ``q.qerberos.risk.scored.v1``.
"""

from analytics.risk.config import ADDITIVE_FACTORS, FACTOR_NAMES, RiskConfig, load_config
from analytics.risk.factors import CONTEXT_KEYS, AlertView, DetectorScoreView, HistoryEvent, OperationContext
from analytics.risk.levels import LEVELS, Level, level_for
from analytics.risk.scoring import Factor, RiskAssessment, RiskInputs, assess, select_factors

__all__ = [
    "ADDITIVE_FACTORS",
    "CONTEXT_KEYS",
    "FACTOR_NAMES",
    "LEVELS",
    "AlertView",
    "DetectorScoreView",
    "Factor",
    "HistoryEvent",
    "Level",
    "OperationContext",
    "RiskAssessment",
    "RiskConfig",
    "RiskInputs",
    "assess",
    "level_for",
    "load_config",
    "select_factors",
]
