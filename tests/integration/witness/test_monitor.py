"""``qerberos monitor`` following a healthy log as it grows, with the entry bundles read by a token."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cli import app
from models.ledger import initialise
from pipelines.monitor import Monitor
from qerberos.settings import Settings
from tests.integration.api.conftest import make_token
from tests.integration.ledger.helpers import event
from tests.integration.witness.processes import log_server


def test_the_monitor_follows_a_growing_log_and_checks_its_entries(sqlite_settings: Settings, tmp_path: Path) -> None:
    state = tmp_path / "monitor"
    with initialise(sqlite_settings) as ledger:
        ledger.append([event(n) for n in range(300)])
        ledger.checkpoint(force=True)
        key, token = ledger.verifier_key(), make_token(sqlite_settings, "auditor", ["audit:read"])
        with log_server(sqlite_settings.home, sqlite_settings.database_url, ledger.origin) as url:
            with Monitor(url, state, [key], token=token) as monitor:
                first = monitor.round()
                ledger.append([event(n) for n in range(300, 777)])
                ledger.checkpoint(force=True)
                second, third = monitor.round(), monitor.round()
            result = CliRunner().invoke(app, ["monitor", url, "--state", str(state), "--key", key, "--once"])
    assert [(300, True), (777, True), (777, False)] == [(r.size, r.advanced) for r in (first, second, third)]
    assert (0, "consistent: 777 entries accepted") == (result.exit_code, result.output.splitlines()[-1])
