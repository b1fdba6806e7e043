"""Re-derive everything from the stored records and say where history was changed, if anywhere.

Checks, in sequence order: the sequence is gap-free; each record's canonical bytes re-derived from its
columns equal the stored encoding; leaf hashes; the hash chain; the details against their salted
commitment, and every missing details row against a recorded erasure (a ``gdpr.erasure`` event of its
identity after it); every stored Merkle node; every checkpoint's signature and root against the tree
recomputed from the leaves; that no checkpoint covers more entries than exist; and, last, that no entry
older than twice the checkpoint interval waits outside every signed checkpoint (the checkpointer signs
within one interval of an append: a log whose checkpoints were deleted is caught here).

The log is checked in aligned ranges of ``chunk_size`` entries. A range depends on the ones before it
only through the stored chain hash of its previous entry and the stored Merkle frontier at its start,
which are exactly what the checks before it vouch for; so the ranges are checked column-wise by the fast
path (``models/range_check.py``) in worker processes, one per core, and the first range it does not pass,
in sequence order, is checked again here row by row, the way that names the first bad sequence number.
The verdict and the problem reported are those of one sequential pass.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select
from sqlalchemy.engine import URL

from models import merkle
from models.canonical import canonical_record, commit_canonical_details
from models.database import DRIVER_ERRORS, connected, fetch_rows
from models.ledger import GENESIS_CHAIN_HASH, Ledger
from models.records import ERASURE_REF_PREFIX, ERASURE_TYPE
from models.signed_note import NoteIntegrityError, verify_checkpoint
from models.tables import CheckpointRow
from qerberos import verifier

if TYPE_CHECKING:
    from models.ledger_columns import ColumnReader

Progress = Callable[[int, int], None]
_checkpoints = CheckpointRow.__table__  # type: ignore[attr-defined]
# Bulk reads go through the driver's cursor as plain tuples: building SQLAlchemy rows cost more than the checks.
_ROWS = (
    "SELECT e.seq, e.id, e.type, e.ref, e.actor_squid_id, e.actor_sub_id, e.actor_dao_id, e.layer, e.verdict,"
    " e.details_commitment, e.cid, e.occurred_at_ms, e.received_at_ms, e.source, e.canonical, e.leaf_hash,"
    " e.chain_hash, d.salt, d.details FROM ledger_entries e LEFT JOIN event_details d ON d.seq = e.seq"
    " WHERE e.seq >= ? AND e.seq < ? ORDER BY e.seq"
)
_NODES = "SELECT idx, hash FROM merkle_nodes WHERE level = ? AND idx >= ? AND idx <= ?"
_NODE = "SELECT hash FROM merkle_nodes WHERE level = ? AND idx = ?"
_CHAIN = "SELECT chain_hash FROM ledger_entries WHERE seq = ?"
_ERASURES = f"SELECT ref, max(seq) FROM ledger_entries WHERE type = '{ERASURE_TYPE}' AND seq < ? GROUP BY ref"
_RECEIVED = "SELECT received_at_ms FROM ledger_entries WHERE seq = ?"
_DEFAULT_CHUNK = 1 << 14
_worker_reader: ColumnReader | None = None  # a worker process's own connection (see _open_worker_reader)
_worker_erasures: dict[str, int] = {}  # the erasures of the log being verified, in a worker process
Erasures = dict[str, int]
"""The sequence number of each erased identity's latest ``gdpr.erasure`` event: it covers the identity's
entries before it."""


@dataclasses.dataclass(frozen=True, slots=True)
class VerificationReport:
    size: int
    checkpoints_checked: int
    first_bad_seq: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


class _Tampered(Exception):
    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


@dataclasses.dataclass(frozen=True, slots=True)
class _Checkpoint:
    size: int
    root: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class _Range:
    """Entries ``[start, end)`` and the checkpoints whose size lies in ``(start, end]``."""

    start: int
    end: int
    checkpoints: tuple[_Checkpoint, ...]


def verify_ledger(
    ledger: Ledger,
    *,
    progress: Progress | None = None,
    chunk_size: int = _DEFAULT_CHUNK,
    workers: int | None = None,
    checkpoints_elsewhere: Sequence[str] = (),
    trusted_checkpoints: Sequence[str] = (),
) -> VerificationReport:
    """Verify the whole ledger; never raises for tampering, reports it.

    The checkpoints checked are those of the database, those of the signer's history outside it
    (``QERBEROS_HOME/checkpoints``) and ``checkpoints_elsewhere`` (signed notes, such as a backup's own): each
    must be signed by the log's keys and its root must be the root of the stored records at its size, so
    a rewrite or a truncation behind any of them is named. Last, the log must be a consistent extension of
    each of ``trusted_checkpoints`` (an auditor's saved checkpoints): an RFC 9162 consistency proof from it
    to the verified tree, checked by ``qerberos.verifier``; the smallest that fails is named.

    ``chunk_size`` (a power of two) entries are checked at a time, by ``workers`` processes (default: one
    per core this process may use; 1 checks in this process).
    """
    if chunk_size < 2 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_size must be a power of two, at least 2: got {chunk_size}")
    size: int | None = None
    with connected(ledger.engine) as connection:
        try:
            checkpoints, stored_size = _verified_checkpoints(connection, ledger, checkpoints_elsewhere)
            # read after the checkpoints, which cover only entries that existed: events appended and
            # checkpoints signed meanwhile go unchecked, never mistaken for a truncated log
            size = ledger.size()
            ranges = _ranges(size, checkpoints, chunk_size)
            erasures = _erasures(connection, size)
            with _fast_checks(ledger.engine.url, ranges, workers, erasures) as intact:
                for item, passed in zip(ranges, intact, strict=True):
                    if not passed:
                        _verify_range(connection, item, erasures)
                    if progress is not None:
                        progress(item.end, size)
            _check_signed_in_time(connection, size, stored_size, 2 * ledger.checkpoint_interval)
            _check_extends(ledger, size, trusted_checkpoints)
        except _Tampered as tampered:
            return VerificationReport(ledger.size() if size is None else size, 0, tampered.seq, tampered.problem)
    return VerificationReport(size, len(checkpoints))


def _verified_checkpoints(
    connection: Connection, ledger: Ledger, elsewhere: Sequence[str]
) -> tuple[list[_Checkpoint], int]:
    """Every signed checkpoint known, one per tree size, smallest first (two of one size must agree), and
    how many entries the database's own checkpoints and those given (``elsewhere``) cover: the history
    outside the database counts for the roots, not for that (it keeps what the database should hold)."""
    keys = ledger.verifier_keys()
    found: dict[int, bytes] = {}
    for row in connection.execute(select(_checkpoints).order_by(_checkpoints.c.size)).all():
        checkpoint = _verified(row.note, keys, ledger.origin, row.size, f"checkpoint at size {row.size}")
        if checkpoint.size != row.size or checkpoint.root != row.root_hash:
            raise _Tampered(row.size, f"checkpoint at size {row.size} does not match its signed note")
        found[checkpoint.size] = checkpoint.root
    covered = max(found, default=0)
    outside: list[tuple[str, int | None, str]] = [
        (note, size, f"the history's checkpoint of size {size}") for size, note in ledger.checkpoint_history()
    ]
    outside += [(note, None, "a checkpoint given to verify") for note in elsewhere]
    for note, size, where in outside:
        checkpoint = _verified(note, keys, ledger.origin, size, where)
        if size is None:
            covered = max(covered, checkpoint.size)
        if found.setdefault(checkpoint.size, checkpoint.root) != checkpoint.root:
            raise _Tampered(
                checkpoint.size,
                f"two signed checkpoints of size {checkpoint.size} have different roots ({where} and another): "
                "the log was forked or rewritten",
            )
    return [_Checkpoint(size, root) for size, root in sorted(found.items())], covered


def _verified(note: str, keys: Sequence[str], origin: str, size: int | None, where: str) -> _Checkpoint:
    try:
        checkpoint = verify_checkpoint(note, keys, origin)
    except NoteIntegrityError as problem:
        raise _Tampered(size, f"{where}: {problem.message}") from problem
    return _Checkpoint(checkpoint.size, checkpoint.root_hash)


def _ranges(size: int, checkpoints: Sequence[_Checkpoint], chunk_size: int) -> list[_Range]:
    beyond = [checkpoint.size for checkpoint in checkpoints if checkpoint.size > size]
    if beyond:
        raise _Tampered(size, f"log truncated: a checkpoint covers {max(beyond)} entries, the ledger holds {size}")
    for checkpoint in checkpoints:
        if checkpoint.size == 0:
            _check_root(checkpoint, {}, 0)
    return [
        _Range(start, end, tuple(c for c in checkpoints if start < c.size <= end))
        for start in range(0, size, chunk_size)
        for end in [min(start + chunk_size, size)]
    ]


def _erasures(connection: Connection, size: int) -> Erasures:
    rows = fetch_rows(connection, _ERASURES, (size,))
    return {ref.removeprefix(ERASURE_REF_PREFIX): seq for ref, seq in rows if ref.startswith(ERASURE_REF_PREFIX)}


def _check_extends(ledger: Ledger, size: int, trusted: Sequence[str]) -> None:
    """The verified tree of ``size`` entries is a consistent extension of every trusted checkpoint."""
    keys = ledger.verifier_keys()
    checkpoints = sorted(
        (
            _verified(note, keys, ledger.origin, None, f"trusted checkpoint {number}")
            for number, note in enumerate(trusted, 1)
        ),
        key=lambda checkpoint: checkpoint.size,
    )
    root = ledger.root(size) if checkpoints else b""
    for checkpoint in checkpoints:
        if checkpoint.size > size:
            raise _Tampered(
                size, f"truncated: a trusted checkpoint covers {checkpoint.size} entries, the log holds {size}"
            )
        if checkpoint.size == 0:
            continue  # every tree extends the empty one
        proof = [] if checkpoint.size == size else ledger.consistency_proof(checkpoint.size, size).proof
        try:
            verifier.verify_consistency(checkpoint.size, size, checkpoint.root, root, proof)
        except verifier.VerificationError as exc:
            raise _Tampered(
                checkpoint.size,
                f"the log is not a consistent extension of the trusted checkpoint of size {checkpoint.size}: "
                f"{exc.reason} (rewritten behind it)",
            ) from exc


def _check_signed_in_time(connection: Connection, size: int, covered: int, grace: float) -> None:
    """No entry received more than ``grace`` seconds ago lies beyond the checkpoints the database stores
    (``covered`` entries): they are what the service publishes and exports carry."""
    if covered >= size:
        return
    ((received_at_ms,),) = fetch_rows(connection, _RECEIVED, (covered,))
    waited = time.time() - received_at_ms / 1000
    if waited > grace:
        raise _Tampered(
            covered,
            f"entries {covered} to {size - 1} are in no signed checkpoint: entry {covered} was received "
            f"{waited:.0f} s ago, and checkpoints are due within {grace:g} s (deleted checkpoints?)",
        )


@contextlib.contextmanager
def _fast_checks(
    url: URL, ranges: Sequence[_Range], workers: int | None, erasures: Erasures
) -> Iterator[Iterator[bool]]:
    """Whether each range passes the fast path, in order; False for all when it cannot run here."""
    # Arrow and ADBC (with the pandas that pyarrow.dataset loads) cost an API process about 95 MB: imported when a
    # verification runs, not by every module that imports this one. Forked workers inherit them.
    from models.ledger_columns import ColumnReader, ColumnReadError
    from models.range_check import range_intact

    workers = len(os.sched_getaffinity(0)) if workers is None else workers
    try:
        reader = ColumnReader.open(url)
    except ColumnReadError:
        yield iter([False] * len(ranges))
        return
    with reader:
        if workers <= 1 or len(ranges) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            yield (range_intact(reader, item.start, item.end, _roots(item), erasures) for item in ranges)
            return
    # Forked, not spawned: a worker is ready in milliseconds, where importing the package anew takes a second.
    # Workers use Arrow, ADBC and hashlib, which are safe to use after a fork, and never this process's engine.
    # When a range fails, the ranges not yet started are cancelled and the running ones finish: a Pool's
    # terminate() could kill a worker holding its result queue's lock and then wait for that lock forever.
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(min(workers, len(ranges)), context, _open_worker_reader, (url, erasures))
    try:
        yield map(_passed, [pool.submit(_check_in_worker, item) for item in ranges])
    finally:
        pool.shutdown(cancel_futures=True)


def _open_worker_reader(url: URL, erasures: Erasures) -> None:
    from models.ledger_columns import ColumnReader, ColumnReadError  # loaded by _fast_checks before the fork

    global _worker_reader, _worker_erasures
    _worker_erasures = erasures
    try:
        _worker_reader = ColumnReader.open(url)
    except ColumnReadError:
        _worker_reader = None


def _check_in_worker(item: _Range) -> bool:
    from models.range_check import range_intact  # loaded by _fast_checks before the fork

    reader = _worker_reader
    return reader is not None and range_intact(reader, item.start, item.end, _roots(item), _worker_erasures)


def _passed(check: Future[bool]) -> bool:
    """A worker's verdict on its range; False when the worker died (the range is then checked here)."""
    try:
        return check.result()
    except BrokenProcessPool:
        return False


def _roots(item: _Range) -> list[tuple[int, bytes]]:
    return [(checkpoint.size, checkpoint.root) for checkpoint in item.checkpoints]


def _verify_range(connection: Connection, item: _Range, erasures: Erasures) -> None:
    """The exact check of one range, row by row: raises ``_Tampered`` naming the first bad sequence number."""
    start, end = item.start, item.end
    chain = GENESIS_CHAIN_HASH if start == 0 else _stored_chain_hash(connection, start - 1)
    rows = _readable_rows(connection, start, end, chain, erasures)
    leaves, _ = _verify_rows(rows, start, end, chain, erasures)
    frontier = _stored_frontier(connection, start)
    stored = _stored_nodes(connection, start, end)
    pending = list(item.checkpoints)
    position = start
    while position < end:
        stop = min([c.size for c in pending if c.size > position] + [end])
        new_nodes, frontier = merkle.append_batch(position, leaves[position - start : stop - start], frontier)
        for level, index, node in new_nodes:
            if stored.pop((level, index), None) != node:
                raise _Tampered(index << level, f"Merkle node ({level}, {index}) does not match the leaves")
        while pending and pending[0].size == stop:
            _check_root(pending.pop(0), frontier, stop)
        position = stop
    if stored:
        level, index = min(stored)
        raise _Tampered(index << level, f"unexpected Merkle node ({level}, {index})")


def _readable_rows(
    connection: Connection, start: int, end: int, chain: bytes, erasures: Erasures
) -> list[tuple[Any, ...]]:
    """The rows ``[start, end)``; one the driver cannot read (SQLite keeps text that is not UTF-8 if given
    it) is where history was changed, unless a row before it was changed otherwise."""
    try:
        return fetch_rows(connection, _ROWS, (start, end))
    except DRIVER_ERRORS as exc:
        unreadable = next((seq for seq in range(start, end) if not _readable(connection, seq)), None)
        if unreadable is None:
            raise  # not a row's value: the database itself failed
        _verify_rows(fetch_rows(connection, _ROWS, (start, unreadable)), start, unreadable, chain, erasures)
        problem = f"entry {unreadable} cannot be read: a stored value is not of its column's type"
        raise _Tampered(unreadable, problem) from exc


def _readable(connection: Connection, seq: int) -> bool:
    try:
        fetch_rows(connection, _ROWS, (seq, seq + 1))
    except DRIVER_ERRORS:
        return False
    return True


def _stored_chain_hash(connection: Connection, seq: int) -> bytes:
    """The chain hash the entries before a range end with (checked there: they passed)."""
    rows = fetch_rows(connection, _CHAIN, (seq,))
    if not rows:
        raise _Tampered(seq, f"sequence number {seq} is missing")
    return bytes(rows[0][0])


def _stored_frontier(connection: Connection, start: int) -> dict[tuple[int, int], bytes]:
    """The stored Merkle frontier at an aligned ``start`` (checked with the entries before it: they passed)."""
    frontier = {}
    for level, index in merkle.frontier_keys(start):
        rows = fetch_rows(connection, _NODE, (level, index))
        if not rows:
            raise _Tampered(index << level, f"Merkle node ({level}, {index}) is missing")
        frontier[(level, index)] = bytes(rows[0][0])
    return frontier


def _verify_rows(
    rows: Sequence[tuple[Any, ...]], start: int, end: int, chain: bytes, erasures: Erasures
) -> tuple[list[bytes], bytes]:
    """Check rows ``[start, end)`` in order, after the record whose chain hash is ``chain``.

    The chain is checked as ``stored[seq] == SHA-256(stored[seq - 1] || leaf)``: exactly the recomputed
    chain, by induction from the genesis hash, and it names the same first bad seq.
    """
    leaves = []
    expected = start
    for row in rows:
        seq = row[0]
        if seq != expected:
            raise _Tampered(expected, f"sequence number {expected} is missing")
        try:
            leaf, chain = _verify_row(row, chain, erasures)
        except (TypeError, ValueError, AttributeError) as exc:  # SQLite keeps a value of any type it is given
            raise _Tampered(seq, f"a stored value has an unexpected type ({exc})") from exc
        leaves.append(leaf)
        expected += 1
    if expected != end:
        raise _Tampered(expected, f"sequence number {expected} is missing")
    return leaves, chain


def _verify_row(row: tuple[Any, ...], chain: bytes, erasures: Erasures) -> tuple[bytes, bytes]:
    """Check one row after the record whose chain hash is ``chain``; its leaf hash and its stored chain hash."""
    (
        seq, event_id, type_, ref, squid_id, sub_id, dao_id, layer, verdict, commitment, cid, occurred_at_ms,
        received_at_ms, source, stored_canonical, stored_leaf, stored_chain, salt, details,
    ) = row  # fmt: skip
    canonical = canonical_record(
        seq=seq, event_id=event_id, type=type_, ref=ref, squid_id=squid_id, sub_id=sub_id, dao_id=dao_id,
        layer=layer, verdict=verdict, details_commitment=commitment, cid=cid, occurred_at_ms=occurred_at_ms,
        received_at_ms=received_at_ms, source=source,
    )  # fmt: skip
    if canonical != stored_canonical.encode():
        raise _Tampered(seq, "stored columns do not match the stored canonical encoding")
    leaf = hashlib.sha256(b"\x00" + canonical).digest()
    if leaf != stored_leaf:
        raise _Tampered(seq, "leaf hash does not match the canonical encoding")
    if hashlib.sha256(chain + leaf).digest() != stored_chain:
        raise _Tampered(seq, "hash chain broken")
    if details is None and erasures.get(squid_id, -1) <= seq:
        raise _Tampered(
            seq, f"the details of entry {seq} are missing and no recorded erasure of {squid_id} covers them"
        )
    if details is not None and commit_canonical_details(details.encode(), salt) != commitment:
        raise _Tampered(seq, "details do not match their commitment")
    return leaf, stored_chain


def _stored_nodes(connection: Connection, start: int, end: int) -> dict[tuple[int, int], bytes]:
    """The stored nodes that leaves [start, end) complete, one range query per level."""
    found: dict[tuple[int, int], bytes] = {}
    level = 1
    while (1 << level) <= end:
        # node i of this level is completed by leaf (i + 1) * 2**level - 1
        low = ((start + (1 << level)) >> level) - 1
        high = (end >> level) - 1
        if high >= low:
            rows = fetch_rows(connection, _NODES, (level, low, high))
            found.update({(level, index): node for index, node in rows})
        level += 1
    return found


def _check_root(checkpoint: _Checkpoint, frontier: dict[tuple[int, int], bytes], size: int) -> None:
    if merkle.root_from_frontier(size, frontier) != checkpoint.root:
        raise _Tampered(size, f"checkpoint at size {size} does not match the tree of the stored records")
