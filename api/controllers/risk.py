"""``/risk-score``: score an identity or an operation (``POST``), an identity now (``GET /{identity}``), and the
riskiest identities (``GET ?level=&limit=``).

``POST`` reads its raw body and validates every field itself, so a bad request names every failing field
at once (msgspec stops at the first). Permissions: ``risk:calculate`` to score an operation, ``risk:read``
to read. The domain work is ``pipelines.risk.RiskService``; this module only translates.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

import msgspec
from litestar import Controller, Litestar, Request, get, post
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody
from litestar.params import FromPath, FromQuery, RawBody
from sqlalchemy import Engine

from analytics.risk import FACTOR_NAMES, LEVELS, OperationContext, RiskAssessment, load_config
from api.envelope import Envelope, ok
from models.ledger import Ledger
from models.risk_store import CurrentRisk, create_risk_tables
from pipelines.risk import AlertReader, RiskService
from pipelines.risk.level_events import iso_ms
from qerberos.errors import ValidationError
from qerberos.json_input import read_json

CALCULATE = "risk:calculate"
READ = "risk:read"
MAX_LIMIT = 1000
_MAX_TEXT = 100
_CONTEXT_KEYS = {"ip": ("ipAddress", "ip"), "country": ("country",), "device": ("deviceId", "device")}
_build_lock = threading.Lock()


class RiskScoreRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The upstream ``RiskScoreRequest``. ``context`` may carry ``ipAddress``/``ip``, ``country`` and
    ``deviceId``/``device`` (strings); other keys are accepted and ignored. ``factors``: the factor names
    to include (default: all)."""

    identity: str
    operation: str | None = None
    context: dict[str, Any] | None = None
    factors: list[str] | None = None


class RiskFactor(msgspec.Struct, frozen=True):
    name: str
    weight: float
    value: float


