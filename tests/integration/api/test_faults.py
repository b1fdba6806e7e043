"""Database faults against a real ``qerberos serve``: reads answer 503 (retryable), never 500, while the
PostgreSQL database or the ledger's schema is gone, or while the disk under an SQLite ledger is full; and
``/health`` says that the ledger cannot take writes, with the reason, until it can again.

The full disk is real: the service runs in a mount namespace of its own (``unshare``, no root needed) whose
``QERBEROS_HOME`` is an 8 MiB tmpfs, which the test fills through ``/proc/<pid>/root``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from models.ledger import initialise
from qerberos.settings import Settings
from tests.conftest import POSTGRES_ADMIN_URL, free_port, make_settings
from tests.integration.api.conftest import event_body, make_token
from tests.integration.ops.stack import BIN, Service, fresh_postgres_database, running

pytestmark = pytest.mark.slow
READS = ("/audit", "/audit/{id}", "/ledger/checkpoint")


def _environment(home: Path, tmp_path: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "QERBEROS_HOME": str(home),
        "QERBEROS_PORT": str(port),
        "QERBEROS_HOST": "127.0.0.1",
        "QERBEROS_AUTH_MODE": "local",
        "QERBEROS_LIVE_DETECTION": "off",
        "QERBEROS_CHECKPOINT_INTERVAL": "3600",  # no checkpoint but those the test asks for
        "QERBEROS_LOG_DIR": str(tmp_path / "logs"),
        "QERBEROS_LOG_LEVEL": "WARNING",
    }


@contextlib.contextmanager
def _served(
    settings: Settings, tmp_path: Path, command: list[str] | None = None, home: Path | None = None
) -> Iterator[tuple[Service, httpx.Client]]:
    """``command`` (default ``qerberos serve``) with its ``QERBEROS_HOME`` at ``home`` (default that of
    ``settings``, whose ledger is initialised here), and a client holding an admin token."""
    initialise(settings).close()
    token = make_token(settings, "faults", ["admin"])
    port = free_port()
    environment = _environment(home or settings.home, tmp_path, port)
    service = Service("serve", command or [str(BIN / "qerberos"), "serve"], environment, tmp_path)
    with (
        running(service),
        httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client,
    ):
        service.wait_http(f"http://127.0.0.1:{port}/health/live")
        yield service, client


def _post(client: httpx.Client, n: int, **changes: Any) -> httpx.Response:
    return client.post("/audit", json=event_body(n, **changes))


def _reads(client: httpx.Client, event_id: str) -> dict[str, int]:
    return {path: client.get(path.format(id=event_id)).status_code for path in READS}


def _unavailable(response: httpx.Response) -> tuple[int, str, bool]:
    body = response.json()
    return response.status_code, body["code"], body["retryable"]


def _unhandled(service: Service, tmp_path: Path) -> list[str]:
    """Lines of the service's log that report an error answered 500."""
    logs = [service.log, *(tmp_path / "logs").glob("*.log")]
    return [line for path in logs if path.exists() for line in path.read_text().splitlines() if "unhandled" in line]


@pytest.mark.postgres
@pytest.mark.parametrize("dropped", ["database", "schema"])
def test_postgres_reads_answer_503_never_500_while_the_database_or_the_schema_is_gone(
    dropped: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fresh_postgres_database("qerberos_faults") as url:
        schema_url = f"{url}?options=-csearch_path%3Dledger"
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("CREATE SCHEMA ledger")
        settings = make_settings(monkeypatch, tmp_path / "home", schema_url)
        with _served(settings, tmp_path) as (service, client):
            created = _post(client, 0)
            assert 201 == created.status_code, created.text
            event_id = created.json()["data"]["id"]
            assert dict.fromkeys(READS, 200) == _reads(client, event_id)

            if dropped == "database":
                with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)'.encode())
            else:
                with psycopg.connect(url, autocommit=True) as owner:
                    owner.execute("DROP SCHEMA ledger CASCADE")

            for _ in range(2):  # the first reads after the fault, and the next ones
                for path in READS:
                    answer = client.get(path.format(id=event_id))
                    assert (503, "DEPENDENCY_UNAVAILABLE", True) == _unavailable(answer), (path, answer.text)
            health = client.get("/health")
            assert (503, "unhealthy", ["database does not answer"]) == (
                health.status_code,
                health.json()["status"],
                health.json()["reasons"],
            )
            assert [] == _unhandled(service, tmp_path)


def _fill(directory: Path) -> Path:
    """Write into ``directory`` until its disk is full; the filler file."""
    filler = directory / "filler"
    chunk = b"\0" * (64 * 1024)
    with filler.open("wb") as out:
        try:
            while True:
                out.write(chunk)
                out.flush()
        except OSError as exc:
            assert errno.ENOSPC == exc.errno
    return filler


def test_sqlite_on_a_full_disk_refuses_writes_503_serves_reads_and_health_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared = make_settings(monkeypatch, tmp_path / "prepared")
    disk = tmp_path / "disk"
    disk.mkdir()
    assert shutil.which("unshare"), "unshare (util-linux) is needed to give the service a disk of its own"
    mount = 'mount -t tmpfs -o size=8m tmpfs "$0" && cp -a "$1"/. "$0"/ && exec "$2" serve'
    command = ["unshare", "--map-root-user", "--mount", "sh", "-c", mount, str(disk), str(prepared.home)]
    command.append(str(BIN / "qerberos"))
    with _served(prepared, tmp_path, command, home=disk) as (service, client):  # the tmpfs: only it sees it
        created = _post(client, 0)
        assert 201 == created.status_code, created.text
        event_id = created.json()["data"]["id"]
        healthy = client.get("/health").json()
        assert ("healthy", None) == (healthy["status"], healthy.get("reasons"))

        filler = _fill(Path(f"/proc/{service.process.pid}/root{disk}"))
        padding = "x" * 60_000
        refused = [_post(client, n, details={"padding": padding}) for n in range(1, 40)]
        statuses = [answer.status_code for answer in refused]
        assert 503 in statuses and set(statuses) <= {201, 503}, statuses
        assert (503, "DEPENDENCY_UNAVAILABLE", True) == _unavailable(refused[-1])
        for _ in range(3):  # the first checkpoint must be signed and stored now: the disk refuses it, each time
            answer = client.get("/ledger/checkpoint")
            assert (503, "DEPENDENCY_UNAVAILABLE", True) == _unavailable(answer), answer.text
        assert 200 == client.get(f"/audit/{event_id}").status_code
        assert 200 == client.get("/audit").status_code

        health = client.get("/health")
        detailed = client.get("/health/detailed").json()
        assert (200, "degraded") == (health.status_code, health.json()["status"])
        assert "the ledger's last write failed" in health.json()["reasons"]
        assert any(reason.startswith("the disk of QERBEROS_HOME is full") for reason in health.json()["reasons"])
        assert ("degraded", health.json()["reasons"]) == (detailed["status"], detailed["reasons"])
        assert detailed["disk"]["usedPercent"] > 99
        assert "database or disk is full" in detailed["ledger"]["lastWriteError"]

        filler.unlink()  # space again: the next write succeeds and health is back
        assert 201 == _post(client, 100).status_code
        assert 200 == client.get("/ledger/checkpoint").status_code
        recovered = client.get("/health").json()
        assert ("healthy", None) == (recovered["status"], recovered.get("reasons"))
        assert [] == _unhandled(service, tmp_path)
