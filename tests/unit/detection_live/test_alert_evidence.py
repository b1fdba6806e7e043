"""An anomaly alert's evidence: its events by ledger sequence number, and which country, address and
resources were new to the identity; its technique from the driving features."""

from __future__ import annotations

from analytics.alert_evidence import technique_of
from analytics.live_events import LiveEvent
from analytics.rules import load_detection_config
from analytics.taxonomy import default_taxonomy
from analytics.window_features import IncrementalFeatures

T0 = 1_767_600_000_000  # 2026-01-05T08:00:00Z
HOUR = 3_600_000


def ev(seq: int, at: int, *, ip: str = "10.0.0.1", country: str = "DE", ref: str = "file:a") -> LiveEvent:
    category = default_taxonomy().classify("access", "qdrive", "ALLOW")
    return LiveEvent(seq, "did:squid:a", "access", ref, "qdrive", "ALLOW", at, category, None, ip, country)


def test_the_evidence_names_the_new_country_address_and_resources_and_links_the_events():
    features = IncrementalFeatures("1h", keep_windows=3)
    for seq in range(5):
        features.add(ev(seq, T0 + seq * 1000))
    travelled = [ev(10 + n, T0 + HOUR + n * 1000, ip="203.0.113.7", country="BR", ref=f"file:{n}") for n in range(3)]
    for event in travelled:
        features.add(event)
    evidence = features.evidence("did:squid:a", T0 + HOUR).to_json()
    assert ([10, 11, 12], 3) == (evidence["sequenceNumbers"], evidence["eventCount"])
    assert (["BR"], ["203.0.113.7"]) == (evidence["newCountries"], evidence["newAddresses"])
    assert (["file:0", "file:1", "file:2"], 5) == (evidence["newResources"], evidence["priorEvents"])
    assert features.evidence("did:squid:nobody", T0) is None


def test_an_anomaly_names_the_technique_of_its_strongest_mapped_driver():
    techniques = load_detection_config().anomaly.techniques
    assert "T1078" == technique_of(["new_country_count", "deny_ratio"], techniques)
    assert "T1110" == technique_of(["fail_then_success", "new_ip_count"], techniques)
    assert technique_of(["unmapped"], techniques) is None