class RiskScore(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The upstream ``RiskScoreResponse.data`` (contracts/risk-score.schema.json)."""

    identity: str
    score: float
    level: str
    factors: list[RiskFactor]
    timestamp: str
    expiresAt: str
    operation: str | None = None
    modelVersion: str | None = None


class RiskRanking(msgspec.Struct, frozen=True, kw_only=True):
    """The riskiest identities by their latest identity assessment, riskiest first."""

    items: list[RiskScore]
    count: int
    level: str
    limit: int


_REQUEST_SCHEMA = msgspec.json.schema(RiskScoreRequest)


@dataclasses.dataclass
class _RiskScoreBody(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="The upstream RiskScoreRequest; factors names: " + ", ".join(FACTOR_NAMES),
            content={"application/json": OpenAPIMediaType(schema=_REQUEST_SCHEMA)},  # type: ignore[arg-type]
        )


def risk_service(request: Request[Any, Any, Any]) -> RiskService:
    """The app's ``RiskService`` (``app.state.risk``), built on first use over the ledger's database; it reads
    every identity's events into memory in the background meanwhile (``RiskService.prime``)."""
    service: RiskService | None = request.app.state.get("risk")
    if service is not None:
        return service
    with _build_lock:
        service = request.app.state.get("risk")
        if service is None:
            ledger: Ledger = request.app.state.service.require_ledger()
            service = build_service(ledger.engine, ledger, write_behind=True)
            threading.Thread(target=service.prime, name="qerberos-risk-prime", daemon=True).start()
            request.app.state.risk = service
    return service


def close_risk(app: Litestar) -> None:
    """An ``on_shutdown`` hook: store the history the write-behind writer still holds."""
    service: RiskService | None = app.state.get("risk")
    if service is not None:
        service.close()


def build_service(engine: Engine, ledger: Ledger | None, *, write_behind: bool = False) -> RiskService:
    """Risk over ``engine`` with the configured weights and, when detection is installed, its alert tables.
    ``write_behind``: the history is stored by a background writer (the served app; close it at shutdown)."""
    create_risk_tables(engine)
    alerts: AlertReader | None = None
    try:
        from models.alerts import AlertTables, create_alert_tables
    except ImportError:  # detection not installed: alerts and detector scores count 0
        pass
    else:
        create_alert_tables(engine)
        alerts = AlertTables()
    return RiskService(engine, load_config(), ledger=ledger, alerts=alerts, write_behind=write_behind)


class RiskController(Controller):
    path = "/risk-score"
    tags = ("Risk Scoring",)

    @post(
        "/",
        status_code=200,
        sync_to_thread=True,
        operation_class=_RiskScoreBody,
        opt={"permission": CALCULATE},
        summary="Calculate risk score",
        operation_id="calculateRiskScore",
    )
    def calculate(self, request: Request[Any, Any, Any], body: RawBody) -> Envelope[RiskScore]:
        parsed = decode_request(body)
        assessment = risk_service(request).assess(
            parsed.identity,
            operation=parsed.operation,
            context=parsed.context,
            access=access_of(parsed.context),
            factors=parsed.factors,
        )
        return ok(score_view(assessment))

    @get(
        "/{identity:str}",
        sync_to_thread=True,
        opt={"permission": READ},
        summary="Get identity risk score",
        operation_id="getIdentityRiskScore",
    )
    def identity_score(self, request: Request[Any, Any, Any], identity: FromPath[str]) -> Envelope[RiskScore]:
        problem = _text_problem(identity, required=True)
        if problem:
            raise ValidationError("invalid identity", details={"identity": problem})
        return ok(score_view(risk_service(request).assess(identity)))

    @get(
        "/",
        sync_to_thread=True,
        opt={"permission": READ},
        summary="Riskiest identities now",
        operation_id="listRiskiestIdentities",
        description="Identities at `level` or above (default: all) by their latest identity assessment.",
    )
    def riskiest(
        self, request: Request[Any, Any, Any], level: FromQuery[str | None] = None, limit: FromQuery[str | None] = None
    ) -> Envelope[RiskRanking]:
        min_level, count = parse_ranking_query(level, limit)
        service = risk_service(request)
        rows = service.store.riskiest(min_level=min_level, limit=count)
        items = [current_view(row, service.config.ttl_ms) for row in rows]
        return ok(RiskRanking(items=items, count=len(items), level=min_level, limit=count))


# -- translation ---------------------------------------------------------------------------------------------


def decode_request(body: bytes) -> RiskScoreRequest:
    """Decode and check a ``POST /risk-score`` body; one ``ValidationError`` naming every failing field."""
    raw = read_json(body)
    if not isinstance(raw, dict):
        raise ValidationError("invalid request", details={"body": "must be a JSON object"})
    problems: dict[str, str] = {}
    for key in sorted(set(raw) - {"identity", "operation", "context", "factors"}):
        problems[key] = "unknown field"
    problem = _text_problem(raw.get("identity"), required=True)
    if problem:
        problems["identity"] = problem
    problem = _text_problem(raw.get("operation"), required=False)
    if problem:
        problems["operation"] = problem
    context = raw.get("context")
    if context is not None and not isinstance(context, dict):
        problems["context"] = "must be an object"
    elif context:
        for aliases in _CONTEXT_KEYS.values():
            for key in aliases:
                if key in context and not (isinstance(context[key], str) and 0 < len(context[key]) <= 200):
                    problems[f"context.{key}"] = "must be a non-empty string of at most 200 characters"
    factors = raw.get("factors")
    if factors is not None:
        if not isinstance(factors, list) or not all(isinstance(name, str) for name in factors):
            problems["factors"] = "must be an array of factor names"
        else:
            unknown = [name for name in factors if name not in FACTOR_NAMES]
            if unknown:
                problems["factors"] = f"unknown: {', '.join(unknown)}; known: {', '.join(FACTOR_NAMES)}"
    if problems:
        raise ValidationError("invalid risk score request", details=problems)
    return RiskScoreRequest(identity=raw["identity"], operation=raw.get("operation"), context=context, factors=factors)


def _text_problem(value: Any, *, required: bool) -> str | None:
    if value is None:
        return "required" if required else None
    if not isinstance(value, str):
        return "must be a string"
    if not value.strip():
        return "must not be empty"
    if len(value) > _MAX_TEXT:
        return f"at most {_MAX_TEXT} characters"
    return None


def access_of(context: Mapping[str, Any] | None) -> OperationContext:
    if not context:
        return OperationContext()
    found = {field: next((context[k] for k in keys if k in context), None) for field, keys in _CONTEXT_KEYS.items()}
    return OperationContext(**found)


def parse_ranking_query(level: str | None, limit: str | None) -> tuple[str, int]:
    problems: dict[str, str] = {}
    min_level = "low" if level is None else level
    if min_level not in LEVELS:
        problems["level"] = f"must be one of {', '.join(LEVELS)}"
    count = 50
    if limit is not None:
        try:
            count = int(limit)
        except ValueError:
            count = 0
        if not 1 <= count <= MAX_LIMIT:
            problems["limit"] = f"must be an integer from 1 to {MAX_LIMIT}"
    if problems:
        raise ValidationError("invalid query", details=problems)
    return min_level, count


def score_view(assessment: RiskAssessment) -> RiskScore:
    return RiskScore(
        identity=assessment.identity,
        score=assessment.score,
        level=assessment.level,
        factors=[RiskFactor(f.name, f.weight, f.value) for f in assessment.factors],
        timestamp=iso_ms(assessment.as_of_ms),
        expiresAt=iso_ms(assessment.expires_at_ms),
        operation=assessment.operation,
        modelVersion=assessment.model_version,
    )


def current_view(row: CurrentRisk, ttl_ms: int) -> RiskScore:
    return RiskScore(
        identity=row.identity,
        score=row.score,
        level=row.level,
        factors=[RiskFactor(f["name"], f["weight"], f["value"]) for f in row.factors],
        timestamp=iso_ms(row.computed_at_ms),
        expiresAt=iso_ms(row.computed_at_ms + ttl_ms),
    )
