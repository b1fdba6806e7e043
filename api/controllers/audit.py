"""``/audit``: append events (one or a batch), search them, read one.

The two POST routes take the raw body and decode it with ``models.wire_events`` so that the API and
``qerberos ingest`` accept and reject exactly the same input. Each route names the permission it needs
in ``opt["permission"]``; the app's permission guard enforces it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

import anyio.to_thread
import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import ClientException
from litestar.params import FromPath, HeaderParameter, QueryParameter, RawBody

from api import metrics
from api.envelope import Envelope, ok
from api.ingest_queue import IngestQueue, WriterGate
from api.lifecycle import ServiceState
from api.openapi_bodies import BATCH_LIMIT, NDJSON_TYPES, AuditBatchBody, AuditEventBody
from api.schemas import AuditEvent, AuditEventCreated, AuditEventPage, BatchCreated, created_view, event_view
from models.ledger import Ledger
from models.records import AppendResult, NewEvent, SearchPage, SearchQuery
from models.wire_events import AuditEventRequest, convert_event, decode_event
from pipelines.ocsf_export import event_lines
from qerberos.errors import PayloadTooLargeError, ValidationError
from qerberos.instants import parse_instant
from qerberos.json_input import read_json

WRITE = "qerberos:audit:write"
READ = "audit:read"
INGEST_QUEUE_KEY = "ingest_queue"
WRITER_GATE_KEY = "ledger_writer_gate"
WRITER_LOCK_FILE = "ledger-writer.lock"
_MAX_ITEM_ERRORS = 100
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c2a8e-3d4b-5e6f-8a9b-0c1d2e3f4a5b")
_JSON = "application/json"
OCSF_MEDIA_TYPE = "application/x-ndjson"

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=1,
        max_length=200,
        required=False,
        description="Makes a retry safe: a UUID is used as the event id; any other key maps to one id per caller.",
    ),
]


def _search_operation_id(handler: Any, method: Any, path_components: list[str | Any]) -> str:
    """``GET /audit`` keeps the contract's id; the ``/audit/search`` alias gets its own."""
    return "searchAuditEventsAlias" if "search" in path_components else "searchAuditEvents"


def ledger_of(request: Request[Any, Any, Any]) -> Ledger:
    ledger: Ledger = request.app.state.service.require_ledger()
    return ledger


def ingest_queue_of(request: Request[Any, Any, Any]) -> IngestQueue:
    """This worker's group-commit queue, made on first use; it appends to whatever ledger is open then."""
    state = request.app.state
    queue: IngestQueue | None = state.get(INGEST_QUEUE_KEY)
    if queue is None:
        gate = writer_gate_of(request)
        service: ServiceState = state.service

        def append(events: Sequence[NewEvent]) -> list[AppendResult]:
            ledger = service.require_ledger()
            with gate.held():
                return ledger.append(events)

        queue = IngestQueue(append)
        state[INGEST_QUEUE_KEY] = queue
    return queue


def writer_gate_of(request: Request[Any, Any, Any]) -> WriterGate:
    """This worker's gate in front of the ledger's sequencer (a lock file in QERBEROS_HOME on SQLite)."""
    state = request.app.state
    gate: WriterGate | None = state.get(WRITER_GATE_KEY)
    if gate is None:
        settings = state.service.settings
        gate = WriterGate(settings.home / WRITER_LOCK_FILE if settings.is_sqlite else None)
        state[WRITER_GATE_KEY] = gate
    return gate


def caller_source(request: Request[Any, Any, Any]) -> str:
    """Who submitted: the authenticated caller's ``source`` (``squid:<id>``, ``local:<name>``)."""
    source = getattr(request.scope.get("user"), "source", None)
    return source if isinstance(source, str) and source else "anonymous"


