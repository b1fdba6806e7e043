"""The MCP tools: the five of the upstream ``mcp.json`` (copied as ``upstream-tools.json``) and three read tools
of our own (``read_tools.json``), each calling the service its REST route calls, after the same permission.

A tool runs against the served app (``litestar.Litestar``): its services live where the REST routes find them
(``app.state``), reached through the routes' own accessors with a ``ToolRequest`` in place of an HTTP request.
What a tool answers is the JSON its output schema describes; a ``QerberosError`` becomes the tool's error.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from collections.abc import Awaitable, Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Litestar

from analytics.risk import OperationContext
from api.controllers.anomaly import READ as ALERTS_READ
from api.controllers.anomaly import DetectRequest, alert_view, detect_anomalies
from api.controllers.audit import READ as AUDIT_READ
from api.controllers.audit import WRITE as AUDIT_WRITE
from api.controllers.audit import ingest_queue_of, ledger_of, parse_event_id
from api.controllers.compliance import GENERATE, REPORT_WAIT_SECONDS, report_period
from api.controllers.risk import CALCULATE, decode_request, score_view
from api.schemas import created_view, event_view
from api.security.caller import Caller, Credential
from api.services import provide_alerts, provide_detection, provide_report_jobs, provide_risk, provide_settings
from models.canonical import canonical_record, to_epoch_ms
from models.ledger import checkpoint_size
from models.records import SearchQuery
from models.wire_events import convert_event
from pipelines.reports import ReportRequest, find_report, output_path
from qerberos import verifier
from qerberos.errors import ValidationError
from qerberos.instants import parse_instant

__all__ = ["TOOL_PERMISSIONS", "ToolRequest", "call_tool", "tool_definitions"]

_HERE = Path(__file__).parent
Authorise = Callable[[str], Awaitable[None]]
"""Raises ``PermissionDeniedError`` (or ``AuthenticationError``) unless the caller holds the permission."""


@dataclasses.dataclass(frozen=True, slots=True)
class ToolRequest:
    """What the REST routes' accessors read of a request: the app, and the caller in ``scope``."""

    app: Litestar
    caller: Caller
    credential: Credential

    @property
    def scope(self) -> dict[str, Any]:
        return {"user": self.caller, "auth": self.credential}


@cache
def tool_definitions() -> list[dict[str, Any]]:
    """Every tool: name, description, inputSchema and outputSchema, upstream's first."""
    upstream = json.loads((_HERE / "upstream-tools.json").read_text(encoding="utf-8"))["tools"]
    ours = json.loads((_HERE / "read_tools.json").read_text(encoding="utf-8"))["tools"]
    return [*upstream, *ours]


def _plain(value: Any) -> dict[str, Any]:
    converted: dict[str, Any] = msgspec.to_builtins(value)
    return converted


async def _audit(request: ToolRequest, arguments: Mapping[str, Any]) -> dict[str, Any]:
    event = convert_event(dict(arguments))  # the decoder of POST /audit and qerberos ingest
    result = await ingest_queue_of(request).submit(event.to_new_event(request.caller.source))  # type: ignore[arg-type]
    return _plain(created_view(result))


async def _risk_score(request: ToolRequest, arguments: Mapping[str, Any]) -> dict[str, Any]:
    parsed = decode_request(msgspec.json.encode(arguments))
    service = provide_risk(request.app.state)
    assessment = await anyio.to_thread.run_sync(
        lambda: service.assess(
            parsed.identity,
            operation=parsed.operation,
            context=parsed.context,
            access=OperationContext.of_request(parsed.context),
            factors=parsed.factors,
        )
    )
    return _plain(score_view(assessment))


async def _detect_anomaly(request: ToolRequest, arguments: Mapping[str, Any]) -> dict[str, Any]:
    body = msgspec.convert(dict(arguments), DetectRequest)
    result = await anyio.to_thread.run_sync(detect_anomalies, provide_detection(request.app.state), body)
    return _plain(result)


async def _get_alerts(request: ToolRequest, arguments: Mapping[str, Any]) -> dict[str, Any]:
    severity, status = arguments.get("severity"), arguments.get("status")
    limit = int(arguments.get("limit", 100))
    store = provide_alerts(request.app.state)

    def read() -> dict[str, Any]:
        listed, total = store.page(severity=severity, status=status, limit=limit)
        return {"alerts": [_plain(alert_view(alert)) for alert in listed], "totalCount": total}

    return await anyio.to_thread.run_sync(read)


async def _compliance_report(request: ToolRequest, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """``GET /compliance/report`` in JSON: the existing report of the period, or one generated now (waited for as
    the route waits; a report still running answers its job to poll with the REST route)."""
    if arguments.get("format", "json") != "json":
        raise ValidationError("MCP answers JSON reports", details={"format": "json only; pdf and csv over REST"})
    settings = provide_settings(request.app.state)
    report_type = arguments.get("type", "gdpr")
    period = report_period(arguments.get("startDate"), arguments.get("endDate"))
    manifest = await asyncio.to_thread(find_report, report_type, period, settings)
    if manifest is None:
        wanted = ReportRequest(
            report_type, period.start, period.end, source=request.caller.source, actor=request.caller.squid_id
        )
        job = provide_report_jobs(request.app.state).submit(wanted)
        try:
            result = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(job.future)), REPORT_WAIT_SECONDS)
        except TimeoutError:
            return {"status": "pending", "job": job.view()}
        manifest = result.manifest
    path = output_path(str(manifest["reportId"]), "json", settings)
    report: dict[str, Any] = json.loads(await anyio.to_thread.run_sync(path.read_text))
    return report


