"""Group commit of ``POST /audit`` against the real app and a real SQLite ledger: many concurrent requests
in few transactions with contiguous sequence numbers, a conflict failing only its own request, a database
error answered 503 to the whole group, and a real server stopped by SIGTERM under load losing no
acknowledged event."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import SecurityHooks, create_app
from api.controllers.audit import INGEST_QUEUE_KEY
from models.ledger import Ledger, initialise
from models.verification import verify_ledger
from qerberos.errors import LedgerError
from qerberos.settings import Settings
from tests.conftest import free_port, make_settings
from tests.integration.api.conftest import event_body, local_security, make_token

REPO = Path(__file__).resolve().parents[3]


async def _post_concurrently(client: httpx.AsyncClient, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    return list(await asyncio.gather(*(client.post("/audit", json=body) for body in bodies)))


def _run(settings: Settings, token: str, scenario: Any, security: SecurityHooks | None = None) -> Any:
    """The app on this event loop (Litestar's test clients run requests one at a time on another thread)."""

    async def main() -> Any:
        app = create_app(settings, security=security)
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            app.lifespan(),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers
            ) as client,
        ):
            return await scenario(app, client)

    return asyncio.run(main())


def test_concurrent_single_posts_commit_in_few_transactions_with_contiguous_seqs(
    api_settings: Settings, admin_token: str
) -> None:
    bodies = [event_body(n) for n in range(40)]

    async def scenario(app: Any, client: httpx.AsyncClient) -> tuple[list[httpx.Response], int]:
        answers = await _post_concurrently(client, bodies)
        return answers, app.state[INGEST_QUEUE_KEY].stats.groups

    answers, groups = _run(api_settings, admin_token, scenario)

    assert [201] * 40 == [answer.status_code for answer in answers]
    seqs = sorted(answer.json()["data"]["seq"] for answer in answers)
    assert list(range(40)) == seqs
    assert groups < 40
    with Ledger.from_settings(api_settings) as ledger:
        assert 40 == ledger.size()
        for answer, body in zip(answers, bodies, strict=True):
            data = answer.json()["data"]
            record = ledger.get(uuid.UUID(data["id"]))
            assert (data["seq"], body["ref"]) == (record.seq, record.ref)


def test_a_conflicting_id_fails_only_its_own_request_in_a_group(api_settings: Settings, admin_token: str) -> None:
    reused = str(uuid.uuid4())
    bodies = [event_body(n) for n in range(10)]
    bodies[3] = event_body(3, id=reused, ref="file:other-content")  # same id, other content: 409
    bodies[6] = event_body(99, id=reused)  # an exact retry: 201 with the original record

    async def scenario(app: Any, client: httpx.AsyncClient) -> tuple[httpx.Response, list[httpx.Response]]:
        first = await client.post("/audit", json=event_body(99, id=reused))
        return first, await _post_concurrently(client, bodies)

    first, answers = _run(api_settings, admin_token, scenario)

    assert 201 == first.status_code
    assert 409 == answers[3].status_code
    assert "CONFLICT" == answers[3].json()["code"]
    assert 201 == answers[6].status_code
    assert first.json()["data"] == answers[6].json()["data"]
    assert [201] * 8 == [answer.status_code for n, answer in enumerate(answers) if n not in (3, 6)]
    with Ledger.from_settings(api_settings) as ledger:
        assert 9 == ledger.size()  # the first event and the eight new ones


