"""``qerberos mcp`` driven by the MCP SDK's own client, over streamable HTTP (a real server in remote mode,
authenticated by the dev sQuid and authorised by the dev Qonsent, as the API is) and over stdio (as a named
local identity): the tools and their schemas are the upstream ones, they call the services the REST routes
call, and each asks the REST route's permission."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from models.database import create_ledger_engine
from models.identities import create_identity
from models.ledger import Ledger
from models.schema import prepare
from qerberos.settings import Settings
from tests.conftest import free_port
from tests.integration.security.servers import dev_server, stop

ROOT = Path(__file__).resolve().parents[3]
UPSTREAM_TOOLS = json.loads((ROOT / "api" / "mcp" / "upstream-tools.json").read_text(encoding="utf-8"))["tools"]
READ_TOOLS = {"qerberos.searchEvents", "qerberos.getInclusionProof", "qerberos.verifyEvent"}
EVENT = {"type": "access", "ref": "file:doc-1", "actor": {"squidId": "did:squid:dave"}, "layer": "qdrive",
         "verdict": "ALLOW", "details": {"operation": "download"}}  # fmt: skip


def _command(*arguments: str) -> list[str]:
    return [sys.executable, "-c", "import cli; cli.main()", *arguments]


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``qerberos mcp --transport http`` in remote mode, for the module's tests (it starts in seconds); its URL."""
    state = tmp_path_factory.mktemp("mcp-http")
    with dev_server("squid") as (squid_url, _), dev_server("qonsent") as (qonsent_url, _):
        port = free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith("QERBEROS_")} | {
            "PYTHONPATH": str(ROOT), "QERBEROS_HOME": str(state / "home"), "QERBEROS_LOG_DIR": str(state / "logs"),
            "QERBEROS_LIVE_DETECTION": "off", "QERBEROS_AUTH_MODE": "remote", "QERBEROS_SQUID_URL": squid_url,
            "QERBEROS_QONSENT_URL": qonsent_url, "QERBEROS_MCP_PORT": str(port), "QERBEROS_CHECKPOINT_INTERVAL": "0.2",
        }  # fmt: skip
        process = subprocess.Popen(_command("mcp", "--transport", "http"), cwd=ROOT, env=env, stderr=subprocess.PIPE)
        try:
            _wait_ready(f"http://127.0.0.1:{port}", process)
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            stop(process)


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120  # a loaded machine takes a while to import the app
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("qerberos mcp did not start")


@contextlib.asynccontextmanager
async def _http_session(url: str, token: str) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def _error(result: types.CallToolResult) -> dict[str, Any]:
    assert result.is_error
    (content,) = result.content
    assert isinstance(content, types.TextContent)
    error: dict[str, Any] = json.loads(content.text)
    return error


def _data(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def test_http_tools_are_the_upstream_five_with_their_schemas_and_the_read_tools(http_server: str) -> None:
    async def run() -> list[types.Tool]:
        async with _http_session(http_server, "dev-token-bob") as session:
            return (await session.list_tools()).tools

    tools = anyio.run(run)
    upstream = {tool["name"]: (tool["inputSchema"], tool["outputSchema"]) for tool in UPSTREAM_TOOLS}
    served = {tool.name: (tool.input_schema, tool.output_schema) for tool in tools}
    assert upstream == {name: served[name] for name in upstream}
    assert READ_TOOLS == set(served) - set(upstream)


def test_http_audit_then_search_prove_and_verify_with_the_api_permissions(http_server: str) -> None:
    async def run() -> tuple[dict[str, Any], ...]:
        async with _http_session(http_server, "dev-token-alice") as alice:  # audit write and read
            created = _data(await alice.call_tool("qerberos.audit", EVENT))
            found = _data(await alice.call_tool("qerberos.searchEvents", {"actor": "did:squid:dave"}))
            proof = _data(await alice.call_tool("qerberos.getInclusionProof", {"id": created["id"]}))
            verified = _data(await alice.call_tool("qerberos.verifyEvent", {"id": created["id"]}))
            denied_risk = _error(await alice.call_tool("qerberos.riskScore", {"identity": "did:squid:dave"}))
        async with _http_session(http_server, "dev-token-bob") as bob:  # audit read only
            denied_write = _error(await bob.call_tool("qerberos.audit", EVENT))
        async with _http_session(http_server, "dev-token-carol") as carol:  # admin
            risk = _data(await carol.call_tool("qerberos.riskScore", {"identity": "did:squid:dave"}))
            report = _data(await carol.call_tool("qerberos.complianceReport", {"type": "gdpr"}))
        return created, found, proof, verified, denied_risk, denied_write, risk, report

    created, found, proof, verified, denied_risk, denied_write, risk, report = anyio.run(run)
    # generated now: the answer within the route's wait, or the job to poll, as GET /compliance/report answers
    assert "reportId" in report or ("pending", "gdpr") == (report["status"], report["job"]["type"])
    assert [created["id"]] == [event["id"] for event in found["events"]]
    assert (created["seq"], True, None) == (proof["leafIndex"], verified["verified"], verified["reason"])
    assert ("PermissionDeniedError", "PermissionDeniedError") == (denied_risk["error"], denied_write["error"])
    assert ("risk:calculate", "qerberos:audit:write") == (
        denied_risk["details"]["permission"],
        denied_write["details"]["permission"],
    )
    assert ("did:squid:dave", True) == (risk["identity"], 0 <= risk["score"] <= 1)


def test_http_refuses_a_caller_without_credentials(http_server: str) -> None:
    response = httpx.post(http_server, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert 401 == response.status_code


def test_stdio_runs_as_the_named_local_identity_with_its_grants(sqlite_settings: Settings) -> None:
    prepare(sqlite_settings).close()
    engine = create_ledger_engine(sqlite_settings.database_url)
    try:
        create_identity(engine, "agent", ["qerberos:audit:write", "audit:read", "alerts:read"])
    finally:
        engine.dispose()
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-c", "import cli; cli.main()", "mcp"],
        env=os.environ | {"PYTHONPATH": str(ROOT), "QERBEROS_MCP_IDENTITY": "agent"},
        cwd=ROOT,
    )

    async def run() -> tuple[dict[str, Any], ...]:
        async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            created = _data(await session.call_tool("qerberos.audit", EVENT))
            found = _data(await session.call_tool("qerberos.searchEvents", {"limit": 10}))
            alerts = _data(await session.call_tool("qerberos.getAlerts", {"status": "active"}))
            denied = _error(await session.call_tool("qerberos.complianceReport", {"type": "gdpr"}))
            return created, found, alerts, denied

    created, found, alerts, denied = anyio.run(run)
    assert [created["id"]] == [event["id"] for event in found["events"]]
    with Ledger.from_settings(sqlite_settings) as ledger:
        assert "local:agent" == ledger.get(uuid.UUID(created["id"])).source  # submitted as the named identity
    assert ([], 0) == (alerts["alerts"], alerts["totalCount"])
    assert "compliance:generate" == denied["details"]["permission"]
