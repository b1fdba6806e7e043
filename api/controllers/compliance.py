"""``/compliance``: compliance reports (upstream ``GET /compliance/report``) and the reports on disk.

``GET /compliance/report`` answers the newest finished report of that type and exact period; when there is
none it starts one (``pipelines.reports.run_report``) and waits ``REPORT_WAIT_SECONDS``: a report that takes
longer is answered ``202`` with a job to poll at ``GET /compliance/jobs/{id}``. Each worker runs one report at
a time and queues at most ``QUEUED_JOBS`` more (``queued`` until it starts, then ``running``); the same type
and period give back the job already queued or running, and a request past the bound is refused 429 with
``Retry-After``. A stopping worker drops its queued jobs. Formats: ``json`` (the contract's envelope, ``data`` being
the report's ``summary.json``), ``pdf``, ``csv``, ``html``. Without dates the period is the 30 days up to
today's midnight UTC, so repeated calls find the same report.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import json
import threading
import uuid
from typing import Annotated, Any, Literal

from litestar import Controller, Litestar, Request, Response, get
from litestar.params import FromPath, QueryParameter

from analytics.compliance import Period, parse_instant
from api.envelope import Envelope, ok
from pipelines.reports import (
    MEDIA_TYPES,
    ReportRequest,
    find_report,
    list_reports,
    load_manifest,
    output_path,
    run_report,
)
from qerberos.errors import NotFoundError, QerberosError, RateLimitedError, ValidationError
from qerberos.settings import Settings

READ = "compliance:read"
GENERATE = "compliance:generate"
REPORT_WAIT_SECONDS = 3.0
QUEUED_JOBS = 3
QUEUE_FULL_RETRY_SECONDS = 30
KEPT_FINISHED_JOBS = 100  # finished jobs stay pollable until this many newer ones have finished
DEFAULT_DAYS = 30
Format = Literal["json", "pdf", "csv", "html"]
ReportType = Literal["gdpr", "soc2", "iso27001", "custom"]


@dataclasses.dataclass
class _Job:
    id: str
    key: tuple[str, str, str]
    future: concurrent.futures.Future[Any]
    started: threading.Event  # set by the report thread when it takes the job
    created_at: str

    def view(self) -> dict[str, Any]:
        view: dict[str, Any] = {"jobId": self.id, "type": self.key[0], "createdAt": self.created_at}
        view["period"] = {"startDate": self.key[1], "endDate": self.key[2]}
        if not self.future.done():
            view["status"] = "running" if self.started.is_set() else "queued"
            return view
        if self.future.cancelled():
            view |= {"status": "cancelled", "error": "the worker stopped before the report started"}
            return view
        error = self.future.exception()
        if error is not None:
            view |= {"status": "failed", "error": error.message if isinstance(error, QerberosError) else "internal"}
            return view
        report_id = self.future.result().report_id
        view |= {"status": "done", "reportId": report_id, "reportUrl": f"/compliance/reports/{report_id}"}
        return view


class _Jobs:
    """Report jobs of this worker: one report at a time and at most ``QUEUED_JOBS`` waiting; the same type and
    period give back the job queued or running."""

    def __init__(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="report")
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}

    def submit(self, request: ReportRequest, settings: Settings, ledger: Any) -> _Job:
        period = request.period.to_json()
        key = (request.framework, period["startDate"], period["endDate"])
        with self._lock:
            pending = [job for job in self._jobs.values() if not job.future.done()]
            for job in pending:
                if job.key == key:
                    return job
            if len(pending) > QUEUED_JOBS:
                raise RateLimitedError(
                    f"{len(pending)} reports are running or queued on this worker: retry later",
                    retry_after=QUEUE_FULL_RETRY_SECONDS,
                )
            started = threading.Event()
            future = self._executor.submit(_run_in_worker, started, request, settings, ledger)
            job = _Job(str(uuid.uuid4()), key, future, started, dt.datetime.now(dt.UTC).isoformat())
            self._jobs[job.id] = job
            self._forget_old()
            return job

    def _forget_old(self) -> None:
        finished = [job_id for job_id, job in self._jobs.items() if job.future.done()]
        for job_id in finished[:-KEPT_FINISHED_JOBS]:
            del self._jobs[job_id]

    def close(self) -> None:
        """Drop the queued jobs (the running one finishes: a notebook cannot be interrupted midway)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def get(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no report job {job_id}")
        return job


def _run_in_worker(started: threading.Event, request: ReportRequest, settings: Settings, ledger: Any) -> Any:
    """``run_report`` on a worker thread, closing the event loop papermill's kernel client left on it."""
    started.set()
    try:
        return run_report(request, settings, ledger=ledger)
    finally:
        policy = asyncio.get_event_loop_policy()
        try:
            loop = policy.get_event_loop()
        except RuntimeError:
            loop = None
        if loop is not None and not loop.is_running():
            loop.close()
        policy.set_event_loop(None)


def _jobs(request: Request[Any, Any, Any]) -> _Jobs:
    state = request.app.state
    with _JOBS_LOCK:
        if not hasattr(state, "compliance_jobs"):
            state.compliance_jobs = _Jobs()
    jobs: _Jobs = state.compliance_jobs
    return jobs


_JOBS_LOCK = threading.Lock()


def close_compliance_jobs(app: Litestar) -> None:
    """An ``on_shutdown`` hook: no queued report starts once the worker stops."""
    jobs: _Jobs | None = app.state.get("compliance_jobs")
    if jobs is not None:
        jobs.close()


def _period(start_date: str | None, end_date: str | None) -> Period:
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = parse_instant(end_date, "endDate") if end_date else today
    if start_date:
        return Period(parse_instant(start_date, "startDate"), end)
    try:
        return Period(end - dt.timedelta(days=DEFAULT_DAYS), end)
    except OverflowError as exc:  # the default start would fall before year 1
        after = f"without startDate, at least {DEFAULT_DAYS} days after 0001-01-01"
        raise ValidationError("endDate out of range", details={"endDate": after}) from exc


def _answer(manifest: dict[str, Any], fmt: str, settings: Settings) -> Response[Any]:
    report_id = str(manifest["reportId"])
    path = output_path(report_id, fmt, settings)
    headers = {"X-Report-Id": report_id, "X-Report-SHA256": str(manifest.get("reportSha256", ""))}
    if fmt == "json":
        data = json.loads(path.read_text())
        data |= {
            "reportSha256": manifest.get("reportSha256"),
            "ledgerEvent": manifest.get("ledgerEvent"),
            "formats": [entry["format"] for entry in manifest.get("outputs", {}).values()],
        }
        return Response(ok(data), headers=headers)
    disposition = "inline" if fmt == "html" else "attachment"
    headers["Content-Disposition"] = f'{disposition}; filename="{report_id}.{fmt}"'
    return Response(path.read_bytes(), media_type=MEDIA_TYPES[fmt], headers=headers)


def _settings(request: Request[Any, Any, Any]) -> Settings:
    settings: Settings = request.app.state.service.settings
    return settings


class ComplianceController(Controller):
    path = "/compliance"
    tags = ("Compliance",)

    @get(
        "/report",
        opt={"permission": GENERATE},
        summary="Generate compliance report (or answer the existing one)",
        operation_id="generateComplianceReport",
    )
    async def report(
        self,
        request: Request[Any, Any, Any],
        report_type: Annotated[ReportType, QueryParameter(name="type")] = "gdpr",
        start_date: Annotated[str | None, QueryParameter(name="startDate")] = None,
        end_date: Annotated[str | None, QueryParameter(name="endDate")] = None,
        fmt: Annotated[Format, QueryParameter(name="format")] = "json",
    ) -> Response[Any]:
        settings = _settings(request)
        period = _period(start_date, end_date)
        manifest = await asyncio.to_thread(find_report, report_type, period, settings)
        if manifest is None:
            caller = request.scope.get("user")
            wanted = ReportRequest(
                report_type,
                period.start,
                period.end,
                source=getattr(caller, "source", "local:api"),
                actor=getattr(caller, "squid_id", "qerberos"),
            )
            job = _jobs(request).submit(wanted, settings, request.app.state.service.require_ledger())
            try:
                result = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(job.future)), REPORT_WAIT_SECONDS)
            except TimeoutError:
                return Response(
                    ok(job.view(), code="ACCEPTED", message="the report is being generated: poll the job"),
                    status_code=202,
                    headers={"Location": f"/compliance/jobs/{job.id}", "Retry-After": "5"},
                )
            manifest = result.manifest
        return await asyncio.to_thread(_answer, manifest, fmt, settings)

    @get("/jobs/{job_id:str}", opt={"permission": READ}, summary="A report job's status", operation_id="getReportJob")
    async def job(self, request: Request[Any, Any, Any], job_id: FromPath[str]) -> Envelope[dict[str, Any]]:
        return ok(_jobs(request).get(job_id).view())

    @get("/reports", sync_to_thread=True, opt={"permission": READ}, summary="The reports", operation_id="listReports")
    def reports(self, request: Request[Any, Any, Any]) -> Envelope[list[dict[str, Any]]]:
        listed = [
            {
                "reportId": m.get("reportId"),
                "type": m.get("framework"),
                "period": m.get("period"),
                "outcome": m.get("outcome"),
                "integrity": m.get("integrity"),
                "generatedAt": m.get("generatedAt"),
                "reportSha256": m.get("reportSha256"),
                "ledgerEvent": m.get("ledgerEvent"),
                "formats": [entry["format"] for entry in m.get("outputs", {}).values()],
            }
            for m in list_reports(_settings(request))
        ]
        return ok(listed)

    @get(
        "/reports/{report_id:str}",
        sync_to_thread=True,
        opt={"permission": READ},
        summary="Download a report",
        operation_id="getReport",
    )
    def download(
        self,
        request: Request[Any, Any, Any],
        report_id: FromPath[str],
        fmt: Annotated[Format, QueryParameter(name="format")] = "json",
    ) -> Response[Any]:
        settings = _settings(request)
        return _answer(load_manifest(report_id, settings), fmt, settings)
