"""``/compliance`` on the real app (local-mode security): generate with 202 and a job to poll, answer the
finished report in every format, list and download, refuse what the caller may not do, and queue a bounded
number of report jobs."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

import api.controllers.compliance as compliance
from api.app import create_app
from models.ledger import initialise
from pipelines.report_jobs import QUEUE_FULL_RETRY_SECONDS, QUEUED_JOBS
from qerberos.settings import Settings
from tests.integration.api.conftest import make_token
from tests.integration.compliance.conftest import settings_for
from tests.integration.compliance.helpers import END, START, fill

QUERY = {"type": "soc2", "startDate": START.isoformat(), "endDate": END.isoformat()}


@pytest.fixture
def api_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("QERBEROS_AUTH_MODE", "local")
    settings = settings_for(monkeypatch, tmp_path / "home")
    ledger = initialise(settings)
    fill(ledger, identities=6, days=3, seed=5)
    ledger.close()
    return settings


@pytest.fixture
def client(api_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient[Any]]:
    monkeypatch.setattr(compliance, "REPORT_WAIT_SECONDS", 0.05)
    with TestClient(create_app(api_settings), raise_server_exceptions=False) as test_client:
        yield test_client


def _as(client: TestClient[Any], token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_generate_poll_and_download_in_every_format(client: TestClient[Any], api_settings: Settings) -> None:
    auditor = _as(client, make_token(api_settings, "auditor", ["compliance:read", "compliance:generate"]))
    accepted = client.get("/compliance/report", params=QUERY, headers=auditor)
    assert (202, "running") == (accepted.status_code, accepted.json()["data"]["status"]), accepted.text
    job_url = accepted.headers["Location"]
    deadline = time.monotonic() + 120
    while (job := client.get(job_url, headers=auditor).json()["data"])["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert "done" == job["status"], job
    answer = client.get("/compliance/report", params=QUERY, headers=auditor)
    data = answer.json()["data"]
    assert (200, job["reportId"], "soc2", "passed") == (
        answer.status_code,
        data["reportId"],
        data["type"],
        data["summary"]["integrity"],
    )
    assert {"startDate": "2026-01-05T00:00:00.000Z", "endDate": "2026-01-12T00:00:00.000Z"} == data["period"]
    pdf = client.get("/compliance/report", params=QUERY | {"format": "pdf"}, headers=auditor)
    csv = client.get(f"/compliance/reports/{job['reportId']}", params={"format": "csv"}, headers=auditor)
    html = client.get(f"/compliance/reports/{job['reportId']}", params={"format": "html"}, headers=auditor)
    listed = client.get("/compliance/reports", headers=auditor).json()["data"]
    assert (True, "section,metric,value", True) == (
        pdf.content.startswith(b"%PDF"),
        csv.text.splitlines()[0],
        html.headers["content-type"].startswith("text/html"),
    )
    assert [job["reportId"]] == [item["reportId"] for item in listed]
    assert data["reportSha256"] == pdf.headers["X-Report-SHA256"]


def test_a_period_in_the_first_millennium_is_reported_not_a_server_error(
    client: TestClient[Any], api_settings: Settings
) -> None:
    """Found by schemathesis: the period's start went to the notebook spelled ``275-07-10...`` (``strftime``'s
    ``%Y``), which the notebook refused as no ISO 8601 date, and the request answered 500."""
    auditor = _as(client, make_token(api_settings, "auditor", ["compliance:read", "compliance:generate"]))
    query = {"type": "soc2", "format": "csv", "startDate": "0275-07-10", "endDate": "0346-11-03"}
    accepted = client.get("/compliance/report", params=query, headers=auditor)
    assert 202 == accepted.status_code, accepted.text
    assert {"startDate": "0275-07-10T00:00:00.000Z", "endDate": "0346-11-03T00:00:00.000Z"} == (
        accepted.json()["data"]["period"]
    )
    deadline = time.monotonic() + 120
    while (job := client.get(accepted.headers["Location"], headers=auditor).json()["data"])["status"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert "done" == job["status"], job


def test_permissions_and_bad_input(client: TestClient[Any], api_settings: Settings) -> None:
    reader = _as(client, make_token(api_settings, "reader", ["compliance:read"]))
    codes = [
        client.get("/compliance/report", params=QUERY).status_code,
        client.get("/compliance/report", params=QUERY, headers=reader).status_code,
        client.get("/compliance/reports", headers=reader).status_code,
        client.get("/compliance/reports/nope", headers=reader).status_code,
        client.get("/compliance/jobs/nope", headers=reader).status_code,
    ]
    generator = _as(client, make_token(api_settings, "generator", ["compliance:generate"]))
    bad = [
        client.get("/compliance/report", params=QUERY | {"type": "hipaa"}, headers=generator).status_code,
        client.get("/compliance/report", params=QUERY | {"format": "docx"}, headers=generator).status_code,
        client.get("/compliance/report", params=QUERY | {"endDate": "2025-01-01"}, headers=generator).status_code,
        client.get("/compliance/report", params=QUERY | {"startDate": "yesterday"}, headers=generator).status_code,
    ]
    assert ([401, 403, 200, 404, 404], [400, 400, 400, 400]) == (codes, bad)


def test_report_jobs_are_bounded_queued_as_queued_shared_per_period_and_dropped_at_shutdown(
    api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compliance, "REPORT_WAIT_SECONDS", 0.05)
    periods = [
        {"type": "gdpr", "startDate": (START + dt.timedelta(hours=n)).isoformat(), "endDate": END.isoformat()}
        for n in range(QUEUED_JOBS + 2)
    ]
    with TestClient(create_app(api_settings), raise_server_exceptions=False) as client:
        auditor = _as(client, make_token(api_settings, "auditor", ["compliance:read", "compliance:generate"]))
        answers = [client.get("/compliance/report", params=period, headers=auditor) for period in periods]
        accepted = [answer.json()["data"] for answer in answers[:-1]]
        again = client.get("/compliance/report", params=periods[2], headers=auditor)
        polled = client.get(f"/compliance/jobs/{accepted[2]['jobId']}", headers=auditor).json()["data"]
        jobs = client.app.state.report_jobs

    refused = answers[-1]
    assert [202] * (QUEUED_JOBS + 1) == [answer.status_code for answer in answers[:-1]]
    assert ["queued"] * QUEUED_JOBS == [job["status"] for job in accepted[1:]]
    assert (429, "RATE_LIMIT_EXCEEDED", str(QUEUE_FULL_RETRY_SECONDS)) == (
        refused.status_code,
        refused.json()["code"],
        refused.headers["Retry-After"],
    )
    assert (202, accepted[2]["jobId"], "queued") == (again.status_code, again.json()["data"]["jobId"], polled["status"])
    # the worker stopped: its queued jobs never start; the running one finishes
    assert ["cancelled"] * QUEUED_JOBS == [jobs.get(job["jobId"]).view()["status"] for job in accepted[1:]]
    first = jobs.get(accepted[0]["jobId"])
    first.future.result(timeout=300)
    assert "done" == first.view()["status"]