class AuditController(Controller):
    path = "/audit"
    tags = ("Audit",)

    @post(
        "/",
        status_code=201,
        operation_class=AuditEventBody,
        opt={"permission": WRITE},
        summary="Log audit event",
        operation_id="logAuditEvent",
    )
    async def log_event(
        self, request: Request[Any, Any, Any], body: RawBody, idempotency_key: IdempotencyKey = None
    ) -> Envelope[AuditEventCreated]:
        """Validated here, on the event loop (cheap), then group-committed with concurrent requests."""
        _media_type(request, (_JSON,))
        source = caller_source(request)
        event = _with_idempotency_key(decode_event(body), idempotency_key, source)
        check_timestamp(event)  # the one check the ledger would otherwise make inside the group
        result = await ingest_queue_of(request).submit(event.to_new_event(source))
        metrics.record_ingested((result,))
        return ok(created_view(result), code="AUDIT_EVENT_LOGGED", message="audit event logged")

    @post(
        "/batch",
        status_code=201,
        sync_to_thread=True,
        operation_class=AuditBatchBody,
        opt={"permission": WRITE},
        summary="Log up to 10,000 audit events, all or nothing",
        operation_id="logAuditEventBatch",
    )
    def log_batch(self, request: Request[Any, Any, Any], body: RawBody) -> Envelope[BatchCreated]:
        source = caller_source(request)
        events = _decode_batch(body, _media_type(request, (_JSON, *NDJSON_TYPES)))
        ledger = ledger_of(request)
        with writer_gate_of(request).held():
            results = ledger.append([event.to_new_event(source) for event in events])
        metrics.record_ingested(results)
        views = [created_view(result) for result in results]
        created = sum(result.created for result in results)
        data = BatchCreated(count=len(views), created=created, events=views)
        return ok(data, code="AUDIT_BATCH_LOGGED", message=f"{len(views)} audit events logged")

    @get(
        ["/", "/search"],
        opt={"permission": READ},
        summary="Search audit events (newest first)",
        operation_id=_search_operation_id,
    )
    async def search(
        self,
        request: Request[Any, Any, Any],
        type: Annotated[str | None, QueryParameter(max_length=100)] = None,
        actor: Annotated[str | None, QueryParameter(max_length=100, description="sQuid id of the actor")] = None,
        layer: Annotated[str | None, QueryParameter(max_length=100)] = None,
        verdict: Annotated[Literal["ALLOW", "DENY", "WARN"] | None, QueryParameter()] = None,
        start_date: Annotated[str | None, QueryParameter(name="startDate", max_length=40)] = None,
        end_date: Annotated[str | None, QueryParameter(name="endDate", max_length=40)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        offset: Annotated[int | None, QueryParameter(ge=0, le=10_000_000, description="default 0")] = None,
        cursor: Annotated[
            str | None, QueryParameter(max_length=200, description="nextCursor of the previous page; not with offset")
        ] = None,
        format: Annotated[
            Literal["json", "ocsf"],
            QueryParameter(description="ocsf: the page as OCSF 1.7 events, one per line (application/x-ndjson)"),
        ] = "json",
    ) -> Response[Envelope[AuditEventPage]]:
        start = None if start_date is None else parse_instant(start_date, "startDate")
        end = None if end_date is None else parse_instant(end_date, "endDate")
        if start is not None and end is not None and start > end:
            raise ValidationError("startDate is after endDate", details={"startDate": "must not be after endDate"})
        if cursor is not None and offset is not None:
            raise ValidationError("cursor and offset together", details={"offset": "a cursor replaces the offset"})
        offset = offset or 0
        query = SearchQuery(type, actor, layer, verdict, start, end, limit, offset, cursor)
        ledger = ledger_of(request)
        # a route answering a Response runs in a thread only this way (Litestar 2.25 does not await a sync_to_thread
        # handler's Response)
        page = await anyio.to_thread.run_sync(ledger.search, query)
        if format == "ocsf":
            taxonomy = request.app.state.service.taxonomy
            lines = event_lines(page.records, taxonomy, ledger.origin)
            return ocsf_response(lines, _page_headers(page))
        data = AuditEventPage(
            events=[event_view(record) for record in page.records],
            total_count=page.total_count,
            limit=limit,
            offset=offset,
            has_more=page.has_more,
            next_cursor=page.next_cursor,
        )
        return Response(ok(data))

    @get(
        "/{event_id:str}",
        sync_to_thread=True,
        opt={"permission": READ},
        summary="Get audit event",
        operation_id="getAuditEvent",
    )
    def get_event(self, request: Request[Any, Any, Any], event_id: FromPath[str]) -> Envelope[AuditEvent]:
        return ok(event_view(ledger_of(request).get(parse_event_id(event_id))))


def ocsf_response(lines: Iterable[str], headers: Mapping[str, str] | None = None) -> Response[Any]:
    """OCSF events as NDJSON: the answer of a route's ``format=ocsf``, whose JSON answer is documented (a route
    declares one response type, so the NDJSON answer is typed as that one)."""
    return Response("".join(lines).encode(), media_type=OCSF_MEDIA_TYPE, headers=dict(headers or {}))


def _page_headers(page: SearchPage) -> dict[str, str]:
    """What an NDJSON page cannot say in its body: how many match, and the cursor of the next page."""
    headers = {"X-Total-Count": str(page.total_count)}
    if page.next_cursor:
        headers["X-Next-Cursor"] = page.next_cursor
    return headers


def parse_event_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as exc:
        raise ValidationError("invalid event id", details={"id": "not a UUID"}) from exc


def check_timestamp(event: AuditEventRequest) -> None:
    """A timestamp before 1970 is a 400 here, before the event reaches a commit group or the ledger."""
    if event.timestamp is not None and event.timestamp < _EPOCH:
        raise ValidationError("timestamp out of range", details={"timestamp": "must lie between 1970 and 9999"})


def _with_idempotency_key(event: AuditEventRequest, key: str | None, source: str) -> AuditEventRequest:
    if key is None:
        return event
    try:
        key_id = uuid.UUID(key)
    except ValueError:
        key_id = uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{source}\n{key}")
    if event.id is not None and event.id != key_id:
        raise ValidationError(
            "Idempotency-Key and id disagree", details={"Idempotency-Key": "names another event than the body's id"}
        )
    return msgspec.structs.replace(event, id=key_id)


def _media_type(request: Request[Any, Any, Any], accepted: tuple[str, ...]) -> str:
    """The body's media type (``Content-Type`` without parameters), when it is one the route reads; else 415."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in accepted:
        raise ClientException(
            "unsupported Content-Type",
            status_code=415,
            extra={"Content-Type": f"{media_type or 'none'}; this route reads {', '.join(sorted(accepted))}"},
        )
    return media_type


def _decode_batch(body: bytes, media_type: str) -> list[AuditEventRequest]:
    if media_type in NDJSON_TYPES:
        return _decode_lines(body)
    items = read_json(body)
    if not isinstance(items, list):
        raise ValidationError("a batch is a JSON array", details={"$": "expected an array of audit events"})
    return _decode_items(items)


def _decode_items(items: list[Any]) -> list[AuditEventRequest]:
    _check_count(len(items))
    errors: dict[str, Any] = {}
    events = [_collect(errors, index, convert_event, item) for index, item in enumerate(items)]
    _raise_item_errors(errors, len(items))
    return [event for event in events if event is not None]


def _decode_lines(body: bytes) -> list[AuditEventRequest]:
    lines = [line for line in body.split(b"\n") if line.strip()]
    _check_count(len(lines))
    errors: dict[str, Any] = {}
    events = [_collect(errors, index, decode_event, line) for index, line in enumerate(lines)]
    _raise_item_errors(errors, len(lines))
    return [event for event in events if event is not None]


def _collect(errors: dict[str, Any], index: int, check: Any, value: Any) -> Any:
    try:
        return check(value)
    except (ValidationError, PayloadTooLargeError) as exc:
        if len(errors) < _MAX_ITEM_ERRORS:
            errors[str(index)] = exc.details or {"$": exc.message}
        else:
            errors["more"] = int(errors.get("more", 0)) + 1
        return None


def _check_count(count: int) -> None:
    if count == 0:
        raise ValidationError("empty batch", details={"$": "at least one audit event"})
    if count > BATCH_LIMIT:
        raise PayloadTooLargeError("batch too large", details={"$": f"{count} events, at most {BATCH_LIMIT} per batch"})


def _raise_item_errors(errors: dict[str, Any], count: int) -> None:
    if errors:
        failing = len(errors) - (1 if "more" in errors else 0) + int(errors.get("more", 0))
        raise ValidationError(f"{failing} of {count} audit events are invalid; none was logged", details=errors)
