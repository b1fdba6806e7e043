"""The MCP ``qerberos.detectAnomaly`` tool scores with the champion the REST route uses: ``qerberos mcp`` over
stdio, as a local identity holding ``anomaly:detect``, against a real MLflow store whose champion was trained
on simulated traffic."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from models.database import create_ledger_engine
from models.identities import create_identity
from models.schema import prepare
from qerberos.settings import Settings
from tests.integration.detection_live.test_anomaly_routes import NORMAL

ROOT = Path(__file__).resolve().parents[3]
ODD = {**NORMAL, "event_count": 400, "distinct_refs": 380, "deny_ratio": 0.9, "new_ref_share": 1.0,
       "rate_vs_baseline": 80.0, "new_country_count": 2, "new_ip_count": 3, "squidId": "did:squid:odd"}  # fmt: skip


def test_detect_anomaly_over_mcp_flags_the_odd_row_with_the_champion(
    sqlite_settings: Settings, tracking_uri: str
) -> None:
    prepare(sqlite_settings).close()
    engine = create_ledger_engine(sqlite_settings.database_url)
    try:
        create_identity(engine, "analyst-agent", ["anomaly:detect"])
    finally:
        engine.dispose()
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-c", "import cli; cli.main()", "mcp"],
        env=os.environ
        | {
            "PYTHONPATH": str(ROOT),
            "QERBEROS_MCP_IDENTITY": "analyst-agent",
            "QERBEROS_MLFLOW_TRACKING_URI": tracking_uri,
        },
        cwd=ROOT,
    )

    async def run() -> tuple[dict[str, Any], bool]:
        async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            found = await session.call_tool("qerberos.detectAnomaly", {"data": {"features": [NORMAL, ODD]}})
            refused = await session.call_tool("qerberos.detectAnomaly", {"data": {}})
            assert not found.is_error and found.structured_content is not None, found.content
            return found.structured_content, refused.is_error

    found, refused_is_error = anyio.run(run)
    # the tool answers the route's data, without its envelope
    assert ["did:squid:odd"] == [anomaly["context"]["squidId"] for anomaly in found["anomalies"]]
    assert ("1.0.0", 1) == (found["modelInfo"]["version"], found["summary"]["totalAnomalies"])
    assert refused_is_error  # neither events nor features: the route's 400, as a tool error
