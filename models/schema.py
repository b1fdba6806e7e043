"""Every table qerberos keeps, prepared in one place (``qerberos init``, the service's start, tests)."""

from __future__ import annotations

from sqlalchemy import Engine

from models.alerts import create_alert_tables
from models.categories import CategoryStore
from models.database import create_schema, database_errors
from models.identities import create_identity_tables
from models.ledger import Ledger, initialise
from models.publish_cursor import create_publish_tables
from models.risk_store import create_risk_tables
from qerberos.settings import Settings


def prepare(settings: Settings) -> Ledger:
    """The ledger's schema and signing key, then the tables beside it. Safe to run again."""
    ledger = initialise(settings)
    _tables_beside_the_ledger(ledger.engine)
    return ledger


def create_tables(engine: Engine) -> None:
    """Every table, and no key: what ``serve`` makes sure of before it starts its workers, which would
    otherwise each create a missing table at once (on SQLite one fails, 'database is locked', and the
    service exits). Safe to run again."""
    with database_errors("creating the ledger schema"):
        create_schema(engine)
    _tables_beside_the_ledger(engine)


def _tables_beside_the_ledger(engine: Engine) -> None:
    with database_errors("creating the database schema"):
        create_identity_tables(engine)
        create_alert_tables(engine)
        create_risk_tables(engine)
        create_publish_tables(engine)
    CategoryStore(engine).create()
