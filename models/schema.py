"""Every table qerberos keeps, prepared in one place (``qerberos init``, the service's start, tests)."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from models.alerts import create_alert_tables
from models.identities import create_identity_tables
from models.ledger import Ledger, initialise
from models.risk import create_risk_tables
from qerberos.errors import LedgerError
from qerberos.settings import Settings


def prepare(settings: Settings) -> Ledger:
    """The ledger's schema and signing key, then the tables beside it. Safe to run again."""
    ledger = initialise(settings)
    try:
        create_identity_tables(ledger.engine)
        create_alert_tables(ledger.engine)
        create_risk_tables(ledger.engine)
    except SQLAlchemyError as exc:
        raise LedgerError(f"could not create the database schema: {exc.__class__.__name__}") from exc
    return ledger
