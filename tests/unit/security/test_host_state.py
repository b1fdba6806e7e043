"""The host's shared state: two connections to one file stand for two worker processes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from api.security._host_state import on_host_state
from models.host_state import Busy, HostState


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_request_recorded_by_one_worker_is_used_for_the_other_until_it_expires(tmp_path: Path) -> None:
    clock = Clock()
    one, other = HostState(tmp_path / "state.db", clock=clock), HostState(tmp_path / "state.db", clock=clock)
    outcomes = [one.first_use(["payload:a", "signature:a"], 60), other.first_use(["payload:a", "signature:b"], 60)]
    outcomes.append(other.first_use(["payload:c", "signature:c"], 60))
    clock.now += 61
    outcomes.append(other.first_use(["payload:a", "signature:a"], 60))
    assert [True, False, True, True] == outcomes


def test_both_workers_count_in_one_window(tmp_path: Path) -> None:
    clock = Clock()
    one, other = HostState(tmp_path / "state.db", clock=clock), HostState(tmp_path / "state.db", clock=clock)
    hits = [one.hit("caller", 60), other.hit("caller", 60), one.hit("another", 60)]
    clock.now += 30
    hits.append(other.hit("caller", 60))
    clock.now += 30
    hits.append(one.hit("caller", 60))
    assert [(1, 60.0), (2, 60.0), (1, 60.0), (3, 30.0), (1, 60.0)] == hits


def test_expired_rows_are_removed(tmp_path: Path) -> None:
    clock = Clock()
    state = HostState(tmp_path / "state.db", clock=clock)
    for n in range(100):
        state.first_use([f"payload:{n}"], 60)
        state.hit(f"caller-{n}", 60)
    clock.now += 120  # past every row's expiry and the purge interval
    state.hit("caller-0", 60)
    with sqlite3.connect(tmp_path / "state.db") as reader:
        rows = [reader.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in ("used_requests", "windows")]
    assert [0, 1] == rows


def test_the_file_and_its_wal_are_the_owners_only(tmp_path: Path) -> None:
    state = HostState.in_home(tmp_path / "home")
    state.hit("caller", 60)
    modes = {path.name: path.stat().st_mode & 0o777 for path in (tmp_path / "home").iterdir()}
    assert {"host-state.db": 0o600, "host-state.db-wal": 0o600, "host-state.db-shm": 0o600} == modes


def test_a_caller_that_does_not_wait_is_told_at_once_that_another_process_writes(tmp_path: Path) -> None:
    state = HostState(tmp_path / "state.db")
    writer = sqlite3.connect(tmp_path / "state.db", isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")  # another worker, in the middle of its write
    with pytest.raises(Busy):
        state.hit("caller", 60, wait=False)

    async def waiting_turn() -> tuple[int, float]:
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.to_thread.run_sync, writer.execute, "COMMIT")  # the other worker finishes
            answer = await on_host_state(state.hit, "caller", 60)
        return answer

    assert 1 == anyio.run(waiting_turn)[0]
    writer.close()
