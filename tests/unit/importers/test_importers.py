"""Each importer maps its vendor's documented records to events the ledger accepts (the same validation as
``qerberos ingest``), with identity, time, outcome and the normalised details fields, and the taxonomy
classifies them: properties every record of a format must hold, not one sample's quirks."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest

from analytics.importers import FORMATS, ImportedEvent, ImportFailure, import_events
from analytics.taxonomy import default_taxonomy
from models.wire_events import convert_event

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "importers"
NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
TAXONOMY = default_taxonomy()


def imported(format: str, name: str, **options: object) -> list[ImportedEvent]:
    with (FIXTURES / name).open("rb") as lines:
        return list(import_events(format, lines, now=NOW, **options))  # type: ignore[arg-type]


def category(item: ImportedEvent) -> tuple[str, str, str]:
    event = item.event
    found = TAXONOMY.classify(event["type"], event["layer"], event["verdict"], event["details"])
    return found.class_key, found.activity, found.status


SAMPLES = [
    ("cloudtrail", "cloudtrail-log-file.json"),
    ("cloudtrail", "cloudtrail-lines.jsonl"),
    ("azuread-signin", "azuread-signins-graph.json"),
    ("azuread-signin", "azuread-signins-diagnostic.jsonl"),
    ("o365", "o365-management-activity.json"),
    ("sshd", "sshd-auth.log"),
    ("sshd", "sshd-journal.jsonl"),
    ("sshd", "sshd-short-iso.log"),
    ("ocsf", "ocsf-events.jsonl"),
]


@pytest.mark.parametrize(("format", "name"), SAMPLES)
def test_every_record_maps_to_an_event_the_ledger_accepts(format: str, name: str):
    events = imported(format, name)
    assert events
    ids = set()
    for item in events:
        request = convert_event(item.event)  # the validation of POST /audit and qerberos ingest
        assert request.timestamp is not None and request.timestamp.tzinfo is not None
        assert request.details is not None and "source_record" in request.details
        ip = request.details.get("ip")
        assert ip is None or ipaddress.ip_address(ip)
        ids.add(request.id)
    assert None not in ids and len(events) == len(ids)


@pytest.mark.parametrize(("format", "name"), SAMPLES)
def test_the_same_input_maps_to_the_same_ids(format: str, name: str):
    assert [e.event["id"] for e in imported(format, name)] == [e.event["id"] for e in imported(format, name)]


def test_cloudtrail_identity_outcome_and_sources():
    by_name = {e.event["type"]: e.event for e in imported("cloudtrail", "cloudtrail-log-file.json")}
    failed_login = by_name["ConsoleLogin"]
    assert ("DENY", "arn:aws:iam::111122223333:user/JaneDoe") == (
        failed_login["verdict"],
        failed_login["actor"]["squidId"],
    )
    assert "111122223333" == failed_login["actor"]["daoId"]
    assumed = by_name["AttachUserPolicy"]
    assert "arn:aws:iam::111122223333:role/RoleToBeAssumed" == assumed["actor"]["subId"]
    assert ("DENY", "AccessDenied", "2001:db8::ff00:42:8329") == (
        assumed["verdict"],
        assumed["details"]["reason"],
        assumed["details"]["ip"],
    )
    service = by_name["GetBucketAcl"]
    assert ("cloudtrail.amazonaws.com", None) == (service["actor"]["squidId"], service["details"].get("ip"))
    assert "arn:aws:s3:::amzn-s3-demo-bucket" == service["ref"]
    lines = imported("cloudtrail", "cloudtrail-lines.jsonl")
    assert [1, 3] == [e.line for e in lines]  # a blank line between them
    assert "aws:anonymous" == lines[1].event["actor"]["squidId"]


def test_azure_ad_sign_ins_outcomes_identities_and_places():
    events = [e.event for e in imported("azuread-signin", "azuread-signins-graph.json")]
    assert ["ALLOW", "DENY", "WARN", "DENY"] == [e["verdict"] for e in events]
    assert ["signin", "signin", "signin", "serviceprincipal.signin"] == [e["type"] for e in events]
    assert "5f6a7b8c-9d0e-4f1a-8b2c-3d4e5f6a7b8c" == events[3]["actor"]["squidId"]
    assert ("US", "2001:db8:85a3::8a2e:370:7334") == (events[0]["details"]["country"], events[1]["details"]["ip"])
    assert "country" not in events[1]["details"]  # an empty countryOrRegion is no country
    assert "ADELE-LAPTOP" == events[2]["details"]["device"]
    (diagnostic,) = imported("azuread-signin", "azuread-signins-diagnostic.jsonl")
    assert ("meganb@contoso.com", "FR", "ALLOW") == (
        diagnostic.event["actor"]["squidId"],
        diagnostic.event["details"]["country"],
        diagnostic.event["verdict"],
    )


def test_o365_records_outcomes_addresses_and_utc_times():
    events = [e.event for e in imported("o365", "o365-management-activity.json")]
    assert ["ALLOW", "DENY", "ALLOW", "ALLOW", "DENY"] == [e["verdict"] for e in events]
    assert ["203.0.113.14", "198.51.100.60", "2001:db8::1", "192.0.2.70", None] == [
        e["details"].get("ip") for e in events
    ]
    assert "2023-11-14T10:12:53Z" == events[0]["timestamp"]
    assert events[0]["details"]["user_agent"].startswith("Mozilla/5.0")
    assert "d0a4e6e5-4c4c-4b0f-9f3b-7b8f1d2a3c44" == events[0]["actor"]["daoId"]


def test_sshd_lines_become_sign_in_attempts_of_host_accounts():
    events = imported("sshd", "sshd-auth.log", year=2024)
    summary = [(e.line, e.event["type"], e.event["verdict"], e.event["actor"]["squidId"]) for e in events]
    assert [
        (1, "sshd.preauth.invalid_user", "DENY", "admin@bastion"),
        (2, "sshd.login", "DENY", "admin@bastion"),
        (3, "sshd.login", "DENY", "admin@bastion"),
        (4, "sshd.login", "DENY", "admin@bastion"),
        (5, "sshd.preauth.abandoned", "WARN", "admin@bastion"),
        (6, "sshd.login", "DENY", "root@bastion"),
        (7, "sshd.preauth.max_attempts", "DENY", "root@bastion"),
        (9, "sshd.login", "ALLOW", "deploy@bastion"),
        (12, "sshd.logout", "ALLOW", "deploy@bastion"),
        (13, "sshd.preauth.abandoned", "WARN", "git@bastion"),
        (14, "sshd.login", "ALLOW", "alice@bastion"),
    ] == summary
    assert "2001:db8::dead:beef" == events[5].event["details"]["ip"]
    assert "2024-03-03T06:25:14+00:00" == events[0].event["timestamp"]
    assert ("publickey", True) == (events[7].event["details"]["method"], events[1].event["details"]["invalid_user"])
    assert events[2].event["id"] != events[3].event["id"]  # the same line twice is two attempts


def test_a_syslog_year_is_the_one_that_does_not_put_the_line_in_the_future():
    december = [b"Dec 31 23:59:59 h sshd[1]: Accepted password for a from 192.0.2.1 port 1 ssh2\n"]
    (event,) = import_events("sshd", december, now=dt.datetime(2025, 1, 2, tzinfo=dt.UTC))
    assert event.event["timestamp"].startswith("2024-12-31")
    leap = [b"Feb 29 10:00:00 h sshd[1]: Accepted password for a from 192.0.2.1 port 1 ssh2\n"]
    (event,) = import_events("sshd", leap, now=dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    assert event.event["timestamp"].startswith("2024-02-29")


def test_journal_and_iso_forms():
    journal = imported("sshd", "sshd-journal.jsonl")
    assert [(1, "DENY"), (3, "ALLOW")] == [(e.line, e.event["verdict"]) for e in journal]
    assert "alice@web-1" == journal[0].event["actor"]["squidId"]
    iso = imported("sshd", "sshd-short-iso.log")
    assert ["2024-03-03T05:25:16+00:00", "2024-03-03T06:25:17.512034+00:00"] == [e.event["timestamp"] for e in iso]


def test_ocsf_events_keep_their_class_and_identity():
    events = imported("ocsf", "ocsf-events.jsonl")
    assert [
        ("authentication", "logon", "failure"),
        ("api_activity", "read", "success"),
        ("file_system_activity", "delete", "success"),
        ("authentication", "logon", "failure"),
    ] == [category(e) for e in events]
    actors = [e.event["actor"]["squidId"] for e in events]
    assert ["00u1ab2cd3EFGH4ij5k6", "AROAIDPPEZS35WEXAMPLE:session", actors[2], "ip:192.0.2.200"] == actors
    assert ("DE", "111122223333") == (events[0].event["details"]["country"], events[1].event["actor"]["daoId"])


@pytest.mark.parametrize(
    ("format", "name", "expected"),
    [
        ("cloudtrail", "cloudtrail-log-file.json", {"api_activity", "authentication", "user_access_management"}),
        ("azuread-signin", "azuread-signins-graph.json", {"authentication"}),
        (
            "o365",
            "o365-management-activity.json",
            {"authentication", "web_resources_activity", "user_access_management"},
        ),
        ("sshd", "sshd-auth.log", {"authentication"}),
    ],
)
def test_imported_events_reach_the_taxonomy_classes_rules_read(format: str, name: str, expected: set[str]):
    assert expected <= {category(e)[0] for e in imported(format, name, **({"year": 2024} if format == "sshd" else {}))}


def test_sign_ins_of_every_source_are_sign_ins_to_the_rules():
    sign_ins = {
        format: [category(e) for e in imported(format, name) if category(e)[:2] == ("authentication", "logon")]
        for format, name in SAMPLES
    }
    assert all(sign_ins[format] for format in FORMATS)
    failed = [c for cs in sign_ins.values() for c in cs if c[2] == "failure"]
    assert failed


@pytest.mark.parametrize(
    ("format", "lines", "line", "complaint"),
    [
        ("cloudtrail", [b'{"eventName": "X", "eventSource": "s"}\n'], 1, "eventTime is missing"),
        ("cloudtrail", [b'{"Records": [\n', b"{]}\n"], 1, "malformed JSON"),
        ("cloudtrail", [b'{"eventName": "X", "eventSource": "s", "eventTime": "t"}\n', b"{\n"], 2, "malformed"),
        (
            "azuread-signin",
            [b'{"createdDateTime": "2023-01-01T00:00:00Z", "status": {"errorCode": 0}}\n'],
            1,
            "neither",
        ),
        ("o365", [b"[1, 2]\n"], 1, "must be a JSON object"),
        ("ocsf", [b'{"class_uid": "3002", "activity_id": 1}\n'], 1, "must be integers"),
        ("sshd", [b"Mar  3 06:25:14 host sshd[1]: ok\n", b"garbage\n"], 2, "not a syslog line"),
        ("sshd", [b"Mar  3 06:25:14 host sshd[1]: ok\n", b"\xff\n"], 2, "not UTF-8"),
    ],
)
def test_a_bad_record_is_named_by_its_line(format: str, lines: list[bytes], line: int, complaint: str):
    with pytest.raises(ImportFailure, match=complaint) as failure:
        list(import_events(format, lines, now=NOW))
    assert line == failure.value.line


def test_an_identity_longer_than_the_ledger_takes_stays_distinct():
    arn = "arn:aws:sts::111122223333:assumed-role/" + "R" * 80 + "/session-"
    records = [
        f'{{"eventName": "X", "eventSource": "s", "eventTime": "2023-01-01T00:00:00Z", '
        f'"userIdentity": {{"arn": "{arn}{n}"}}}}\n'.encode()
        for n in (1, 2)
    ]
    first, second = (e.event["actor"]["squidId"] for e in import_events("cloudtrail", records))
    assert first != second and len(first) == len(second) == 100
