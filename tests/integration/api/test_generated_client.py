"""A client generated from the served document by openapi-python-client, as an integrator would make one: it
generates without a warning, and, imported here, logs an event, replays it, reads a search page and its next one,
and gets the 404 and the 409 as the document's ``ErrorResponse``, against a real ``qerberos serve``.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.conftest import make_settings
from tests.integration.api.conftest import event_body
from tests.integration.api.served import Served, serve

PACKAGE = "qerberos_generated_client"
CONFIG = (
    "content_type_overrides:\n"
    "  application/x-ndjson: application/octet-stream\n"
    "  text/plain: application/octet-stream\n"
)
"""The one setting the generator needs: it supports neither NDJSON nor plain text bodies, so those (a batch as
NDJSON, a log of another format posted to ``/ingest/{format}``) are sent as bytes."""


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    with serve(make_settings(monkeypatch, tmp_path / "home"), tmp_path / "logs", QERBEROS_LIVE_DETECTION="off") as it:
        yield it


@pytest.fixture
def client_package(served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    document = tmp_path / "openapi.json"
    document.write_bytes(httpx.get(f"{served.url}/schema/openapi.json").content)
    config = tmp_path / "generator.yaml"
    config.write_text(CONFIG)
    generator = Path(sys.executable).parent / "openapi-python-client"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [str(generator), "generate", "--path", str(document), "--meta", "none", "--fail-on-warning"]
    command += ["--config", str(config), "--output-path", str(tmp_path / PACKAGE)]
    generated = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert 0 == generated.returncode, generated.stdout + generated.stderr
    assert "Warning" not in generated.stdout + generated.stderr
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module(PACKAGE)
    for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
        del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_the_generated_client_logs_replays_pages_and_reads_the_errors(
    client_package: ModuleType, served: Served
) -> None:
    with client_package.AuthenticatedClient(base_url=served.url, token=served.token) as client:
        _log_replay_page_and_fail(client)


def _log_replay_page_and_fail(client: Any) -> None:
    models = _module("models")
    log_event = _module("api.audit.log_audit_event")
    search = _module("api.audit.search_audit_events")
    get_event = _module("api.audit.get_audit_event")
    key = str(uuid.uuid4())

    for n in range(3):
        created = log_event.sync_detailed(client=client, body=models.AuditEventRequest.from_dict(event_body(n)))
        assert 201 == created.status_code, created.content
    first = log_event.sync(client=client, body=models.AuditEventRequest.from_dict(event_body(7)), idempotency_key=key)
    replayed = log_event.sync(
        client=client, body=models.AuditEventRequest.from_dict(event_body(7)), idempotency_key=key
    )
    assert isinstance(first, models.AuditEventResponse)
    assert (key, first.data.seq) == (str(replayed.data.id), replayed.data.seq)

    page = search.sync(client=client, limit=2)
    assert isinstance(page, models.AuditEventSearchResponse)
    assert (4, 2, True) == (page.data.total_count, len(page.data.events), page.data.has_more)
    rest = search.sync(client=client, limit=2, cursor=page.data.next_cursor)
    assert [3, 2, 1, 0] == [event.seq for event in [*page.data.events, *rest.data.events]]

    missing = get_event.sync_detailed(client=client, id=uuid.uuid4())
    assert 404 == missing.status_code
    assert isinstance(missing.parsed, models.ErrorResponse)
    assert "NOT_FOUND" == missing.parsed.code

    conflict = log_event.sync_detailed(
        client=client, body=models.AuditEventRequest.from_dict(event_body(8)), idempotency_key=key
    )
    assert 409 == conflict.status_code
    assert isinstance(conflict.parsed, models.ErrorResponse)
    assert ("CONFLICT", False) == (conflict.parsed.code, conflict.parsed.retryable)
