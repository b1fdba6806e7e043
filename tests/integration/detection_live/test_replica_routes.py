"""An API replica with ``QERBEROS_LIVE_DETECTION=off`` (the scale-out setup) lists and updates alerts from the
database and scores on demand with the champion it loads itself: none of these answers 503."""

from __future__ import annotations

from models.alerts import AlertCandidate, AlertStore
from tests.integration.detection_live.test_anomaly_routes import NORMAL
from tests.integration.detection_live.test_end_to_end import client, settings, token  # noqa: F401


def test_alert_routes_and_detect_work_without_live_detection(client, settings):  # noqa: F811
    assert "off" == settings.live_detection
    ledger = client.app.state.service.require_ledger()
    AlertStore(ledger.engine).raise_alert(
        AlertCandidate("did:squid:x", "brute_force", "T1110", "high", 0.9, "12 denied sign-ins", {})
    )
    analyst = token(settings, "analyst", ["alerts:read", "alerts:manage", "anomaly:detect"])
    listed = client.get("/alerts", headers=analyst)
    assert 200 == listed.status_code, listed.text
    (alert,) = listed.json()["data"]["alerts"]
    updated = client.patch(f"/alerts/{alert['id']}", json={"status": "resolved", "reason": "handled"}, headers=analyst)
    assert (200, "resolved") == (updated.status_code, updated.json()["data"]["status"])
    detected = client.post("/anomaly/detect", json={"data": {"features": [NORMAL]}}, headers=analyst)
    assert 200 == detected.status_code, detected.text
    assert "1.0.0" == detected.json()["data"]["modelInfo"]["version"]
