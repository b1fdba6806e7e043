"""The taxonomy of config/taxonomy.toml classifies the names modules actually use, not only the simulator's; a
frame is classified exactly as its events one by one; a bad taxonomy file is refused, naming the rule."""

from __future__ import annotations

import tomllib
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.taxonomy import OTHER_CLASS, Taxonomy, category_expr, default_taxonomy, load_taxonomy
from qerberos.errors import ConfigurationError

TAXONOMY = default_taxonomy()


@pytest.mark.parametrize(
    ("type_", "layer", "expected"),
    [
        ("login", "squid", ("authentication", "logon")),
        ("authentication", "squid", ("authentication", "logon")),
        ("auth.login", "portal", ("authentication", "logon")),
        ("user.signin", "accounts", ("authentication", "logon")),
        ("UserLoggedIn", "AzureActiveDirectory", ("authentication", "logon")),
        ("UserLoginFailed", "AzureActiveDirectory", ("authentication", "logon")),
        ("ConsoleLogin", "signin.amazonaws.com", ("authentication", "logon")),
        ("session.logout", "portal", ("authentication", "logoff")),
        ("admin.role.grant", "iam", ("user_access_management", "assign_privileges")),
        ("AttachUserPolicy", "iam.amazonaws.com", ("user_access_management", "assign_privileges")),
        ("Add member to role.", "AzureActiveDirectory", ("user_access_management", "assign_privileges")),
        ("role.revoke", "iam", ("user_access_management", "revoke_privileges")),
        ("admin_operation", "dao", ("user_access_management", "other")),
        ("AdminOperationPerformed", "dao", ("user_access_management", "other")),
        ("PermissionChecked", "qonsent", ("web_resources_access", "other")),
        ("AccessCheckFailed", "gateway", ("web_resources_access", "other")),
        ("mail.sent", "qmail", ("api_activity", "create")),
        ("MailSent", "qmail", ("api_activity", "create")),
        ("consent.sent", "qonsent", ("web_resources_access", "other")),
        ("file.read", "files", ("file_system_activity", "read")),
        ("FileAccessed", "SharePoint", ("file_system_activity", "read")),
        ("file.delete", "files", ("file_system_activity", "delete")),
        ("FileDownloaded", "OneDrive", ("web_resources_activity", "export")),
        ("report.export", "crm", ("web_resources_activity", "export")),
        ("SharingSet", "SharePoint", ("web_resources_activity", "share")),
        ("permission_grant", "qonsent", ("web_resources_access", "access_grant")),
        ("user.password.reset", "accounts", ("account_change", "password_reset")),
        ("CreateUser", "iam.amazonaws.com", ("account_change", "create")),
        ("DescribeInstances", "ec2.amazonaws.com", ("api_activity", "read")),
        ("TerminateInstances", "ec2.amazonaws.com", ("api_activity", "delete")),
        ("frobnicate", "widgets", (OTHER_CLASS, "other")),
    ],
)
def test_types_of_every_naming_convention_get_their_ocsf_class(type_: str, layer: str, expected: tuple[str, str]):
    category = TAXONOMY.classify(type_, layer, "ALLOW")
    assert expected == (category.class_key, category.activity)
    assert TAXONOMY.classes[category.class_key].uid == category.class_uid


def test_the_status_follows_the_verdict_and_sign_ins_are_recognised_by_category():
    failed = TAXONOMY.classify("user.signin", "accounts", "DENY")
    assert ("failure", 2, True) == (failed.status, failed.status_id, failed.is_sign_in())
    allowed = TAXONOMY.classify("auth.login", "x", "ALLOW")
    assert ("success", 1) == (allowed.status, allowed.status_id)
    assert not TAXONOMY.classify("session.logout", "x", "ALLOW").is_sign_in()
    assert 0 == TAXONOMY.classify("frobnicate", "x", "WARN").class_uid


def _taxonomy(rules: str) -> Taxonomy:
    base = Path(__file__).resolve().parents[3] / "config" / "taxonomy.toml"
    head = base.read_text(encoding="utf-8").split("# -- rules", 1)[0]
    return Taxonomy(tomllib.loads(head + rules), "test")


def test_rules_are_ordered_and_may_read_details_and_verdicts():
    taxonomy = _taxonomy(
        """
[[rules]]
types = ["event"]
details = { action = ["sign*in"] }
class = "authentication"
activity = "logon"

[[rules]]
types = ["event"]
verdicts = ["DENY"]
class = "web_resources_access"
activity = "access_deny"
status = "failure"

[[rules]]
types = ["ev*", "!evil"]
class = "api_activity"
activity = "read"
"""
    )
    assert "logon" == taxonomy.classify("event", "m", "ALLOW", {"action": "sign-in"}).activity
    assert "logon" == taxonomy.classify("event", "m", "ALLOW", '{"action": "signin"}').activity
    assert "access_deny" == taxonomy.classify("event", "m", "DENY", {"action": "other"}).activity
    assert "read" == taxonomy.classify("event", "m", "ALLOW", None).activity
    assert OTHER_CLASS == taxonomy.classify("evil", "m", "ALLOW").class_key


