"""Report jobs of one API worker: ``run_report`` on a thread of its own, one report at a time.

At most ``QUEUED_JOBS`` more wait (``queued`` until the thread takes them, then ``running``); the same type and
period give back the job already queued or running, and a job past the bound is refused with
``RateLimitedError`` (retry after ``QUEUE_FULL_RETRY_SECONDS``). ``close()`` drops the queued jobs (the running
one finishes: a notebook cannot be interrupted midway). Finished jobs stay pollable until
``KEPT_FINISHED_JOBS`` newer ones have finished.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import threading
import uuid
from typing import Any

from models.ledger import Ledger
from pipelines.reports import ReportRequest, ReportResult, run_report
from qerberos.errors import NotFoundError, QerberosError, RateLimitedError
from qerberos.settings import Settings

__all__ = ["KEPT_FINISHED_JOBS", "QUEUED_JOBS", "QUEUE_FULL_RETRY_SECONDS", "ReportJob", "ReportJobs"]

QUEUED_JOBS = 3
QUEUE_FULL_RETRY_SECONDS = 30
KEPT_FINISHED_JOBS = 100


@dataclasses.dataclass
class ReportJob:
    """One report asked for: ``key`` is (type, start date, end date); ``future`` answers a ``ReportResult``."""

    id: str
    key: tuple[str, str, str]
    future: concurrent.futures.Future[ReportResult]
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


class ReportJobs:
    """The report jobs of this worker over its settings and its ledger."""

    def __init__(self, settings: Settings, ledger: Ledger) -> None:
        self._settings = settings
        self._ledger = ledger
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="report")
        self._lock = threading.Lock()
        self._jobs: dict[str, ReportJob] = {}

    def submit(self, request: ReportRequest) -> ReportJob:
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
            future = self._executor.submit(self._run, started, request)
            job = ReportJob(str(uuid.uuid4()), key, future, started, dt.datetime.now(dt.UTC).isoformat())
            self._jobs[job.id] = job
            self._forget_old()
            return job

    def get(self, job_id: str) -> ReportJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no report job {job_id}")
        return job

    def close(self) -> None:
        """Drop the queued jobs (the running one finishes)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _forget_old(self) -> None:
        finished = [job_id for job_id, job in self._jobs.items() if job.future.done()]
        for job_id in finished[:-KEPT_FINISHED_JOBS]:
            del self._jobs[job_id]

    def _run(self, started: threading.Event, request: ReportRequest) -> ReportResult:
        """``run_report`` on the report thread, closing the event loop papermill's kernel client left on it."""
        started.set()
        try:
            return run_report(request, self._settings, ledger=self._ledger)
        finally:
            policy = asyncio.get_event_loop_policy()
            try:
                loop = policy.get_event_loop()
            except RuntimeError:
                loop = None
            if loop is not None and not loop.is_running():
                loop.close()
            policy.set_event_loop(None)
