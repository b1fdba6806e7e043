"""Many processes append at once and the chain never forks; a killed process loses nothing it acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.ledger import Ledger
from models.verification import verify_ledger
from qerberos.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def _appender(settings: Settings, worker: int, count: int, batch: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "QERBEROS_HOME": str(settings.home),
        "QERBEROS_DATABASE_URL": settings.database_url,
        "QERBEROS_LOG_ORIGIN": settings.log_origin,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.ledger.appender", str(worker), str(count), str(batch)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_four_processes_appending_1000_events_each_never_fork_the_chain(
    ledger: Ledger, backend_settings: Settings
) -> None:
    workers = [_appender(backend_settings, worker, 1000, 1 + worker * 3) for worker in range(4)]
    acknowledged = [line.split() for worker in workers for line in worker.communicate(timeout=600)[0].splitlines()]
    assert [worker.returncode for worker in workers] == [0, 0, 0, 0]

    seqs = sorted(int(seq) for seq, _ in acknowledged)
    assert list(range(4000)) == seqs
    assert len({event_id for _, event_id in acknowledged}) == 4000
    ledger.checkpoint(force=True)
    report = verify_ledger(ledger)
    assert (report.intact, report.size) == (True, 4000), report


@pytest.mark.slow
def test_kill_9_mid_stream_loses_no_acknowledged_event(ledger: Ledger, backend_settings: Settings) -> None:
    writer = _appender(backend_settings, 0, 100_000, 1)
    assert writer.stdout is not None
    acknowledged = []
    deadline = time.monotonic() + 60
    while len(acknowledged) < 300 and time.monotonic() < deadline:
        acknowledged.append(writer.stdout.readline().split())
    os.kill(writer.pid, signal.SIGKILL)
    acknowledged += [line.split() for line in writer.communicate()[0].splitlines()]
    assert writer.returncode == -signal.SIGKILL

    stored = {str(ledger.get_by_seq(int(seq)).id): seq for seq, _ in acknowledged}
    assert {event_id: seq for seq, event_id in acknowledged} == stored
    assert verify_ledger(ledger).intact
    assert len(acknowledged) <= ledger.size()
