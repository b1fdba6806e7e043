"""``POST /ingest/{format}``: another system's log (CloudTrail, Entra ID sign-ins, Office 365 audit, OpenSSH,
OCSF) appended as audit events, all or nothing, with the permission of ``POST /audit/batch``.

The body is the log as the source writes it (a JSON document, JSON lines, syslog text), mapped by
``analytics.importers`` and validated as every audit event is; a record that cannot be read, mapped or validated
is a 400 naming its line, and nothing is written.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, post
from litestar.params import Parameter, RawBody

from analytics.importers import FORMATS, ImportFailure, import_events
from api import metrics
from api.controllers.audit import WRITE, caller_source, check_timestamp, ledger_of, writer_gate_of
from api.envelope import Envelope, ok
from api.openapi_bodies import BATCH_LIMIT, ImportBody
from api.schemas import BatchCreated, created_view
from models.records import NewEvent
from models.wire_events import convert_event
from qerberos.errors import PayloadTooLargeError, QerberosError, ValidationError

Format = Annotated[str, Parameter(description=f"One of: {', '.join(FORMATS)}.", max_length=40)]


class IngestController(Controller):
    path = "/ingest"
    tags = ("Audit",)

    @post(
        "/{format:str}",
        status_code=201,
        sync_to_thread=True,
        operation_class=ImportBody,
        opt={"permission": WRITE},
        summary=f"Import up to {BATCH_LIMIT} records of another system's log, all or nothing",
        operation_id="importLog",
    )
    def ingest(self, request: Request[Any, Any, Any], format: Format, body: RawBody) -> Envelope[BatchCreated]:
        if format not in FORMATS:
            raise ValidationError("unknown import format", details={"format": f"one of {', '.join(FORMATS)}"})
        events = _mapped(format, body, caller_source(request))
        ledger = ledger_of(request)
        with writer_gate_of(request).held():
            results = ledger.append(events)
        metrics.record_ingested(results)
        views = [created_view(result) for result in results]
        created = sum(result.created for result in results)
        data = BatchCreated(count=len(views), created=created, events=views)
        return ok(data, code="LOG_IMPORTED", message=f"{len(views)} {format} records imported")


def _mapped(format: str, body: bytes, source: str) -> list[NewEvent]:
    events: list[NewEvent] = []
    try:
        for item in import_events(format, body.splitlines(keepends=True)):
            if len(events) == BATCH_LIMIT:
                raise PayloadTooLargeError("too many records", details={"records": f"at most {BATCH_LIMIT}"})
            try:
                request = convert_event(item.event)
                check_timestamp(request)
            except QerberosError as exc:
                raise ValidationError(
                    f"record at line {item.line} is not a valid audit event",
                    details={"line": item.line, "problems": exc.details or exc.message},
                ) from exc
            events.append(request.to_new_event(source))
    except ImportFailure as exc:
        raise ValidationError(
            f"cannot read the {format} log", details={"line": exc.line, "problem": exc.message}
        ) from exc
    if not events:
        raise ValidationError(f"no {format} records in the body", details={"body": "nothing to import"})
    return events