def test_a_database_error_answers_503_to_every_request_of_the_group(
    api_settings: Settings, admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(app: Any, client: httpx.AsyncClient) -> list[httpx.Response]:
        ledger = app.state.service.ledger

        def broken(events: Any) -> Any:
            raise LedgerError("ledger write failed: OperationalError")

        monkeypatch.setattr(ledger, "append", broken)
        return await _post_concurrently(client, [event_body(n) for n in range(12)])

    answers = _run(api_settings, admin_token, scenario)

    assert [503] * 12 == [answer.status_code for answer in answers]
    assert {("DEPENDENCY_UNAVAILABLE", True)} == {
        (answer.json()["code"], answer.json()["retryable"]) for answer in answers
    }
    with Ledger.from_settings(api_settings) as ledger:
        assert 0 == ledger.size()


def test_a_nul_character_fails_only_its_own_request_in_a_group_on_both_backends(backend_api_settings: Settings) -> None:
    """PostgreSQL refused the NUL inside the group's append: all 29 requests answered 503, 28 of them valid."""
    bodies = [event_body(n) for n in range(29)]
    bodies[13] = event_body(13, ref="file:a\u0000b")
    token = make_token(backend_api_settings, "group", ["admin"])

    async def scenario(app: Any, client: httpx.AsyncClient) -> tuple[list[httpx.Response], int]:
        return await _post_concurrently(client, bodies), app.state[INGEST_QUEUE_KEY].stats.groups

    with local_security(backend_api_settings) as security:
        answers, groups = _run(backend_api_settings, token, scenario, security)

    assert (400, {"ref": "holds a NUL character"}) == (answers[13].status_code, answers[13].json()["details"])
    assert [201] * 28 == [answer.status_code for n, answer in enumerate(answers) if n != 13]
    assert groups < 28
    with Ledger.from_settings(backend_api_settings) as ledger:
        assert 28 == ledger.size()
        assert verify_ledger(ledger).intact


def _refuse_poison(settings: Settings) -> None:
    """A real refusal by the database of one row that passes every check of ours: a trigger on the entries."""
    with Ledger.from_settings(settings) as ledger, ledger.engine.begin() as connection:
        if settings.is_sqlite:
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON ledger_entries WHEN NEW.ref = 'file:poison' "
                "BEGIN SELECT RAISE(ABORT, 'poison refused'); END"
            )
            return
        connection.exec_driver_sql(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.ref = 'file:poison' THEN RAISE EXCEPTION 'poison refused' USING ERRCODE = 'check_violation'; "
            "END IF; RETURN NEW; END $$"
        )
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON ledger_entries FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
        )


def test_a_row_the_database_refuses_fails_only_its_own_request_in_a_group(backend_api_settings: Settings) -> None:
    """The safety net behind decoding: an unforeseen refusal of one row makes each event of the group commit
    alone; its neighbours are appended and acknowledged, the refused one answers 500 (a bug, logged)."""
    _refuse_poison(backend_api_settings)
    bodies = [event_body(n) for n in range(12)]
    bodies[5] = event_body(5, ref="file:poison")
    token = make_token(backend_api_settings, "group", ["admin"])

    async def scenario(app: Any, client: httpx.AsyncClient) -> list[httpx.Response]:
        return await _post_concurrently(client, bodies)

    with local_security(backend_api_settings) as security:
        answers = _run(backend_api_settings, token, scenario, security)

    assert ("INTERNAL_ERROR", False) == (answers[5].json()["code"], 201 == answers[5].status_code)
    assert [201] * 11 == [answer.status_code for n, answer in enumerate(answers) if n != 5]
    with Ledger.from_settings(backend_api_settings) as ledger:
        assert 11 == ledger.size()
        assert sorted(answer.json()["data"]["seq"] for n, answer in enumerate(answers) if n != 5) == list(range(11))
        assert verify_ledger(ledger).intact


# -- a real server process stopped while under load -------------------------------------------------


async def _load(url: str, token: str, stop_after: float, process: subprocess.Popen[bytes]) -> list[str]:
    """32 connections posting until the server goes away; SIGTERM after ``stop_after`` seconds."""
    acknowledged: list[str] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:

        async def connection(worker: int) -> None:
            for n in range(100_000):
                try:
                    answer = await client.post("/audit", json=event_body(worker * 100_000 + n))
                except httpx.HTTPError:
                    return
                if answer.status_code != 201:
                    return
                acknowledged.append(answer.json()["data"]["id"])

        async def terminate() -> None:
            await asyncio.sleep(stop_after)
            process.send_signal(signal.SIGTERM)

        await asyncio.gather(terminate(), *(connection(worker) for worker in range(32)))
    return acknowledged


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_loses_no_acknowledged_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    port = free_port()
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings = make_settings(monkeypatch, tmp_path / "home")
    initialise(settings).close()
    env = {
        **os.environ,
        "QERBEROS_HOME": str(settings.home),
        "QERBEROS_PORT": str(port),
        "QERBEROS_HOST": "127.0.0.1",
        "QERBEROS_AUTH_MODE": "local",
        "QERBEROS_RATE_LIMIT_PER_MINUTE": "0",
        "QERBEROS_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "cli.serve", "serve", "--workers", str(workers)]
    server_log = tmp_path / "server.log"
    with server_log.open("wb") as log:
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            started = process.poll() is None and time.monotonic() < deadline
            assert started, f"the server did not start (exit {process.poll()}): {server_log.read_text()[-2000:]}"
            time.sleep(0.2)
        token = (settings.home / "admin.token").read_text().strip()
        acknowledged = asyncio.run(_load(url, token, 2.0, process))
        # uvicorn re-raises the captured SIGTERM once its graceful shutdown is done
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert acknowledged  # the load ran before the stop
    with Ledger.from_settings(settings) as ledger, ledger.engine.connect() as connection:
        stored = {row[0] for row in connection.exec_driver_sql("SELECT id FROM ledger_entries")}
    assert set() == set(acknowledged) - stored
