"""The docs page at ``/schema`` in a real headless browser (Debian's Chromium, driven by Playwright): it renders the
list of operations from files the service serves itself, with every request off this machine blocked, as in a
deployment without internet, and without a token."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Route, sync_playwright

from tests.conftest import make_settings
from tests.integration.api.served import Served, serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    with serve(make_settings(monkeypatch, tmp_path / "home"), tmp_path / "logs", QERBEROS_LIVE_DETECTION="off") as it:
        yield it


def test_the_docs_page_renders_every_operation_offline_and_without_a_token(served: Served) -> None:
    document = httpx.get(f"{served.url}/schema/openapi.json").json()
    operation_ids = {op["operationId"] for item in document["paths"].values() for op in item.values()}
    blocked: list[str] = []

    def only_this_machine(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.route("**/*", only_this_machine)
            page.goto(f"{served.url}/schema", wait_until="load")
            page.wait_for_selector(".opblock", timeout=30_000)
            rendered = page.locator(".opblock").count()
            titles = page.locator(".opblock-summary-path").all_inner_texts()
            page.locator(".opblock-summary", has_text="/audit/{id}").first.click()
            page.wait_for_selector(".opblock.is-open .responses-wrapper", timeout=10_000)
            answers = page.locator(".opblock.is-open .response-col_status").all_inner_texts()
        finally:
            browser.close()

    assert [] == blocked
    assert {"200", "401", "404"} <= {answer.strip() for answer in answers}
    assert len(operation_ids) == rendered
    assert {"/audit", "/audit/{id}", "/anomaly/alerts", "/risk-score", "/compliance/report", "/health"} <= {
        title.replace("\u200b", "") for title in titles
    }
