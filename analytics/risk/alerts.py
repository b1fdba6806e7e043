"""Read an identity's active alerts and newest detector score from detection's tables (``models.alerts``).

The reads run on the risk service's own connection, inside the transaction that reads the ledger: two
prebuilt, indexed statements, not two more connections through ``AlertStore``. They find what
``AlertStore.active_for`` and ``AlertStore.latest_score`` find, through the same indexes
(``ix_alerts_squid_status_created``, ``ix_detector_scores_squid_window``). ``active_for`` also orders by
creation and keeps the newest 1000; the factors do not depend on the order, and an identity has at most one
active alert per pattern (``ux_alerts_active_dedup``), so the limit never cuts.
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select

from analytics.risk.factors import AlertView, DetectorScoreView
from models.alerts import AlertRow, DetectorScore

_alerts = AlertRow.__table__  # type: ignore[attr-defined]
_scores = DetectorScore.__table__  # type: ignore[attr-defined]

_ACTIVE = (
    select(
        _alerts.c.severity, _alerts.c.score, _alerts.c.status, _alerts.c.created_at_ms, _alerts.c.updated_at_ms,
        _alerts.c.pattern, _alerts.c.technique,
    )
    .where(_alerts.c.status == "active", _alerts.c.squid_id == bindparam("identity"))
)  # fmt: skip
_LATEST_SCORE = (
    select(_scores.c.score, _scores.c.window_start_ms)
    .where(_scores.c.squid_id == bindparam("identity"))
    .order_by(_scores.c.window_start_ms.desc())
    .limit(1)
)


class AlertTables:
    """The ``history.AlertReader`` over detection's ``alerts`` and ``detector_scores`` tables
    (``models.alerts.create_alert_tables``)."""

    def active_alerts(self, connection: Connection, identity: str) -> tuple[AlertView, ...]:
        rows = connection.execute(_ACTIVE, {"identity": identity})
        return tuple(
            AlertView(
                str(severity), float(score or 0.0), str(status), int(created), int(updated), str(pattern), technique
            )
            for severity, score, status, created, updated, pattern, technique in rows
        )

    def latest_score(self, connection: Connection, identity: str) -> DetectorScoreView | None:
        row = connection.execute(_LATEST_SCORE, {"identity": identity}).first()
        return None if row is None else DetectorScoreView(float(row.score), int(row.window_start_ms))