async def _search_events(request: ToolRequest, arguments: Mapping[str, Any]) -> dict[str, Any]:
    start, end = arguments.get("startDate"), arguments.get("endDate")
    query = SearchQuery(
        type=arguments.get("type"),
        actor=arguments.get("actor"),
        layer=arguments.get("layer"),
        verdict=arguments.get("verdict"),
        start=None if start is None else parse_instant(start, "startDate"),
        end=None if end is None else parse_instant(end, "endDate"),
        limit=int(arguments.get("limit", 100)),
        cursor=arguments.get("cursor"),
    )
    page = await anyio.to_thread.run_sync(ledger_of(request).search, query)  # type: ignore[arg-type]
    return {
        "events": [_plain(event_view(record)) for record in page.records],
        "totalCount": page.total_count,
        "hasMore": page.has_more,
        "nextCursor": page.next_cursor,
    }


async def _inclusion_proof(request: ToolRequest, arguments: Mapping[str, Any]) -> dict[str, Any]:
    ledger = ledger_of(request)  # type: ignore[arg-type]
    event_id = parse_event_id(str(arguments["id"]))

    def prove() -> dict[str, Any]:
        return ledger.inclusion_proof(ledger.get(event_id).seq, arguments.get("treeSize")).to_json()

    return await anyio.to_thread.run_sync(prove)


async def _verify_event(request: ToolRequest, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Fails closed: anything that does not check out is ``verified: false`` with the reason."""
    ledger = ledger_of(request)  # type: ignore[arg-type]
    event_id = parse_event_id(str(arguments["id"]))

    def verify() -> dict[str, Any]:
        record = ledger.get(event_id)
        proof = ledger.inclusion_proof(record.seq)
        answer: dict[str, Any] = {
            "verified": False,
            "id": str(record.id),
            "seq": record.seq,
            "treeSize": proof.tree_size,
        }
        if proof.checkpoint is None:
            return answer | {"reason": f"no signed checkpoint of size {proof.tree_size}"}
        answer["checkpoint"] = proof.checkpoint
        actor = record.actor
        canonical = canonical_record(
            seq=record.seq, event_id=str(record.id), type=record.type, ref=record.ref, squid_id=actor.squid_id,
            sub_id=actor.sub_id, dao_id=actor.dao_id, layer=record.layer, verdict=record.verdict,
            details_commitment=record.details_commitment, cid=record.cid,
            occurred_at_ms=to_epoch_ms(record.occurred_at), received_at_ms=to_epoch_ms(record.received_at),
            source=record.source,
        )  # fmt: skip
        leaf = verifier.leaf_hash(canonical)
        if leaf != proof.leaf_hash:
            return answer | {"reason": "the stored record does not hash to its leaf"}
        try:
            checkpoint = verifier.verify_checkpoint(proof.checkpoint, ledger.verifier_keys(), ledger.origin)
            if checkpoint.size != checkpoint_size(proof.checkpoint):
                raise verifier.VerificationError("checkpoint size mismatch")
            verifier.verify_inclusion(record.seq, checkpoint.size, leaf, proof.proof, checkpoint.root_hash)
        except verifier.VerificationError as exc:
            return answer | {"reason": str(exc)}
        return answer | {"verified": True, "reason": None, "rootHash": base64.b64encode(checkpoint.root_hash).decode()}

    return await anyio.to_thread.run_sync(verify)


_Tool = Callable[[ToolRequest, Mapping[str, Any]], Awaitable[dict[str, Any]]]
_TOOLS: dict[str, tuple[str, _Tool]] = {
    "qerberos.audit": (AUDIT_WRITE, _audit),
    "qerberos.riskScore": (CALCULATE, _risk_score),
    "qerberos.detectAnomaly": ("anomaly:detect", _detect_anomaly),
    "qerberos.getAlerts": (ALERTS_READ, _get_alerts),
    "qerberos.complianceReport": (GENERATE, _compliance_report),
    "qerberos.searchEvents": (AUDIT_READ, _search_events),
    "qerberos.getInclusionProof": (AUDIT_READ, _inclusion_proof),
    "qerberos.verifyEvent": (AUDIT_READ, _verify_event),
}
TOOL_PERMISSIONS = {name: permission for name, (permission, _tool) in _TOOLS.items()}
"""The permission each tool needs: the one of the REST route it stands for."""


async def call_tool(
    request: ToolRequest, authorise: Authorise, name: str, arguments: Mapping[str, Any]
) -> dict[str, Any]:
    """Authorise, then run the tool ``name``. Raises ``ValidationError`` for an unknown tool."""
    if name not in _TOOLS:
        raise ValidationError(f"unknown tool {name}", details={"name": "not one of tools/list"})
    permission, tool = _TOOLS[name]
    await authorise(permission)
    return await tool(request, arguments)
