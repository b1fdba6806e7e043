"""``qerberos detection evaluate``'s path on a small simulation, rules only (no champion): it replays in event
time, alerts the attackers, rates their risk as the service would have then, and reports every figure."""

from __future__ import annotations

from typer.testing import CliRunner

from analytics.simulation import SimulationConfig, simulate, write_simulation
from analytics.simulation.frame import labels_path
from cli import app


def test_evaluate_replays_labelled_traffic_and_reports_per_attacker(tmp_path, monkeypatch):
    monkeypatch.setenv("QERBEROS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("QERBEROS_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")  # no champion
    result = simulate(SimulationConfig(identities=12, days=3, seed=3))
    events, _ = write_simulation(result, tmp_path / "sim.parquet")
    answer = CliRunner().invoke(app, ["detection", "evaluate", "--events", str(events),
                                      "--truth", str(labels_path(events)), "--json"])  # fmt: skip
    assert 0 == answer.exit_code, answer.output
    import json

    report = json.loads(answer.output.strip().splitlines()[-1])
    attackers = report["attackers"]
    assert attackers and sum(a["alerted"] for a in attackers) >= 0.5 * len(attackers)
    assert all(a["delay_seconds"] is None or a["delay_seconds"] >= 0 for a in attackers)
    assert {"benign_identities", "alerts_per_attacker", "risk_roc_auc", "high_or_above"} <= set(report["summary"])


def test_evaluate_refuses_a_step_that_is_no_duration(tmp_path, monkeypatch):
    monkeypatch.setenv("QERBEROS_HOME", str(tmp_path / "home"))
    result = simulate(SimulationConfig(identities=4, days=3, seed=3))
    events, _ = write_simulation(result, tmp_path / "sim.parquet")
    answer = CliRunner().invoke(app, ["detection", "evaluate", "--events", str(events),
                                      "--truth", str(labels_path(events)), "--step", "soon"])  # fmt: skip
    assert (2, "error: invalid step") == (answer.exit_code, answer.output.splitlines()[0][:19])
