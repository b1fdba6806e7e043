"""``qerberos report schedule``: run the reports of ``config/reports.toml`` on their cron expressions.

- Each entry's last scheduled run is kept in ``QERBEROS_HOME/reports/schedule-state.json``. On each tick a
  report is due when its newest cron time is later than its last run: after downtime that is one run,
  for the newest missed time only (a missed run is caught up once, not once per missed time). On the very
  first start nothing is due: the newest cron time becomes the baseline.
- A run holds an exclusive ``flock`` on ``QERBEROS_HOME/reports/locks/<name>.lock``: a second scheduler (or
  a run still going) finds it held and skips, and after taking the lock the state is read again so a run
  another instance just finished is not repeated.
- Outcomes are counted in ``qerberos_report_runs_total{framework,outcome}`` (outcome ``skipped`` for a
  held lock; every outcome of each scheduled framework starts at 0, so a first failure is an increase)
  with ``qerberos_report_last_success_timestamp_seconds``; ``qerberos_report_overdue_seconds{report,framework}``
  is read at each scrape: how long the report's newest cron time has gone without a recorded run (0 when
  it ran), so a run that never happens, or a scheduler stuck in one, shows. All are served by
  prometheus_client on ``QERBEROS_SCHEDULER_METRICS_PORT``.
- The whole ledger is verified at start and every ``QERBEROS_VERIFY_INTERVAL`` seconds
  (``pipelines/scheduled_verification.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import functools
import json
import logging
import math
import threading
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from croniter import croniter
from prometheus_client import Gauge

from analytics.compliance import FRAMEWORKS
from pipelines.reports import REPORT_RUNS, ReportError, ReportRequest, ReportResult, reports_dir, run_report
from pipelines.scheduled_verification import INTERVAL, verify_now
from qerberos.errors import ConfigurationError, QerberosError
from qerberos.resources import observe_memory_limit
from qerberos.settings import Settings

logger = logging.getLogger(__name__)

STATE_FILE = "schedule-state.json"
PeriodKind = Literal["previous-day", "previous-week", "previous-month", "interval"]
PERIODS: tuple[PeriodKind, ...] = ("previous-day", "previous-week", "previous-month", "interval")
Clock = Callable[[], dt.datetime]
Runner = Callable[[ReportRequest], ReportResult]
Verifier = Callable[[Settings], object]
OUTCOMES = ("success", "integrity_failed", "error", "skipped")

OVERDUE = Gauge(
    "qerberos_report_overdue_seconds",
    "How long the report's newest cron time has gone without a recorded run (0 when it ran).",
    ["report", "framework"],
)


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """One scheduled report. ``period``: the calendar day, ISO week or month before the run (UTC), or
    ``interval``: from the previous cron time to this one."""

    name: str
    framework: str
    cron: str
    period: PeriodKind = "interval"
    organization: str = ""
    retention_days: int | None = None

    def __post_init__(self) -> None:
        if self.framework not in FRAMEWORKS:
            raise ConfigurationError(f"report {self.name!r}: unknown framework {self.framework!r}")
        if not croniter.is_valid(self.cron):
            raise ConfigurationError(f"report {self.name!r}: invalid cron expression {self.cron!r}")
        if self.period not in PERIODS:
            raise ConfigurationError(f"report {self.name!r}: period must be one of {', '.join(PERIODS)}")

    def latest_time(self, now: dt.datetime) -> dt.datetime:
        """The newest cron time at or before ``now``."""
        if croniter.match(self.cron, now.replace(second=0, microsecond=0)) and now.second == 0 == now.microsecond:
            return now
        return croniter(self.cron, now).get_prev(dt.datetime)  # type: ignore[no-any-return]

    def request_for(self, scheduled: dt.datetime) -> ReportRequest:
        start, end = period_for(self.period, self.cron, scheduled)
        return ReportRequest(
            self.framework, start, end, self.organization, self.retention_days, source="local:scheduler"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class RunOutcome:
    name: str
    framework: str
    scheduled_for: dt.datetime
    outcome: str  # success, integrity_failed, error, skipped
    report_id: str | None = None


def period_for(kind: PeriodKind, cron: str, scheduled: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    day = scheduled.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "previous-day":
        return day - dt.timedelta(days=1), day
    if kind == "previous-week":
        monday = day - dt.timedelta(days=day.weekday())
        return monday - dt.timedelta(days=7), monday
    if kind == "previous-month":
        first = day.replace(day=1)
        return (first - dt.timedelta(days=1)).replace(day=1), first
    previous: dt.datetime = croniter(cron, scheduled).get_prev(dt.datetime)
    return previous, scheduled


def load_schedule(path: Path) -> list[ScheduleEntry]:
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read the report schedule {path}: {exc}") from exc
    entries = []
    for item in document.get("report", []):
        try:
            entries.append(ScheduleEntry(**item))
        except TypeError as exc:
            raise ConfigurationError(f"{path}: bad report entry {item.get('name', '?')!r}: {exc}") from exc
    names = [entry.name for entry in entries]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"{path}: report names must be unique")
    return entries


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Scheduler:
    def __init__(
        self,
        entries: list[ScheduleEntry],
        settings: Settings,
        *,
        clock: Clock = _utcnow,
        runner: Runner | None = None,
        poll_seconds: float = 30.0,
        verifier: Verifier = verify_now,
    ) -> None:
        self.entries = entries
        self.settings = settings
        self.clock = clock
        self.runner: Runner = runner or (lambda request: run_report(request, settings))
        self.poll_seconds = poll_seconds
        self.verifier = verifier
        self.root = reports_dir(settings)
        self.state_path = self.root / STATE_FILE
        self._verified_at: dt.datetime | None = None
        (self.root / "locks").mkdir(parents=True, exist_ok=True)
        for entry in entries:
            for outcome in OUTCOMES:
                REPORT_RUNS.labels(entry.framework, outcome)
            OVERDUE.labels(entry.name, entry.framework).set_function(functools.partial(self._overdue, entry))

    # -- state ---------------------------------------------------------------------------------------

    def last_runs(self) -> dict[str, dt.datetime]:
        try:
            raw: dict[str, Any] = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise ConfigurationError(f"the schedule state {self.state_path} is not JSON") from exc
        return {name: dt.datetime.fromisoformat(value["lastRun"]) for name, value in raw.items()}

    def set_last_run(self, name: str, scheduled: dt.datetime, outcome: str | None = None) -> None:
        """Record a run (read-modify-write under the state lock; the file is replaced atomically)."""
        with self._flock(self.root / "locks" / ".state.lock", blocking=True):
            try:
                raw: dict[str, Any] = json.loads(self.state_path.read_text())
            except FileNotFoundError:
                raw = {}
            raw[name] = {"lastRun": scheduled.isoformat(), "outcome": outcome, "recordedAt": self.clock().isoformat()}
            temporary = self.state_path.with_suffix(".tmp")
            temporary.write_text(json.dumps(raw, indent=2) + "\n")
            temporary.replace(self.state_path)

    def overdue_seconds(self, entry: ScheduleEntry, now: dt.datetime) -> float:
        """Seconds since the entry's newest cron time when that run is not recorded yet; 0 when it is (or
        before the first start has recorded a baseline)."""
        due = entry.latest_time(now)
        ran = self.last_runs().get(entry.name)
        return 0.0 if ran is None or ran >= due else (now - due).total_seconds()

    def _overdue(self, entry: ScheduleEntry) -> float:
        try:
            return self.overdue_seconds(entry, self.clock())
        except ConfigurationError:  # an unreadable state file: unknown, and tick() reports it
            return math.nan

    # -- running -------------------------------------------------------------------------------------

    def tick(self) -> list[RunOutcome]:
        """Run every report that is due now, one after the other."""
        now = self.clock()
        outcomes = []
        for entry in self.entries:
            latest = entry.latest_time(now)
            last = self.last_runs().get(entry.name)
            if last is None:
                logger.info("report %s: first start, next run after %s", entry.name, latest.isoformat())
                self.set_last_run(entry.name, latest, "baseline")
            elif latest > last:
                outcome = self._run_locked(entry, latest)
                if outcome is not None:
                    outcomes.append(outcome)
        return outcomes

    def _run_locked(self, entry: ScheduleEntry, scheduled: dt.datetime) -> RunOutcome | None:
        try:
            with self._flock(self.root / "locks" / f"{entry.name}.lock", blocking=False):
                last = self.last_runs().get(entry.name)
                if last is not None and last >= scheduled:
                    return None  # another instance ran it while we waited for the state
                outcome, report_id = self._run(entry, scheduled)
                self.set_last_run(entry.name, scheduled, outcome)
                return RunOutcome(entry.name, entry.framework, scheduled, outcome, report_id)
        except BlockingIOError:
            logger.warning("report %s is already running elsewhere: skipped", entry.name)
            REPORT_RUNS.labels(entry.framework, "skipped").inc()
            return RunOutcome(entry.name, entry.framework, scheduled, "skipped")

    def _run(self, entry: ScheduleEntry, scheduled: dt.datetime) -> tuple[str, str | None]:
        logger.info("report %s: running for %s", entry.name, scheduled.isoformat())
        try:
            result = self.runner(entry.request_for(scheduled))
        except ReportError as exc:  # counted by run_report; the notebook is kept
            logger.error("report %s failed: %s", entry.name, exc.message)
            return "error", exc.details.get("reportId")
        except (QerberosError, OSError) as exc:
            logger.error("report %s could not run: %s", entry.name, exc)
            REPORT_RUNS.labels(entry.framework, "error").inc()
            return "error", None
        return result.outcome, result.report_id

    @contextlib.contextmanager
    def _flock(self, path: Path, *, blocking: bool) -> Iterator[None]:
        with path.open("a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def verify_if_due(self) -> bool:
        """Verify the whole ledger if ``QERBEROS_VERIFY_INTERVAL`` has passed since the last time (or never
        ran); whether it ran."""
        interval = self.settings.verify_interval
        now = self.clock()
        if interval <= 0 or (self._verified_at is not None and (now - self._verified_at).total_seconds() < interval):
            return False
        self._verified_at = now
        self.verifier(self.settings)
        return True

    def run_forever(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        logger.info("scheduler started with %d reports", len(self.entries))
        while not stop.is_set():
            self.tick()
            self.verify_if_due()
            stop.wait(self._seconds_to_next())

    def _seconds_to_next(self) -> float:
        now = self.clock()
        upcoming: list[dt.datetime] = [croniter(entry.cron, now).get_next(dt.datetime) for entry in self.entries]
        if self.settings.verify_interval > 0 and self._verified_at is not None:
            upcoming.append(self._verified_at + dt.timedelta(seconds=self.settings.verify_interval))
        if not upcoming:
            return self.poll_seconds
        return max(1.0, min(self.poll_seconds, (min(upcoming) - now).total_seconds() + 0.5))


def serve_metrics(settings: Settings) -> None:
    """Expose this process's metrics (runs, last success, overdue reports, verification, memory limit,
    process_*) for Prometheus."""
    from prometheus_client import start_http_server

    INTERVAL.set(settings.verify_interval)
    observe_memory_limit(settings)
    start_http_server(settings.scheduler_metrics_port, addr=settings.host)
    logger.info("scheduler metrics on %s:%d/metrics", settings.host, settings.scheduler_metrics_port)
