"""The whole ledger verified on a schedule, and the metrics that tell whether it still verifies.

``qerberos report schedule`` (one instance per deployment) calls ``verify_now`` at start and then every
``QERBEROS_VERIFY_INTERVAL`` seconds: ``models.verification.verify_ledger`` in this process (one worker: it
shares the host with the API), the checks of ``qerberos verify``.

- ``qerberos_verification_failures_total``: verifications that found the ledger tampered, these and a
  compliance report's integrity check (``pipelines/reports.py``); any increase is an integrity incident.
- ``qerberos_verification_last_success_timestamp_seconds``: when a scheduled verification last found the
  ledger intact; with ``qerberos_verification_interval_seconds`` it tells a verification that stopped
  running (the database unreachable, the scheduler stuck) from one that passes.

A verification that cannot run (the database is down) is logged and retried at the next interval; it is
not a failure: it says nothing about the ledger.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge

from models.ledger import Ledger
from models.verification import VerificationReport, verify_ledger
from qerberos.settings import Settings

__all__ = ["INTERVAL", "LAST_SUCCESS", "VERIFICATION_FAILURES", "verify_now"]

logger = logging.getLogger(__name__)

VERIFICATION_FAILURES = Counter(
    "qerberos_verification_failures",
    "Verifications of the ledger (scheduled, or a compliance report's integrity check) that found it tampered.",
)
LAST_SUCCESS = Gauge(
    "qerberos_verification_last_success_timestamp_seconds",
    "When a scheduled verification last found the whole ledger intact (Unix time).",
    multiprocess_mode="max",
)
INTERVAL = Gauge(
    "qerberos_verification_interval_seconds",
    "Seconds between scheduled verifications of the ledger (0: none).",
    multiprocess_mode="max",
)


def verify_now(settings: Settings) -> VerificationReport | None:
    """Verify the whole ledger once and record the outcome; None when it could not run (logged)."""
    try:
        with Ledger.from_settings(settings) as ledger:
            report = verify_ledger(ledger, workers=1)
    except Exception:  # the scheduler must outlive a database outage; the next interval retries
        logger.exception("scheduled verification could not run")
        return None
    if report.intact:
        LAST_SUCCESS.set_to_current_time()
        logger.info("scheduled verification: intact, %d events, %d checkpoints", report.size,
                    report.checkpoints_checked)  # fmt: skip
    else:
        VERIFICATION_FAILURES.inc()
        logger.critical("scheduled verification: TAMPERED at sequence number %s: %s", report.first_bad_seq,
                        report.problem)  # fmt: skip
    return report
