"""The scheduler: a missed run is caught up once after downtime, the same report never runs twice at once,
and its outcomes are exposed as metrics."""

from __future__ import annotations

import datetime as dt
import fcntl
import socket
import threading
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from pipelines.reports import ReportRequest, ReportResult
from pipelines.schedule import DEFAULT_CONFIG, ScheduleEntry, Scheduler, load_schedule, period_for, serve_metrics
from qerberos.settings import Settings

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
    assert {"soc2", "gdpr", "iso27001"} == {entry.framework for entry in load_schedule(DEFAULT_CONFIG)}


def test_metrics_are_served_on_their_port(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    import dataclasses

    serve_metrics(dataclasses.replace(settings, scheduler_metrics_port=port, host="127.0.0.1"))
    Scheduler([DAILY], settings, clock=FakeClock(T0), runner=FakeRunner())  # registers nothing new: shared metrics
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        body = answer.read().decode()
    assert ("qerberos_report_runs_total" in body, "qerberos_report_last_success_timestamp_seconds" in body) == (
        True,
        True,
    )
