"""``RiskWriter``: the risk history stored write-behind, from a thread of its own, many assessments a transaction."""

from __future__ import annotations

import logging
import threading

from models.reader import ReadSession
from models.risk_store import CurrentRisk, RiskRecord, RiskStore
from qerberos.errors import LedgerError

logger = logging.getLogger(__name__)


class RiskWriter:
    """Write-behind for the history: assessments are queued and stored by one thread, many per transaction
    (every ``interval`` seconds), so an answer never waits for a disk flush or for another writer's lock.

    The price: a crash loses at most the last ``interval`` of *history* (never a level-change event, which
    the service appends to the ledger before queueing). ``current(identity)`` answers queued assessments
    first, so level changes are measured against the newest level even before it is stored.
    """

    def __init__(self, store: RiskStore, *, interval: float = 0.05, max_pending: int = 10_000) -> None:
        self._store = store
        self._interval = interval
        self._max_pending = max_pending
        self._queue: list[RiskRecord] = []
        self._recent: dict[str, CurrentRisk] = {}
        self._last: dict[str, tuple[float, str | None, int]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="qerberos-risk-writer", daemon=True)
        self._thread.start()

    def current(self, identity: str, session: ReadSession | None = None) -> CurrentRisk | None:
        with self._lock:
            recent = self._recent.get(identity)
        return recent if recent is not None else self._store.current(identity, session)

    def submit(self, record: RiskRecord) -> None:
        key = (record.score, record.operation, record.computed_at_ms)
        with self._lock:
            if self._last.get(record.identity) == key:
                return  # the same assessment as the last one queued for this identity
            self._last[record.identity] = key
            self._queue.append(record)
            if record.operation is None:
                factors = [{"name": n, "weight": w, "value": v} for n, w, v in record.factors]
                self._recent[record.identity] = CurrentRisk(
                    record.identity, record.score, record.level, factors, record.computed_at_ms
                )
            full = len(self._queue) >= self._max_pending
        if full:
            self._wake.set()

    def flush(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
        if batch:
            try:
                self._store.record_many(batch)
            except LedgerError:
                logger.exception("could not store %d risk assessments", len(batch))
        with self._lock:
            for record in batch:
                recent = self._recent.get(record.identity)
                if recent is not None and recent.computed_at_ms == record.computed_at_ms:
                    del self._recent[record.identity]
            if len(self._last) > 100_000:
                self._last.clear()

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval)
            self._wake.clear()
            self.flush()
