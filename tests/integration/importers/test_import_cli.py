"""qerberos import, end to end on a real ledger: every vendor format appends its records once (a second import
appends nothing), a bad record names its line and writes nothing of its batch, and imported traffic from
sources that name things their own way reaches the same rules as the simulator's; qerberos taxonomy check lists
what falls into "other", taxonomy apply stores the categories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ocsf.v1_7_0 import events as ocsf
from typer.testing import CliRunner

from analytics.live_events import live_event
from analytics.rules import RuleEngine, load_detection_config
from cli import app
from models.categories import CategoryStore
from models.ledger import Ledger
from models.reader import LedgerReader
from qerberos.settings import Settings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "importers"
runner = CliRunner()


def _run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("format", "name", "count"),
    [
        ("cloudtrail", "cloudtrail-log-file.json", 5),
        ("cloudtrail", "cloudtrail-lines.jsonl", 2),
        ("azuread-signin", "azuread-signins-graph.json", 4),
        ("azuread-signin", "azuread-signins-diagnostic.jsonl", 1),
        ("o365", "o365-management-activity.json", 5),
        ("sshd", "sshd-auth.log", 11),
        ("ocsf", "ocsf-events.jsonl", 4),
    ],
)
def test_each_format_is_appended_once(sqlite_settings: Settings, format: str, name: str, count: int) -> None:
    assert 0 == _run("init")[0]
    path = str(FIXTURES / name)
    assert (0, f"appended {count} events\n") == _run("import", "--format", format, path, "--year", "2024")
    assert (0, "appended 0 events\n") == _run("import", "--format", format, path, "--year", "2024")
    assert 0 == _run("verify")[0]


def test_import_on_postgres_keeps_the_source_record_behind_its_commitment(backend_settings: Settings) -> None:
    _run("init")
    assert 0 == _run("import", "-f", "cloudtrail", str(FIXTURES / "cloudtrail-log-file.json"))[0]
    with Ledger.from_settings(backend_settings) as ledger:
        record = ledger.get_by_seq(1)
    assert record.details is not None
    assert ("ConsoleLogin", "DENY") == (record.type, record.verdict)
    assert "66c6ea0d-e271-4e8b-8e03-EXAMPLE8e0a4" == json.loads(record.details["source_record"])["eventID"]
    assert "2023-07-19T21:44:40+00:00" == record.occurred_at.isoformat()


def test_a_bad_record_names_its_line_and_writes_nothing_of_its_batch(sqlite_settings: Settings) -> None:
    _run("init")
    good = (FIXTURES / "sshd-auth.log").read_text().splitlines()[:3]
    code, output = _run("import", "-f", "sshd", "-", stdin="\n".join([*good, "not a syslog line"]) + "\n")
    assert (1, True) == (code, "line 4" in output), output
    with Ledger.from_settings(sqlite_settings) as ledger:
        assert 0 == ledger.size()
    code, output = _run("import", "-f", "nope", "-", stdin="")
    assert (2, True) == (code, "unknown format" in output)


def _failed_sign_ins() -> dict[str, str]:
    """Twelve failed sign-ins within ten minutes from each source, each in its own words."""
    sshd = "".join(
        f"Mar  3 07:{n:02d}:00 bastion sshd[{900 + n}]: Failed password for root from 203.0.113.9 port {n} ssh2\n"
        for n in range(12)
    )
    azure = "\n".join(
        json.dumps(
            {
                "id": f"00000000-0000-4000-8000-{n:012d}",
                "createdDateTime": f"2024-03-03T07:{n:02d}:30Z",
                "userPrincipalName": "victim@contoso.com",
                "ipAddress": "2001:db8::66",
                "status": {"errorCode": 50126, "failureReason": "Invalid username or password."},
            }
        )
        for n in range(12)
    )
    cloudtrail = "\n".join(
        json.dumps(
            {
                "eventVersion": "1.08",
                "eventID": f"11111111-0000-4000-8000-{n:012d}",
                "eventTime": f"2024-03-03T07:{n:02d}:45Z",
                "eventSource": "signin.amazonaws.com",
                "eventName": "ConsoleLogin",
                "sourceIPAddress": "198.51.100.66",
                "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/Bob", "accountId": "1"},
                "responseElements": {"ConsoleLogin": "Failure"},
            }
        )
        for n in range(12)
    )
    return {"sshd": sshd, "azuread-signin": azure, "cloudtrail": cloudtrail}


def test_brute_force_fires_on_every_sources_failed_sign_ins(sqlite_settings: Settings) -> None:
    _run("init")
    for format, text in _failed_sign_ins().items():
        assert 0 == _run("import", "-f", format, "--year", "2024", "-", stdin=text + "\n")[0]
    config = load_detection_config()
    engine = RuleEngine([rule for rule in config.rules if rule.name == "brute_force"])
    with LedgerReader.from_url(sqlite_settings.database_url) as reader:
        events = [live_event(config.taxonomy, *row) for row in reader.tail(-1, 1000)]
    fired = {hit.squid_id for event in events for hit in engine.observe(event)}
    assert {"root@bastion", "victim@contoso.com", "arn:aws:iam::111122223333:user/Bob"} == fired


def test_taxonomy_check_lists_what_falls_into_other_and_apply_stores_categories(sqlite_settings: Settings) -> None:
    _run("init")
    lines = "\n".join(
        json.dumps({"type": t, "ref": "r", "actor": {"squidId": "did:squid:a"}, "layer": "crm", "verdict": "ALLOW"})
        for t in ("user.signin", "frobnicate", "frobnicate", "report.export")
    )
    code, output = _run("taxonomy", "check", "--json", "-", stdin=lines)
    summary = json.loads(output)
    assert (0, 4) == (code, summary["events"])
    assert [{"type": "frobnicate", "layer": "crm", "events": 2}] == summary["other"]
    assert 1 == _run("taxonomy", "check", "--strict", "-", stdin=lines)[0]
    code, output = _run("taxonomy", "check", "-f", "o365", str(FIXTURES / "o365-management-activity.json"))
    assert (0, True) == (code, "every event is recognised" in output), output

    assert 0 == _run("ingest", "-", stdin=lines)[0]
    code, output = _run("taxonomy", "apply")
    assert (0, True) == (code, output.startswith("classified 4 events")), output
    with Ledger.from_settings(sqlite_settings) as ledger:
        assert {3002: 1, 0: 2, 6001: 1} == CategoryStore(ledger.engine).class_counts()


def test_export_as_ocsf_writes_every_event_of_its_class(sqlite_settings: Settings, tmp_path: Path) -> None:
    _run("init")
    assert 0 == _run("import", "-f", "o365", str(FIXTURES / "o365-management-activity.json"))[0]
    out = tmp_path / "trail.ocsf.jsonl"
    code, output = _run("export", "--format", "ocsf", str(out))
    assert (0, "exported 5 events as OCSF\n") == (code, output)
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [0, 1, 2, 3, 4] == [e["metadata"]["sequence"] for e in events]
    assert [3002, 3002, 6001, 3005, 6003] == [e["class_uid"] for e in events]
    models = {3002: ocsf.Authentication, 6001: ocsf.WebResourcesActivity, 3005: ocsf.UserAccess, 6003: ocsf.ApiActivity}
    for event in events:
        models[event["class_uid"]].model_validate(event)
    assert 0 == _run("export", "--format", "ocsf", "--alerts", str(tmp_path / "alerts.jsonl"))[0]
    assert 2 == _run("export", "--format", "csv", str(tmp_path / "x"))[0]
