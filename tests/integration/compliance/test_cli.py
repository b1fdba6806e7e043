"""`qerberos report run` without Chromium exits 2 and says why (it used to exit 0, "success", with no PDF),
before any work and with nothing recorded in the ledger."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from cli import report
from models.ledger import initialise
from qerberos.settings import Settings


def test_report_run_without_chromium_exits_2_saying_why(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = initialise(sqlite_settings)
    size = ledger.size()
    ledger.close()
    monkeypatch.setattr("pipelines.reports._CHROMIUM_NAMES", ("no-such-chromium",))
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    report.register(app)
    result = CliRunner().invoke(app, ["report", "run", "--framework", "soc2", "--start", "2026-01-01",
                                      "--end", "2026-02-01"])  # fmt: skip
    with initialise(sqlite_settings) as reopened:
        after = reopened.size()
    assert (2, True, size) == (result.exit_code, "no Chromium installed" in result.output, after)
