"""What the commands that append events (``ingest``, ``import``) share: the input, a file or standard input read
as bytes, its progress on a terminal, and appending in batches, each validated whole before it is written."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from cli._common import fail

if TYPE_CHECKING:
    from models.ledger import Ledger
    from models.records import NewEvent


__all__ = ["append_in_batches", "counted_lines", "open_input"]


def open_input(source: str) -> BinaryIO:
    """The lines as bytes: a decoder refuses text that is not UTF-8 by line number, not with a traceback."""
    if source == "-":
        return sys.stdin.buffer
    path = Path(source)
    if not path.is_file():
        raise fail(f"no such file: {source}")
    return path.open("rb")


def counted_lines(stream: BinaryIO, progress: Callable[[int, int], None], every: int = 10_000) -> Iterator[bytes]:
    """The lines of ``stream``, telling ``progress`` the bytes read (of the file's size, when it has one)."""
    name = getattr(stream, "name", None)
    try:
        total = Path(name).stat().st_size if isinstance(name, str) else 0
    except OSError:  # standard input, a pipe
        total = 0
    done = 0
    for number, line in enumerate(stream, start=1):
        done += len(line)
        if number % every == 0:
            progress(done, max(total, done))
        yield line
    progress(done, max(total, done))


def append_in_batches(ledger: Ledger, events: Iterable[NewEvent], batch_size: int) -> int:
    """Append ``events`` ``batch_size`` at a time; an error while reading a batch writes nothing of it. What
    was appended is signed in a checkpoint at the end, also when a later batch failed. Returns how many events
    were new."""

    appended = 0
    batch: list[NewEvent] = []
    try:
        for event in events:
            batch.append(event)
            if len(batch) == batch_size:
                appended += sum(result.created for result in ledger.append(batch))
                batch = []
        if batch:
            appended += sum(result.created for result in ledger.append(batch))
    finally:
        if appended:
            ledger.checkpoint(force=True)
    return appended
