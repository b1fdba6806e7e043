"""Rules on small hand-built event sequences: each fires at its threshold and not one event before."""

from __future__ import annotations

import dataclasses

import pytest

from analytics.live_events import LiveEvent
from analytics.rules import RuleEngine, RuleSpec, load_detection_config
from analytics.taxonomy import default_taxonomy
from qerberos.errors import ConfigurationError

T0 = 1_767_600_000_000  # 2026-01-05T08:00:00Z
MIN = 60_000
CONFIG = load_detection_config()


def rule(name: str, **changes: object) -> RuleSpec:
    spec = next(r for r in CONFIG.rules if r.name == name)
    return dataclasses.replace(spec, **changes)


def ev(
    n: int,
    *,
    squid: str = "did:squid:a",
    type: str = "login",
    verdict: str = "DENY",
    ref: str = "identity:a",
    at: int | None = None,
    layer: str = "squid",
    ip: str | None = "1.2.3.4",
    country: str | None = "DE",
) -> LiveEvent:
    at = T0 + n * 1000 if at is None else at
    category = default_taxonomy().classify(type, layer, verdict)
    return LiveEvent(n, squid, type, ref, layer, verdict, at, category, None, ip, country)


def fired(engine: RuleEngine, events: list[LiveEvent]) -> list[tuple[int, str, str]]:
    return [(e.seq, h.rule, h.squid_id) for e in events for h in engine.observe(e)]


def test_every_configured_rule_names_an_attack_technique():
    assert {
        "brute_force",
        "brute_force_slow",
        "password_spraying",
        "permission_probing",
        "permission_probing_slow",
        "privilege_escalation",
        "bulk_download",
        "bulk_download_slow",
        "bulk_export",
        "off_hours_admin",
        "new_location_login",
        "api_abuse",
    } == {r.name for r in CONFIG.rules}
    assert all(r.technique.startswith("T1") for r in CONFIG.rules)


def test_brute_force_fires_at_the_nth_deny_within_the_window_and_not_before():
    engine = RuleEngine([rule("brute_force", threshold=5, window_seconds=600)])
    hits = fired(engine, [ev(n) for n in range(5)])
    assert [(4, "brute_force", "did:squid:a")] == hits


def test_brute_force_does_not_fire_when_denies_are_spread_beyond_the_window():
    engine = RuleEngine([rule("brute_force", threshold=5, window_seconds=600)])
    assert [] == fired(engine, [ev(n, at=T0 + n * 3 * MIN) for n in range(10)])  # 4 within any 10 minutes


def test_a_slow_rule_alerts_as_its_fast_rule_and_an_unknown_pattern_is_refused(tmp_path):
    """Guesses every nine minutes never meet 10-in-10-minutes; the six-hour rule sees them and raises the same
    alert pattern, so a fast and a slow view of one attack update one alert."""
    fast = rule("brute_force", threshold=10, window_seconds=600)
    slow = dataclasses.replace(fast, name="brute_force_slow", alerts_as="brute_force", threshold=15,
                               window_seconds=6 * 3600)  # fmt: skip
    engine = RuleEngine([fast, slow])
    hits = [h for n in range(20) for h in engine.observe(ev(n, at=T0 + n * 9 * MIN))]
    assert [("brute_force", 15)] == [(h.rule, h.value) for h in hits]
    assert "brute force slow (T1110)" in hits[0].description
    config = tmp_path / "rules.toml"
    config.write_text('[rules.slow]\nkind = "count"\nalerts_as = "fast"\ntechnique = "T1110"\nthreshold = 2\n'
                      "window_seconds = 60\n")  # fmt: skip
    with pytest.raises(ConfigurationError, match="alerts as 'fast', which is no rule"):
        load_detection_config(config)


def test_brute_force_ignores_allowed_sign_ins_and_other_types():
    engine = RuleEngine([rule("brute_force", threshold=3, window_seconds=600)])
    events = [ev(0, verdict="ALLOW"), ev(1, type="access"), ev(2), ev(3, verdict="ALLOW"), ev(4)]
    assert [] == fired(engine, events)


def test_repeats_fire_again_only_when_the_evidence_doubles():
    engine = RuleEngine([rule("brute_force", threshold=5, window_seconds=600)])
    hits = fired(engine, [ev(n) for n in range(20)])
    assert [4, 9, 19] == [seq for seq, _, _ in hits]