@pytest.mark.parametrize(
    ("rules", "complaint"),
    [
        ('[[rules]]\nclass = "nope"\n', "class must be one of"),
        ('[[rules]]\nclass = "authentication"\nactivity = "read"\n', "has no activity"),
        ('[[rules]]\nclass = "authentication"\nkinds = ["x"]\n', "unknown keys"),
        ('[[rules]]\nclass = "authentication"\nverdicts = ["MAYBE"]\n', "unknown verdicts"),
        ('[[rules]]\nclass = "authentication"\nstatus = "fine"\n', "statuses must be among"),
    ],
)
def test_a_bad_rule_is_refused_naming_it(rules: str, complaint: str):
    with pytest.raises(ConfigurationError, match=complaint):
        _taxonomy(rules)


def test_a_taxonomy_without_the_other_class_is_refused(tmp_path: Path):
    path = tmp_path / "taxonomy.toml"
    path.write_text('[classes.authentication]\nuid = 3002\nname = "Authentication"\nactivities = { logon = 1 }\n')
    with pytest.raises(ConfigurationError, match="'other' is required"):
        load_taxonomy(path)


def test_the_digest_names_the_content():
    assert default_taxonomy().digest == load_taxonomy().digest
    assert _taxonomy("").digest != default_taxonomy().digest


_names = st.sampled_from(
    ["login", "auth.login", "user.signin", "file.read", "admin.role.grant", "download", "x", "", "Ünïcode*", "a.b"]
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            _names | st.text(max_size=12),
            st.sampled_from(["squid", "qonsent", "files", "iam"]),
            st.sampled_from(["ALLOW", "DENY", "WARN"]),
        ),
        max_size=30,
    )
)
def test_a_frame_is_classified_as_its_events_one_by_one(rows: list[tuple[str, str, str]]):
    frame = pl.DataFrame(rows, schema=["type", "layer", "verdict"], orient="row").with_columns(
        details=pl.lit(None, pl.String)
    )
    got = frame.lazy().select(category_expr(TAXONOMY)).unnest("category").collect().rows()
    expected = [
        (c.class_uid, c.activity_id, c.status_id) for c in (TAXONOMY.classify(t, layer, v) for t, layer, v in rows)
    ]
    assert expected == got


def test_features_count_a_failed_then_successful_sign_in_whatever_the_module_calls_it():
    from analytics.live_events import live_event
    from analytics.window_features import compute_features, rows_from_events

    start = 1_767_600_000_000
    events = [("user.signin", "DENY"), ("user.signout", "ALLOW"), ("user.signin", "ALLOW"), ("file.read", "ALLOW")]
    frame = pl.DataFrame(
        {
            "seq": range(4),
            "id": [f"e{n}" for n in range(4)],
            "type": [t for t, _ in events],
            "ref": ["r"] * 4,
            "squid_id": ["did:squid:a"] * 4,
            "sub_id": [None] * 4,
            "dao_id": [None] * 4,
            "layer": ["accounts"] * 4,
            "verdict": [v for _, v in events],
            "occurred_at": [start + n * 1000 for n in range(4)],
            "details": [None] * 4,
        },
        schema_overrides={"sub_id": pl.String, "dao_id": pl.String, "details": pl.String},
    ).with_columns(pl.col("occurred_at").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"))
    batch = compute_features(frame.lazy(), "1h").collect()
    assert [1] == batch["fail_then_success"].to_list()
    live = [
        live_event(TAXONOMY, n, "did:squid:a", t, "r", "accounts", v, start + n * 1000, None, None)
        for n, (t, v) in enumerate(events)
    ]
    assert [1.0] == [row.values["fail_then_success"] for row in rows_from_events(live, "1h")]


def test_no_event_kind_of_the_simulated_ecosystem_falls_into_other():
    from analytics.simulation.catalog import LAYERS

    unrecognised = [
        (layer, kind.type)
        for layer, kinds in LAYERS.items()
        for kind in kinds
        if TAXONOMY.classify(kind.type, layer, "ALLOW").class_key == OTHER_CLASS
    ]
    assert [] == unrecognised


@pytest.mark.parametrize("verdict", ["ALLOW", "DENY"])
def test_every_naming_convention_of_the_simulated_ecosystem_gets_the_category_of_its_first_name(verdict: str):
    from analytics.simulation.catalog import CONVENTIONS, LAYERS

    different = [
        (layer, kind.name(convention))
        for layer, kinds in LAYERS.items()
        for kind in kinds
        for convention in range(1, len(CONVENTIONS))
        if TAXONOMY.classify(kind.name(convention), layer, verdict) != TAXONOMY.classify(kind.type, layer, verdict)
    ]
    assert [] == different
