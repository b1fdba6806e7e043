"""``/compliance``: compliance reports (upstream ``GET /compliance/report``) and the reports on disk.

``GET /compliance/report`` answers the newest finished report of that type and exact period; when there is
none it starts one (a job of ``pipelines.report_jobs.ReportJobs``, injected as ``report_jobs``) and waits
``REPORT_WAIT_SECONDS``: a report that takes longer is answered ``202`` with a job to poll at
``GET /compliance/jobs/{id}``. Each worker runs one report at a time and queues a few more; the same type and
period give back the job already queued or running, and a request past the bound is refused 429 with
``Retry-After``. A stopping worker drops its queued jobs. Formats: ``json`` (the contract's envelope, ``data`` being
the report's ``summary.json``), ``pdf``, ``csv``, ``html``. Without dates the period is the 30 days up to
today's midnight UTC, so repeated calls find the same report.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get
from litestar.params import FromPath, QueryParameter

from analytics.compliance import Period, parse_instant
from api.envelope import Envelope, ok
from api.services import AppSettings, Jobs, provides
from pipelines.reports import MEDIA_TYPES, ReportRequest, find_report, list_reports, load_manifest, output_path
from qerberos.errors import ValidationError
from qerberos.settings import Settings

READ = "compliance:read"
GENERATE = "compliance:generate"
REPORT_WAIT_SECONDS = 3.0
DEFAULT_DAYS = 30
Format = Literal["json", "pdf", "csv", "html"]
ReportType = Literal["gdpr", "soc2", "iso27001", "custom"]


def report_period(start_date: str | None, end_date: str | None) -> Period:
    """The period a report request names (REST and MCP alike): ``endDate`` defaults to today's start,
    ``startDate`` to ``DEFAULT_DAYS`` before it."""
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = parse_instant(end_date, "endDate") if end_date is not None else today  # "" is refused, not absent
    if start_date is not None:
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


class ComplianceController(Controller):
    path = "/compliance"
    tags = ("Compliance",)
    dependencies = provides("report_jobs", "settings")

    @get(
        "/report",
        opt={"permission": GENERATE},
        summary="Generate compliance report (or answer the existing one)",
        operation_id="generateComplianceReport",
    )
    async def report(
        self,
        request: Request[Any, Any, Any],
        report_jobs: Jobs,
        settings: AppSettings,
        report_type: Annotated[ReportType, QueryParameter(name="type")] = "gdpr",
        start_date: Annotated[str | None, QueryParameter(name="startDate")] = None,
        end_date: Annotated[str | None, QueryParameter(name="endDate")] = None,
        fmt: Annotated[Format, QueryParameter(name="format")] = "json",
    ) -> Response[Any]:
        period = report_period(start_date, end_date)
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
            job = report_jobs.submit(wanted)
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
    async def job(self, report_jobs: Jobs, job_id: FromPath[str]) -> Envelope[dict[str, Any]]:
        return ok(report_jobs.get(job_id).view())

    @get("/reports", sync_to_thread=True, opt={"permission": READ}, summary="The reports", operation_id="listReports")
    def reports(self, settings: AppSettings) -> Envelope[list[dict[str, Any]]]:
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
            for m in list_reports(settings)
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
        settings: AppSettings,
        report_id: FromPath[str],
        fmt: Annotated[Format, QueryParameter(name="format")] = "json",
    ) -> Response[Any]:
        return _answer(load_manifest(report_id, settings), fmt, settings)
