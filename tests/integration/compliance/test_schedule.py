"""The scheduler: a missed run is caught up once after downtime, the same report never runs twice at once,
and its outcomes are exposed as metrics."""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import socket
import sqlite3
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from models.ledger import initialise
from pipelines.reports import ReportRequest, ReportResult
from pipelines.schedule import ScheduleEntry, Scheduler, load_schedule, period_for, serve_metrics
from pipelines.scheduled_verification import verify_now
from qerberos.package_data import config_file
from qerberos.settings import Settings
from tests.integration.ledger.helpers import event

DAILY = ScheduleEntry("soc2-daily", "soc2", "0 3 * * *", period="previous-day")
T0 = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


class FakeClock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


class FakeRunner:
    def __init__(self, release: threading.Event | None = None) -> None:
        self.requests: list[ReportRequest] = []
        self.release = release
        self.started = threading.Event()

    def __call__(self, request: ReportRequest) -> ReportResult:
        self.requests.append(request)
        self.started.set()
        if self.release is not None:
            assert self.release.wait(10)
        return ReportResult(f"r{len(self.requests)}", Path("."), {"outcome": "success", "reportSha256": "00"})


@pytest.fixture
def settings(sqlite_settings: Settings) -> Settings:
    return sqlite_settings


def _runs(framework: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("qerberos_report_runs_total", {"framework": framework, "outcome": outcome}) or 0.0


def test_first_start_sets_a_baseline_and_runs_nothing(settings: Settings) -> None:
    runner = FakeRunner()
    scheduler = Scheduler([DAILY], settings, clock=FakeClock(T0), runner=runner)
    assert ([], []) == (scheduler.tick(), runner.requests)
    assert {"soc2-daily": dt.datetime(2026, 3, 10, 3, 0, tzinfo=dt.UTC)} == scheduler.last_runs()


def test_missed_runs_are_caught_up_once_after_downtime(settings: Settings) -> None:
    runner, clock = FakeRunner(), FakeClock(T0)
    scheduler = Scheduler([DAILY], settings, clock=clock, runner=runner)
    scheduler.set_last_run("soc2-daily", T0 - dt.timedelta(days=5))  # down for five days
    first = scheduler.tick()
    again = scheduler.tick()
    clock.now = T0 + dt.timedelta(days=1)  # the next day's run is due once more
    next_day = scheduler.tick()
    scheduled = dt.datetime(2026, 3, 10, 3, 0, tzinfo=dt.UTC)
    assert [("success", scheduled)] == [(o.outcome, o.scheduled_for) for o in first]
    assert ([], 1) == (again, len(next_day))
    assert (dt.datetime(2026, 3, 9, tzinfo=dt.UTC), dt.datetime(2026, 3, 10, tzinfo=dt.UTC)) == (
        runner.requests[0].start,
        runner.requests[0].end,
    )


def test_a_held_lock_skips_the_run_and_counts_it(settings: Settings) -> None:
    runner = FakeRunner()
    scheduler = Scheduler([DAILY], settings, clock=FakeClock(T0), runner=runner)
    scheduler.set_last_run("soc2-daily", T0 - dt.timedelta(days=2))
    skipped_before = _runs("soc2", "skipped")
    with (settings.home / "reports" / "locks" / "soc2-daily.lock").open("a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        outcomes = scheduler.tick()
    assert (["skipped"], [], 1.0) == (
        [o.outcome for o in outcomes],
        runner.requests,
        _runs("soc2", "skipped") - skipped_before,
    )
    assert T0 - dt.timedelta(days=2) == scheduler.last_runs()["soc2-daily"]  # still due: not marked as run


def test_two_schedulers_never_run_the_same_report_twice(settings: Settings) -> None:
    release = threading.Event()
    runner = FakeRunner(release)
    one = Scheduler([DAILY], settings, clock=FakeClock(T0), runner=runner)
    two = Scheduler([DAILY], settings, clock=FakeClock(T0), runner=runner)
    one.set_last_run("soc2-daily", T0 - dt.timedelta(days=3))
    running = threading.Thread(target=one.tick)
    running.start()
    assert runner.started.wait(10)
    during = two.tick()
    release.set()
    running.join(10)
    after = two.tick()
    assert (["skipped"], [], 1) == ([o.outcome for o in during], after, len(runner.requests))


def test_periods_of_the_schedule_kinds() -> None:
    at = dt.datetime(2026, 3, 4, 3, 0, tzinfo=dt.UTC)  # a Wednesday
    day = dt.timedelta(days=1)
    assert [
        (at.replace(hour=0) - day, at.replace(hour=0)),
        (dt.datetime(2026, 2, 23, tzinfo=dt.UTC), dt.datetime(2026, 3, 2, tzinfo=dt.UTC)),
        (dt.datetime(2026, 2, 1, tzinfo=dt.UTC), dt.datetime(2026, 3, 1, tzinfo=dt.UTC)),
        (at - day, at),
    ] == [period_for(kind, "0 3 * * *", at) for kind in ("previous-day", "previous-week", "previous-month", "interval")]


def test_the_shipped_schedule_loads() -> None:
    assert {"soc2", "gdpr", "iso27001"} == {entry.framework for entry in load_schedule(config_file("reports.toml"))}


def test_metrics_are_served_on_their_port(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serve_metrics(dataclasses.replace(settings, scheduler_metrics_port=port, host="127.0.0.1"))
    Scheduler([DAILY], settings, clock=FakeClock(T0), runner=FakeRunner())  # registers nothing new: shared metrics
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        body = answer.read().decode()
    assert ("qerberos_report_runs_total" in body, "qerberos_report_last_success_timestamp_seconds" in body) == (
        True,
        True,
    )


def test_every_outcome_of_a_scheduled_framework_is_exported_from_the_start(settings: Settings) -> None:
    """At 0 before any run, so that a first failure is an increase Prometheus sees (QerberosReportFailed)."""
    Scheduler([DAILY], settings, clock=FakeClock(T0), runner=FakeRunner())
    samples = {
        outcome: REGISTRY.get_sample_value("qerberos_report_runs_total", {"framework": "soc2", "outcome": outcome})
        for outcome in ("success", "integrity_failed", "error", "skipped")
    }
    assert None not in samples.values(), samples


def test_a_due_run_that_is_not_recorded_shows_as_overdue_until_it_runs(settings: Settings) -> None:
    clock = FakeClock(T0)
    scheduler = Scheduler([DAILY], settings, clock=clock, runner=FakeRunner())
    labels = {"report": "soc2-daily", "framework": "soc2"}
    scheduler.tick()  # first start: the baseline is 03:00 today
    assert 0.0 == REGISTRY.get_sample_value("qerberos_report_overdue_seconds", labels)
    clock.now = T0 + dt.timedelta(days=1)  # 12:00 the next day: the 03:00 run has not happened
    assert 9 * 3600.0 == REGISTRY.get_sample_value("qerberos_report_overdue_seconds", labels)
    scheduler.tick()
    assert 0.0 == REGISTRY.get_sample_value("qerberos_report_overdue_seconds", labels)


def test_the_ledger_is_verified_at_start_then_once_per_interval(settings: Settings) -> None:
    clock = FakeClock(T0)
    verified: list[dt.datetime] = []
    hourly = dataclasses.replace(settings, verify_interval=3600.0)

    def verifier(_: Settings) -> None:
        verified.append(clock())

    scheduler = Scheduler([DAILY], hourly, clock=clock, runner=FakeRunner(), verifier=verifier)
    ran = [scheduler.verify_if_due()]
    for minutes in (30, 59, 61, 90, 122):
        clock.now = T0 + dt.timedelta(minutes=minutes)
        ran.append(scheduler.verify_if_due())
    assert [True, False, False, True, False, True] == ran
    assert [T0, T0 + dt.timedelta(minutes=61), T0 + dt.timedelta(minutes=122)] == verified
    off = Scheduler([DAILY], dataclasses.replace(settings, verify_interval=0.0), clock=clock, verifier=verifier)
    assert (False, 3) == (off.verify_if_due(), len(verified))


def test_a_scheduled_verification_counts_a_tampered_ledger_and_dates_an_intact_one(settings: Settings) -> None:
    def failures() -> float:
        return REGISTRY.get_sample_value("qerberos_verification_failures_total") or 0.0

    with initialise(settings) as ledger:
        ledger.append([event(n) for n in range(5)])
        ledger.checkpoint(force=True)
    before = failures()
    report = verify_now(settings)
    assert report is not None and report.intact
    assert (before, True) == (failures(), time.time() - 60 < (REGISTRY.get_sample_value(
        "qerberos_verification_last_success_timestamp_seconds") or 0))  # fmt: skip
    with sqlite3.connect(settings.home / "qerberos.db") as connection:  # an attacker past qerberos's triggers
        connection.execute("DROP TRIGGER event_details_no_update")
        connection.execute("UPDATE event_details SET details = '{\"n\": 99}' WHERE seq = 2")
    report = verify_now(settings)
    assert report is not None and (2, False) == (report.first_bad_seq, report.intact)
    assert before + 1 == failures()