def test_permission_probing_counts_distinct_denied_resources():
    engine = RuleEngine([rule("permission_probing", threshold=4)])
    same_ref = [ev(n, type="access", ref="file:x", layer="qdrive") for n in range(10)]
    assert [] == fired(engine, same_ref)
    probing = [ev(10 + n, type="access", ref=f"file:{n}", layer="qdrive") for n in range(4)]
    assert [(12, "permission_probing", "did:squid:a")] == fired(engine, probing)  # file:x, file:0..2


def test_password_spraying_is_one_hit_for_the_address_listing_the_accounts():
    engine = RuleEngine([rule("password_spraying", threshold=3)])
    assert [] == fired(engine, [ev(n, squid=f"did:squid:{n}") for n in range(2)])
    (hit,) = engine.observe(ev(2, squid="did:squid:2"))
    assert ("ip:1.2.3.4", ["did:squid:0", "did:squid:1", "did:squid:2"], 3) == (
        hit.squid_id,
        hit.evidence["accounts"],
        hit.evidence["accountCount"],
    )
    assert [] == fired(engine, [ev(4, squid="did:squid:0", ip="9.9.9.9")])


def test_a_spray_over_49_accounts_hits_only_its_address():
    """It gave one alert per victim (49) before the address became an entity; now every hit (at the threshold,
    then at each further account) names the one address, whose single alert live detection updates."""
    engine = RuleEngine([rule("password_spraying", threshold=8)])
    hits = [h for n in range(49) for h in engine.observe(ev(n, squid=f"did:squid:{n}"))]
    assert {"ip:1.2.3.4"} == {h.squid_id for h in hits}
    assert (42, 49) == (len(hits), len(hits[-1].evidence["accounts"]))
    assert [] == engine.observe(ev(50, squid="did:squid:3"))  # an account already counted


def test_a_spray_past_its_threshold_names_its_address_for_the_accounts_it_tried_within_its_window():
    """Live detection folds a listed account's own anomaly holding the spray's events into the spray's alert:
    only while the spray is past its threshold, only for the accounts it tried, and only within its window."""
    engine = RuleEngine([rule("password_spraying", threshold=3, window_seconds=3600)])
    fired(engine, [ev(n, squid=f"did:squid:{n}") for n in range(2)])
    assert frozenset() == engine.spraying_addresses("did:squid:0", T0)  # two accounts: not yet a spray
    fired(engine, [ev(2, squid="did:squid:2")])
    assert frozenset({"1.2.3.4"}) == engine.spraying_addresses("did:squid:0", T0)
    assert frozenset() == engine.spraying_addresses("did:squid:someone-else", T0)
    assert frozenset() == engine.spraying_addresses("did:squid:0", T0 + 2 * 60 * MIN)  # an hour after it ended


def test_a_hit_on_the_identity_itself_corroborates_its_window_and_a_spray_hit_does_not():
    engine = RuleEngine([rule("brute_force", threshold=3, window_seconds=600), rule("password_spraying", threshold=2)])
    fired(engine, [ev(0, squid="did:squid:v1"), ev(1, squid="did:squid:v2")])  # the spray hits the address
    assert (False, False) == (engine.hit_since("did:squid:v1", T0), engine.hit_since("did:squid:v2", T0))
    fired(engine, [ev(n, squid="did:squid:a") for n in range(2, 5)])
    assert (True, False) == (engine.hit_since("did:squid:a", T0), engine.hit_since("did:squid:a", T0 + 60 * MIN))


def test_privilege_escalation_fires_for_a_non_admin_and_not_for_a_known_admin():
    spec = rule("privilege_escalation", threshold=3)
    engine = RuleEngine([spec])
    attempts = [ev(n, type="admin_operation", layer="dao", verdict="DENY" if n < 2 else "ALLOW") for n in range(3)]
    assert [(2, "privilege_escalation", "did:squid:a")] == fired(engine, attempts)
    admin = RuleEngine([spec])
    old = [ev(0, squid="did:squid:admin", type="admin_operation", verdict="ALLOW", at=T0 - 24 * 60 * MIN)]
    later = [ev(n, squid="did:squid:admin", type="admin_operation", verdict="ALLOW") for n in range(1, 6)]
    assert [] == fired(admin, old + later)


