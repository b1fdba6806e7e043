"""``/risk-score``: score an identity or an operation (``POST``), an identity now (``GET /{identity}``), and the
riskiest identities (``GET ?level=&limit=``).

``POST`` reads its raw body and checks every field against ``_FIELD_CHECKS``, so a bad request names every
failing field at once (msgspec stops at the first). Permissions: ``risk:calculate`` to score an operation,
``risk:read`` to read. The domain work is ``pipelines.risk.RiskService``, injected as ``risk``
(``api.services``); this module only translates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, get, post
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody
from litestar.params import FromPath, FromQuery, RawBody

from analytics.risk import CONTEXT_KEYS, FACTOR_NAMES, LEVELS, OperationContext, RiskAssessment
from api.envelope import Envelope, ok
from api.openapi_bodies import schema_ref
from api.schemas import NOT_BLANK
from api.services import Risk, provides
from models.risk_store import CurrentRisk
from qerberos.errors import ValidationError
from qerberos.instants import iso_epoch_ms
from qerberos.json_input import read_json

CALCULATE = "risk:calculate"
READ = "risk:read"
MAX_LIMIT = 1000
_MAX_TEXT = 100
_MAX_CONTEXT_TEXT = 200


_TEXT = msgspec.Meta(min_length=1, max_length=_MAX_TEXT, pattern=NOT_BLANK)
"""What ``_text_problem`` accepts, for the document (``decode_request`` checks it, naming every failing field)."""


class RiskScoreRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The upstream ``RiskScoreRequest``. ``context`` may carry ``ipAddress``/``ip``, ``country`` and
    ``deviceId``/``device`` (strings); other keys are accepted and ignored. ``factors``: the factor names
    to include (default: all)."""

    identity: Annotated[str, _TEXT]
    operation: Annotated[str, _TEXT] | None = None
    context: dict[str, Any] | None = None
    factors: list[Literal[FACTOR_NAMES]] | None = None  # type: ignore[valid-type]


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


@dataclasses.dataclass
class _RiskScoreBody(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="The upstream RiskScoreRequest; factors names: " + ", ".join(FACTOR_NAMES),
            content={"application/json": OpenAPIMediaType(schema=schema_ref("RiskScoreRequest"))},  # type: ignore[arg-type]
        )


class RiskController(Controller):
    path = "/risk-score"
    tags = ("Risk Scoring",)
    dependencies = provides("risk")

    @post(
        "/",
        status_code=200,
        sync_to_thread=True,
        operation_class=_RiskScoreBody,
        opt={"permission": CALCULATE},
        summary="Calculate risk score",
        operation_id="calculateRiskScore",
    )
    def calculate(self, risk: Risk, body: RawBody) -> Envelope[RiskScore]:
        parsed = decode_request(body)
        assessment = risk.assess(
            parsed.identity,
            operation=parsed.operation,
            context=parsed.context,
            access=OperationContext.of_request(parsed.context),
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
    def identity_score(self, risk: Risk, identity: FromPath[str]) -> Envelope[RiskScore]:
        problem = _text_problem(identity, required=True)
        if problem:
            raise ValidationError("invalid identity", details={"identity": problem})
        return ok(score_view(risk.assess(identity)))

    @get(
        "/",
        sync_to_thread=True,
        opt={"permission": READ},
        summary="Riskiest identities now",
        operation_id="listRiskiestIdentities",
        description="Identities at `level` or above (default: all) by their latest identity assessment.",
    )
    def riskiest(
        self, risk: Risk, level: FromQuery[str | None] = None, limit: FromQuery[str | None] = None
    ) -> Envelope[RiskRanking]:
        min_level, count = parse_ranking_query(level, limit)
        rows = risk.store.riskiest(min_level=min_level, limit=count)
        items = [current_view(row, risk.config.ttl_ms) for row in rows]
        return ok(RiskRanking(items=items, count=len(items), level=min_level, limit=count))


# -- translation ---------------------------------------------------------------------------------------------


def decode_request(body: bytes) -> RiskScoreRequest:
    """Decode and check a ``POST /risk-score`` body; one ``ValidationError`` naming every failing field."""
    raw = read_json(body)
    if not isinstance(raw, dict):
        raise ValidationError("invalid request", details={"body": "must be a JSON object"})
    problems = {key: "unknown field" for key in sorted(set(raw) - set(_FIELD_CHECKS))}
    for field, check in _FIELD_CHECKS.items():
        problems |= check(field, raw.get(field))
    if problems:
        raise ValidationError("invalid risk score request", details=problems)
    return RiskScoreRequest(
        identity=raw["identity"], operation=raw.get("operation"), context=raw.get("context"), factors=raw.get("factors")
    )


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


def _text(*, required: bool) -> Callable[[str, Any], dict[str, str]]:
    def check(field: str, value: Any) -> dict[str, str]:
        problem = _text_problem(value, required=required)
        return {field: problem} if problem else {}

    return check


def _context(field: str, value: Any) -> dict[str, str]:
    if value is not None and not isinstance(value, dict):
        return {field: "must be an object"}
    given = value or {}
    bad = [key for keys in CONTEXT_KEYS.values() for key in keys if key in given]
    bad = [key for key in bad if not (isinstance(given[key], str) and 0 < len(given[key]) <= _MAX_CONTEXT_TEXT)]
    return {f"{field}.{key}": f"must be a non-empty string of at most {_MAX_CONTEXT_TEXT} characters" for key in bad}


def _factors(field: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        return {field: "must be an array of factor names"}
    unknown = [name for name in value if name not in FACTOR_NAMES]
    if unknown:
        return {field: f"unknown: {', '.join(unknown)}; known: {', '.join(FACTOR_NAMES)}"}
    return {}


_FIELD_CHECKS: dict[str, Callable[[str, Any], dict[str, str]]] = {
    "identity": _text(required=True),
    "operation": _text(required=False),
    "context": _context,
    "factors": _factors,
}
"""Each field of ``RiskScoreRequest`` with the check that names its problems (none: it is valid)."""


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
        timestamp=iso_epoch_ms(assessment.as_of_ms),
        expiresAt=iso_epoch_ms(assessment.expires_at_ms),
        operation=assessment.operation,
        modelVersion=assessment.model_version,
    )


def current_view(row: CurrentRisk, ttl_ms: int) -> RiskScore:
    return RiskScore(
        identity=row.identity,
        score=row.score,
        level=row.level,
        factors=[RiskFactor(f["name"], f["weight"], f["value"]) for f in row.factors],
        timestamp=iso_epoch_ms(row.computed_at_ms),
        expiresAt=iso_epoch_ms(row.computed_at_ms + ttl_ms),
    )
