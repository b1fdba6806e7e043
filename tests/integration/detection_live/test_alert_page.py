"""A page of alerts and its total come from one snapshot: while another process raises alerts, the total
never disagrees with the page (``GET /alerts``, the MCP ``qerberos.getAlerts``), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

from models.alerts import AlertCandidate, create_alert_tables
from models.ledger import initialise
from pipelines.alert_service import AlertService
from qerberos.settings import Settings

RAISED = 300


def test_the_total_agrees_with_the_page_while_alerts_are_raised(backend_settings: Settings) -> None:
    ledger = initialise(backend_settings)
    try:
        create_alert_tables(ledger.engine)
        service = AlertService(ledger.engine, ledger)
        done = threading.Event()

        def raise_alerts() -> None:
            try:
                for number in range(RAISED):
                    service.raise_alert(
                        AlertCandidate(f"did:squid:{number}", "brute_force", "T1110", "high", 0.8, "d", {})
                    )
            finally:
                done.set()

        writer = threading.Thread(target=raise_alerts)
        writer.start()
        disagreements, reads = [], 0
        while not done.is_set():
            listed, total = service.page(status="active", limit=RAISED + 1)
            reads += 1
            if len(listed) != total:
                disagreements.append((len(listed), total))
        writer.join()
        assert ([], RAISED) == (disagreements, service.page(limit=RAISED + 1)[1])
        assert reads > 10  # the reads overlapped the writes
    finally:
        ledger.close()
