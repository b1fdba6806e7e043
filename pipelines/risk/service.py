"""``RiskService``: read the inputs, score, keep the history, and record level changes in the ledger.

It reads, in one read session of the ledger (``models.reader.ReadSession``): the ledger's snapshot, the
identity's history (``HistoryCache``), its active alerts and newest detector score (an ``AlertReader``,
``models.alerts.AlertTables`` when detection is installed) and its current level (``models.risk_store``); it
scores them with ``analytics.risk`` and stores the assessment (``RiskWriter`` when written behind).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Engine

from analytics.risk.config import ADDITIVE_FACTORS, RiskConfig, load_config
from analytics.risk.factors import AlertView, DetectorScoreView, OperationContext
from analytics.risk.scoring import RiskAssessment, RiskInputs, assess, select_factors
from analytics.taxonomy import Taxonomy, default_taxonomy
from models.alerts import ActiveAlert, AlertTables, LatestScore, create_alert_tables
from models.reader import LedgerReader, LedgerSnapshot, ReadSession
from models.records import LedgerAppender
from models.risk_store import CurrentRisk, LevelChange, RiskRecord, RiskStore, create_risk_tables, level_change
from pipelines.risk.history_cache import HistoryCache
from pipelines.risk.level_events import level_changed_event
from pipelines.risk.writer import RiskWriter
from qerberos.errors import LedgerError

logger = logging.getLogger(__name__)
_ALERT_FACTORS = frozenset({"active_alerts", "rule_hits", "severity_floor"})


class AlertReader(Protocol):
    """What the service reads of detection, in the session it reads the ledger with (``models.alerts.AlertTables``)."""

    def active_alerts(self, session: ReadSession, identity: str) -> Sequence[ActiveAlert]: ...

    def latest_score(self, session: ReadSession, identity: str) -> LatestScore | None: ...


class NoAlerts:
    """An alert reader with nothing to read (detection not installed, and in tests)."""

    def active_alerts(self, session: ReadSession, identity: str) -> Sequence[ActiveAlert]:
        return ()

    def latest_score(self, session: ReadSession, identity: str) -> LatestScore | None:
        return None


def build_risk_service(engine: Engine, ledger: LedgerAppender | None, *, write_behind: bool = False) -> RiskService:
    """Risk over ``engine`` with the configured weights and detection's alert tables (made if missing).
    ``write_behind``: the history is stored by a background writer (the served app; close it at shutdown)."""
    create_risk_tables(engine)
    create_alert_tables(engine)
    return RiskService(engine, load_config(), ledger=ledger, alerts=AlertTables(), write_behind=write_behind)


class RiskService:
    """Score identities and operations against the ledger (and the alert store, when detection is wired)."""

    def __init__(
        self,
        engine: Engine,
        config: RiskConfig,
        *,
        ledger: LedgerAppender | None = None,
        alerts: AlertReader | None = None,
        store: RiskStore | None = None,
        write_behind: bool = False,
        taxonomy: Taxonomy | None = None,
    ) -> None:
        """``write_behind``: store the history from a background writer (``RiskWriter``); the service then
        needs ``close()``. ``taxonomy`` classifies the history's events (``config/taxonomy.toml`` by default)."""
        self._reader = LedgerReader(engine)
        self._config = config
        self._ledger = ledger
        self._alerts: AlertReader = alerts if alerts is not None else NoAlerts()
        self._store = store if store is not None else RiskStore(engine)
        self._writer = RiskWriter(self._store) if write_behind else None
        self._histories = HistoryCache(
            limit=config.history_limit, max_rows=config.cache_rows, taxonomy=taxonomy or default_taxonomy()
        )

    def close(self) -> None:
        """Store what the write-behind writer still holds."""
        if self._writer is not None:
            self._writer.close()

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def prime(self) -> int:
        """Read every identity's events into memory in one pass over the ledger, so that no first assessment
        pays the scattered per-identity read (``HistoryCache.prime``). Returns how many identities; a failed
        read is logged and primes none (each identity is then read on its first assessment)."""
        started = time.perf_counter()
        try:
            with self._reader.session() as session:
                primed = self._histories.prime(session, self._snapshot(session))
        except LedgerError:
            logger.exception("risk history not primed")
            return 0
        logger.info(
            "risk history of %d identities read in %.1f s (%d rows held)",
            primed, time.perf_counter() - started, self._histories.rows_held,
        )  # fmt: skip
        return primed

    @property
    def config(self) -> RiskConfig:
        return self._config

    @property
    def store(self) -> RiskStore:
        return self._store

    def _snapshot(self, session: ReadSession) -> LedgerSnapshot:
        return session.snapshot(rounding_ms=self._config.as_of_rounding_ms, future_skew_ms=self._config.future_skew_ms)

    def _inputs(
        self, session: ReadSession, identity: str, *, operation: str | None, context: OperationContext | None,
        names: set[str],
    ) -> RiskInputs:  # fmt: skip
        """Everything the score depends on, read in one database transaction."""
        snapshot = self._snapshot(session)
        alerts: tuple[AlertView, ...] = ()
        if names & _ALERT_FACTORS:
            alerts = tuple(AlertView(*alert) for alert in self._alerts.active_alerts(session, identity))
        score = self._alerts.latest_score(session, identity) if "detector_score" in names else None
        return RiskInputs(
            identity=identity, as_of_ms=snapshot.as_of_ms, alerts=alerts,
            detector=None if score is None else DetectorScoreView(*score),
            history=self._histories.history(session, identity, snapshot), operation=operation,
            context=context or OperationContext(),
        )  # fmt: skip

    def assess(
        self,
        identity: str,
        *,
        operation: str | None = None,
        context: Mapping[str, Any] | None = None,
        access: OperationContext | None = None,
        factors: Sequence[str] | None = None,
    ) -> RiskAssessment:
        """Score, store in the history, and on a level change append ``risk.level.changed`` to the ledger.

        Only an identity assessment (no operation, no context, every factor) moves the identity's level.
        """
        names = set(select_factors(factors))  # unknown names fail before any read
        tracks_level = (
            operation is None
            and not context
            and access in (None, OperationContext())
            and set(ADDITIVE_FACTORS) <= names
        )
        with self._reader.session() as session:
            inputs = self._inputs(session, identity, operation=operation, context=access, names=names)
            previous = (self._writer or self._store).current(identity, session) if tracks_level else None
        assessment = assess(inputs, self._config, factors)
        self._keep(assessment, tracks_level, previous)
        return assessment

    def _keep(self, assessment: RiskAssessment, tracks_level: bool, previous: CurrentRisk | None) -> None:
        record = RiskRecord(
            identity=assessment.identity,
            score=assessment.score,
            level=assessment.level,
            factors=[(f.name, f.weight, f.value) for f in assessment.factors],
            computed_at_ms=assessment.as_of_ms,
            operation=None if tracks_level else (assessment.operation or "(custom)"),
        )
        if tracks_level:
            if previous is not None and (previous.computed_at_ms, previous.score) == (
                assessment.as_of_ms,
                assessment.score,
            ):
                return  # the same assessment, already stored
            change = level_change(previous, record)
            if change is not None:
                self._announce(assessment, change)
        if self._writer is not None:
            self._writer.submit(record)
        else:
            self._store.record(record)

    def _announce(self, assessment: RiskAssessment, change: LevelChange) -> None:
        """Append the change before storing the new level: if the append fails, the next assessment sees
        the old level and tries again (the event id is derived from the change, so it is appended once)."""
        if self._ledger is None:
            return
        self._ledger.append([level_changed_event(assessment, change)])
        logger.info("risk level of %s: %s -> %s", assessment.identity, change.previous_level, change.level)
