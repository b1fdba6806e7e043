"""End to end: simulate traffic with attacks, ingest it through the API, watch the attackers' alerts appear.

The real app (``api.app.create_app``, local-mode security on) with its detection controllers and engine, a
detector trained on another seed as the MLflow champion, and the live engine tailing the ledger.
"""

from __future__ import annotations

import time
from collections import defaultdict

import polars as pl
import pytest
from litestar.testing import TestClient

from analytics.labels import window_truth
from analytics.simulation import SimulationConfig, simulate, to_requests
from api.app import create_app
from models.database import create_ledger_engine
from models.identities import create_identity, create_identity_tables
from models.records import SearchQuery
from models.schema import prepare
from pipelines.live_detection import LiveDetection
from qerberos.settings import load_settings
from tests.conftest import make_settings
from tests.integration.detection_live.conftest import DAYS, IDENTITIES, LIVE_SEED

pytestmark = [pytest.mark.slow, pytest.mark.live_detection]  # the real app runs the engine


@pytest.fixture
def settings(tmp_path, monkeypatch, tracking_uri):
    monkeypatch.setenv("QERBEROS_AUTH_MODE", "local")
    monkeypatch.setenv("QERBEROS_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("QERBEROS_RATE_LIMIT_PER_MINUTE", "0")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    make_settings(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("QERBEROS_MLFLOW_TRACKING_URI", tracking_uri)  # the service loads this store's champion
    settings = load_settings()
    prepare(settings).close()
    return settings


def token(settings, name: str, permissions: list[str]) -> dict[str, str]:
    engine = create_ledger_engine(settings.database_url)
    try:
        create_identity_tables(engine)
        return {"Authorization": f"Bearer {create_identity(engine, name, permissions)[1]}"}
    finally:
        engine.dispose()


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def wait_until_caught_up(detection: LiveDetection, ledger_size: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while detection._last_seq < ledger_size - 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ledger_size - 1 <= detection._last_seq, "live detection did not catch up"


def test_attackers_get_alerts_with_their_technique_and_benign_identities_mostly_do_not(settings, client, tracking_uri):
    writer = token(settings, "ingest", ["qerberos:audit:write"])
    analyst = token(settings, "analyst", ["alerts:read", "alerts:manage"])
    ledger = client.app.state.service.require_ledger()
    detection = client.app.state.detection  # the service's own engine, started by its lifespan
    detection.refresh_model()
    assert detection.detector() is not None
    result = simulate(SimulationConfig(identities=IDENTITIES, days=DAYS, seed=LIVE_SEED))
    requests = list(to_requests(result.events))
    for start in range(0, len(requests), 2000):
        response = client.post("/audit/batch", json=requests[start : start + 2000], headers=writer)
        assert 201 == response.status_code, response.text
    wait_until_caught_up(detection, len(requests))
    detection.stop()  # freeze the alerts before counting them (the lifespan's stop at exit is then a no-op)

    response = client.get("/alerts", params={"limit": 1000}, headers=analyst)
    assert 200 == response.status_code, response.text
    alerts = response.json()["data"]["alerts"]
    assert len(alerts) == response.json()["data"]["totalCount"] > 0
    techniques: dict[str, set[str | None]] = defaultdict(set)
    patterns: dict[str, set[str]] = defaultdict(set)
    for alert in alerts:
        techniques[alert["metadata"]["squidId"]].add(alert["metadata"]["technique"])
        patterns[alert["metadata"]["squidId"]].add(alert["type"])

    # every attack counts, the slow ones too (below the hourly rules' rates, within the slow rules')
    targeted = result.labels.filter(pl.col("attack") != "password_spraying")
    outcome = {
        (attack, squid): (technique, sorted(techniques[squid]))
        for attack, squid, technique in targeted.select("attack", "squid_id", "technique")
        .unique()
        .sort("attack")
        .rows()
    }
    print("attack, technique, techniques alerted:", *((a, t, got) for (a, _), (t, got) in outcome.items()), sep="\n")
    attackers = {squid: technique for (_, squid), (technique, _) in outcome.items()}
    right = [squid for squid, technique in attackers.items() if technique in techniques[squid]]
    print(f"attackers with the right technique: {len(right)}/{len(attackers)}; alerts: {len(alerts)}")
    assert len(right) >= 0.75 * len(attackers), {s: (t, techniques[s]) for s, t in attackers.items()}

    # a spray is one alert of its source address, listing the accounts it touched (not one alert per victim)
    sprayed = set(result.labels.filter(result.labels["attack"] == "password_spraying")["squid_id"].to_list())
    sprays = [a for a in alerts if a["type"] == "password_spraying"]
    assert all(a["metadata"]["squidId"].startswith("ip:") for a in sprays)
    assert len(sprays) == len({a["metadata"]["squidId"] for a in sprays}) >= 1
    listed = {account for a in sprays for account in a["metadata"]["explanation"]["evidence"]["accounts"]}
    assert len(sprayed & listed) >= 0.75 * len(sprayed)

    truth = window_truth(result.labels).filter(pl.col("window") == "1h").collect()
    attacked_windows = {(s, int(w.timestamp() * 1000)) for s, w in truth.select("squid_id", "window_start").rows()}
    flagged = {(a["metadata"]["squidId"], w) for a in alerts if a["type"] == "anomaly"
               for w in a["metadata"]["explanation"]["windows"]}  # fmt: skip
    precision = len(flagged & attacked_windows) / max(1, len(flagged))
    print(f"anomaly windows: {len(flagged)}, of which attack windows: {len(flagged & attacked_windows)}")

    assert precision >= 0.5  # most detector alerts sit on attack windows (sprayed victims' included)
    everyone = set(result.events["squid_id"].unique().to_list())
    false_alarms = {s for s, w in flagged - attacked_windows} - {s for s, w in flagged & attacked_windows}
    print(f"identities whose detector alerts are all false alarms: {len(false_alarms)}/{len(everyone)}")
    assert len(false_alarms) <= 0.25 * len(everyone)
    untouched = everyone - set(result.labels["squid_id"].to_list())
    noisy = [s for s in untouched if patterns[s]]
    print(f"identities no attack touched, with alerts: {len(noisy)}/{len(untouched)}")
    assert len(noisy) <= 0.5 * len(untouched)

    # an analyst dismisses one alert: the ledger records it, and it becomes a false-positive label
    alert = next(a for a in alerts if a["status"] == "active")
    answer = client.patch(f"/anomaly/alerts/{alert['id']}", json={"status": "dismissed", "reason": "known tester"},
                          headers=analyst)  # fmt: skip
    assert 200 == answer.status_code, answer.text
    assert ("dismissed", "known tester") == (
        answer.json()["data"]["status"],
        answer.json()["data"]["metadata"]["reason"],
    )
    updated = ledger.search(SearchQuery(type="security.alert.updated", limit=10)).records
    assert alert["id"] in {r.details["alertId"] for r in updated}
    created = ledger.search(SearchQuery(type="security.alert.created", limit=1)).total_count
    assert len(alerts) == created
