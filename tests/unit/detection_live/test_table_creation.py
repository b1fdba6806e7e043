"""Creating the alert tables survives another writer committing while it runs (SQLite): the service's periodic
checkpoint can commit between the check for an existing table and its creation, which in a deferred
transaction failed with "database is locked" and stopped the worker's start."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, inspect

from models.alerts import create_alert_tables
from models.database import create_ledger_engine


def _commit_from_another_connection_before_create(engine: Engine, database: Path) -> list[str]:
    """Before each CREATE TABLE, another connection tries to commit a write; returns what each try gave."""
    outcomes: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def other_writer(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith("CREATE TABLE"):
            return
        other = sqlite3.connect(database, timeout=0.2, isolation_level=None)
        try:
            other.execute(f"CREATE TABLE IF NOT EXISTS other_{len(outcomes)} (n INTEGER)")
            outcomes.append("committed")
        except sqlite3.OperationalError as exc:
            outcomes.append(str(exc))
        finally:
            other.close()

    return outcomes


def test_the_alert_tables_are_created_while_another_connection_writes(tmp_path: Path) -> None:
    database = tmp_path / "qerberos.db"
    engine = create_ledger_engine(f"sqlite:///{database}")
    outcomes = _commit_from_another_connection_before_create(engine, database)
    create_alert_tables(engine)
    assert {"alerts", "detector_scores", "detector_cursor"} <= set(inspect(engine).get_table_names())
    assert ["database is locked"] * 3 == outcomes  # the other writer waits for the creation, not the reverse
    engine.dispose()
