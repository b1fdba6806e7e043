"""Calls into the host's shared state (``models.host_state``) from the event loop: at once while no other
worker writes the file (one short SQLite write), else from a worker thread that waits its turn, so that
SQLite's busy handler never sleeps on the loop. A thread for every call cost more CPU than the write."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread

from models.host_state import Busy

T = TypeVar("T")


async def on_host_state(call: Callable[..., T], *args: Any) -> T:
    try:
        return call(*args, wait=False)
    except Busy:
        return await anyio.to_thread.run_sync(functools.partial(call, *args, wait=True))