def test_bulk_download_fires_at_the_threshold():
    engine = RuleEngine([rule("bulk_download", threshold=10)])
    downloads = [ev(n, type="download", verdict="ALLOW", ref=f"file:{n}", layer="qdrive") for n in range(10)]
    assert [9] == [seq for seq, _, _ in fired(engine, downloads)]


def test_off_hours_admin_needs_a_history_and_an_unusual_hour():
    engine = RuleEngine([rule("off_hours_admin", threshold=1, min_history=20)])
    office = [ev(n, type="access", verdict="ALLOW", at=T0 + n * MIN) for n in range(30)]  # 08:00-08:29
    assert [] == fired(engine, office)
    assert [] == fired(engine, [ev(30, type="admin_operation", verdict="ALLOW", at=T0 + 40 * MIN)])  # usual hour
    night = ev(31, type="admin_operation", verdict="ALLOW", at=T0 + 15 * 60 * MIN)  # 23:00
    assert [(31, "off_hours_admin", "did:squid:a")] == fired(engine, [night])


@pytest.mark.parametrize(("history", "country", "expected"), [(25, "RU", 1), (25, "DE", 0), (5, "RU", 0)])
def test_new_location_login_fires_on_an_unseen_country_after_enough_history(history, country, expected):
    engine = RuleEngine([rule("new_location_login")])
    fired(engine, [ev(n, type="access", verdict="ALLOW") for n in range(history)])
    assert expected == len(fired(engine, [ev(100, verdict="ALLOW", country=country)]))


@pytest.mark.parametrize(
    ("rule_name", "type_", "layer", "verdict"),
    [
        ("brute_force", "user.signin", "accounts", "DENY"),
        ("brute_force", "auth.login", "portal", "DENY"),
        ("brute_force", "UserLoginFailed", "AzureActiveDirectory", "DENY"),
        ("privilege_escalation", "admin.role.grant", "iam", "ALLOW"),
        ("privilege_escalation", "AttachRolePolicy", "iam.amazonaws.com", "ALLOW"),
        ("bulk_download", "file.download", "files", "ALLOW"),
        ("bulk_download", "FileDownloaded", "SharePoint", "ALLOW"),
        ("bulk_export", "document.share", "docs", "ALLOW"),
    ],
)
def test_rules_fire_on_any_modules_names_for_the_same_category(rule_name: str, type_: str, layer: str, verdict: str):
    """A module that names its events its own way meets the same rule at the same threshold as the simulator's."""
    spec = rule(rule_name, threshold=3, window_seconds=600)
    events = [ev(n, type=type_, layer=layer, verdict=verdict, ref=f"res:{n}") for n in range(3)]
    assert [(2, rule_name, "did:squid:a")] == fired(RuleEngine([spec]), events)
    reads = [ev(n, type="file.read", layer=layer, verdict=verdict, ref=f"res:{n}") for n in range(3)]
    assert [] == fired(RuleEngine([spec]), reads)


def test_a_rule_naming_a_class_the_taxonomy_lacks_is_refused(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(
        '[rules.x]\nkind = "count"\ntechnique = "T1110"\nthreshold = 1\nwindow_seconds = 60\nclasses = ["logins"]\n'
    )
    with pytest.raises(ConfigurationError, match="categories the taxonomy lacks"):
        load_detection_config(path)
    path.write_text(
        '[rules.x]\nkind = "count"\ntechnique = "T1110"\nthreshold = 1\nwindow_seconds = 60\ntypes = ["login"]\n'
    )
    with pytest.raises(ConfigurationError, match="invalid"):
        load_detection_config(path)


def test_a_hit_links_the_ledger_events_behind_it_and_names_what_was_probed():
    engine = RuleEngine([rule("permission_probing", threshold=3)])
    hits = [h for n in range(3) for h in engine.observe(ev(n, type="access", ref=f"file:{n}", layer="qdrive"))]
    (hit,) = hits
    assert ([0, 1, 2], 3) == (hit.evidence["sequenceNumbers"], hit.evidence["eventCount"])
    assert ["file:0", "file:1", "file:2"] == hit.evidence["resources"]
