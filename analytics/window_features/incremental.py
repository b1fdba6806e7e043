"""The window features (``definition.py``) kept up to date event by event, for live detection.

Per identity, ``IncrementalFeatures`` keeps aggregates of its folded history (hour and hour-of-week counts,
refs, countries and IPs seen, DAO counts) and the raw events of its last ``keep_windows`` windows. A window's
facts (``definition.FACT_COLUMNS``) come from these exactly as ``batch.py`` gathers them from every event
seen so far, and the features from the facts through the same expressions (``definition.feature_exprs``), so
a recent window's features equal ``compute_features`` over the same events (the unit tests compare both on
simulated traffic). An event older than the folded history (very late) is folded in without being scored.

The expressions run on a frame of many windows at once: ``take_ready`` finishes every changed window in one
go, and the windows folded meanwhile (whose features feed the identity's ``baseline``) are finished in
batches of ``_FINISH_BATCH``.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl

from analytics.alert_evidence import WindowEvidence
from analytics.live_events import LiveEvent
from analytics.window_features.definition import (
    FACT_COLUMNS,
    FEATURE_COLUMNS,
    HOUR_FACT_COLUMNS,
    WINDOW_MS,
    check_window,
    feature_exprs,
    hour_of_day,
    hour_of_week,
    off_hour_events,
    window_start,
)

__all__ = ["FeatureRow", "IncrementalFeatures", "rows_from_events"]

logger = logging.getLogger(__name__)

_PEER_COUNTS_KEPT = 48  # windows of per-identity event counts kept for peer deviations
_FINISH_BATCH = 4096  # folded windows whose features wait to be computed together
_FACT_SCHEMA: dict[str, pl.DataType] = {
    "s": pl.String(),
    "w": pl.Int64(),
    **{
        name: pl.Float64() if name in ("peer_sum", "peer_sumsq") else pl.Int64()
        for name in FACT_COLUMNS
        if name != "off_events"  # from the hour facts
    },
}
_HOUR_FACT_SCHEMA: dict[str, pl.DataType] = {
    name: pl.String() if name == "s" else pl.Int64() for name in HOUR_FACT_COLUMNS
}
_Key = tuple[str, int]  # (squid_id, window start ms)
_Facts = tuple[tuple[Any, ...], list[tuple[str, int, int, int, int]]]  # a window's facts and its hour facts


@dataclasses.dataclass(frozen=True, slots=True)
class FeatureRow:
    squid_id: str
    window_start_ms: int
    values: dict[str, float]


@dataclasses.dataclass(slots=True)
class _Folded:
    """An identity's history before its recent windows, as counts and sets."""

    events: int = 0
    windows: int = 0
    hours: list[int] = dataclasses.field(default_factory=lambda: [0] * 24)
    slot_events: list[int] = dataclasses.field(default_factory=lambda: [0] * 168)
    slot_windows: list[int] = dataclasses.field(default_factory=lambda: [0] * 168)
    refs: set[str] = dataclasses.field(default_factory=set)
    countries: set[str] = dataclasses.field(default_factory=set)
    ips: set[str] = dataclasses.field(default_factory=set)

    def add(self, events: Sequence[LiveEvent], start: int, *, new_window: bool) -> None:
        self.events += len(events)
        if new_window:
            self.windows += 1
            self.slot_windows[hour_of_week(start)] += 1
        self.slot_events[hour_of_week(start)] += len(events)
        for event in events:
            self.hours[hour_of_day(event.occurred_at_ms)] += 1
            self.refs.add(event.ref)
            if event.country is not None:
                self.countries.add(event.country)
            if event.ip is not None:
                self.ips.add(event.ip)


@dataclasses.dataclass(slots=True)
class _Identity:
    folded: _Folded = dataclasses.field(default_factory=_Folded)
    folded_upto: int | None = None
    recent: dict[int, list[LiveEvent]] = dataclasses.field(default_factory=dict)
    counts: dict[int, int] = dataclasses.field(default_factory=dict)  # window -> events, for peers
    daos: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    peer_dao: str | None = None
    feature_sums: dict[str, float] = dataclasses.field(default_factory=dict)
    feature_windows: int = 0
    rows: dict[int, dict[str, float]] = dataclasses.field(default_factory=dict)  # last row of recent windows


class _History:
    """An identity's history before one of its recent windows: the folded history and the earlier recent windows."""

    def __init__(self, who: _Identity, start: int) -> None:
        self.folded = who.folded
        self.earlier = [(w, who.recent[w]) for w in sorted(who.recent) if w < start]
        self.events = who.folded.events + sum(len(batch) for _, batch in self.earlier)
        self.windows = who.folded.windows + len(self.earlier)

    def in_slot(self, slot: int) -> tuple[int, int]:
        """Events and windows with events in the hour of the week ``slot``."""
        earlier = [batch for w, batch in self.earlier if hour_of_week(w) == slot]
        return (
            self.folded.slot_events[slot] + sum(len(batch) for batch in earlier),
            self.folded.slot_windows[slot] + len(earlier),
        )

    def hours(self) -> list[int]:
        """Events per hour of day."""
        hours = list(self.folded.hours)
        for _, batch in self.earlier:
            for event in batch:
                hours[hour_of_day(event.occurred_at_ms)] += 1
        return hours

    def new(self, values: Iterable[str | None], seen: set[str], field: str) -> set[str]:
        """The distinct ``values`` that neither ``seen`` (the folded history's) nor the earlier windows' events
        (their ``field``) hold; None is never new."""
        new = {value for value in values if value is not None and value not in seen}
        for _, batch in self.earlier:
            if not new:
                break
            new -= {getattr(event, field) for event in batch}
        return new


def _own_facts(events: Sequence[LiveEvent]) -> tuple[int, ...]:
    """The facts of the window's own events: ``event_count`` to ``fail_then_success`` of ``FACT_COLUMNS``."""
    auth = sorted((e for e in events if e.category.is_sign_in()), key=lambda e: (e.occurred_at_ms, e.seq))
    return (
        len(events),
        len({e.ref for e in events}),
        len({e.layer for e in events}),
        sum(e.verdict == "DENY" for e in events),
        sum(e.verdict == "WARN" for e in events),
        sum(a.category.status == "failure" and b.category.status == "success" for a, b in itertools.pairwise(auth)),
    )


def _history_facts(events: Sequence[LiveEvent], history: _History, start: int) -> tuple[int, ...]:
    """The facts that compare the window's events with the identity's history: ``new_ref_events`` to
    ``prior_slot_windows`` of ``FACT_COLUMNS``."""
    new_refs = history.new((e.ref for e in events), history.folded.refs, "ref")
    slot_events, slot_windows = history.in_slot(hour_of_week(start))
    return (
        sum(e.ref in new_refs for e in events),
        len(history.new((e.country for e in events), history.folded.countries, "country")),
        len(history.new((e.ip for e in events), history.folded.ips, "ip")),
        history.events,
        history.windows,
        slot_events,
        slot_windows,
    )


class IncrementalFeatures:
    """Per-identity window features, updated event by event (see the module doc)."""

    def __init__(self, window: str = "1h", *, keep_windows: int = 3) -> None:
        check_window(window)
        self.window = window
        self.size_ms = WINDOW_MS[window]
        self.keep_windows = max(1, keep_windows)
        self._ids: dict[str, _Identity] = collections.defaultdict(_Identity)
        self._members: dict[str, set[str]] = collections.defaultdict(set)
        self._dirty: set[_Key] = set()
        self._ready: dict[_Key, FeatureRow] = {}
        self._folding: list[tuple[_Key, _Facts, bool]] = []  # folded windows to finish; True: also ready

    def add(self, event: LiveEvent) -> None:
        who = self._ids[event.squid_id]
        start = window_start(event.occurred_at_ms, self.size_ms)
        if event.dao_id is not None:
            who.daos[event.dao_id] += 1
            self._update_membership(event.squid_id, who)
        if who.folded_upto is not None and start <= who.folded_upto:
            who.folded.add([event], start, new_window=False)  # very late: history only, not scored
            logger.debug("late event %d of %s folded into history", event.seq, event.squid_id)
            return
        who.recent.setdefault(start, []).append(event)
        who.counts[start] = who.counts.get(start, 0) + 1
        self._dirty.add((event.squid_id, start))
        while len(who.recent) > self.keep_windows:
            self._fold_oldest(event.squid_id, who)
        if len(self._folding) >= _FINISH_BATCH:
            self._finish_folded()

    def take_ready(self) -> list[FeatureRow]:
        """The current features of every window changed since the last call (each once), then forget them."""
        self._finish_folded()
        dirty = sorted(self._dirty)
        for row in self._finish([self._facts(*key) for key in dirty]):
            self._ids[row.squid_id].rows[row.window_start_ms] = row.values
            self._ready[row.squid_id, row.window_start_ms] = row
        ready, self._ready, self._dirty = self._ready, {}, set()
        return [ready[key] for key in sorted(ready)]

    def compute(self, squid_id: str, start: int) -> FeatureRow:
        """The features of ``squid_id``'s window starting at ``start`` (a recent window), as of now."""
        (row,) = self._finish([self._facts(squid_id, start)])
        self._ids[squid_id].rows[start] = row.values
        return row

    def evidence(self, squid_id: str, start: int) -> WindowEvidence | None:
        """The events of the identity's recent window at ``start`` and what in them is new to it (None when the
        window is no longer held raw)."""
        who = self._ids.get(squid_id)
        events = None if who is None else who.recent.get(start)
        if who is None or events is None:
            return None
        history = _History(who, start)
        return WindowEvidence(
            seqs=tuple(e.seq for e in events),
            addresses=frozenset(e.ip for e in events if e.ip is not None),
            new_countries=frozenset(history.new((e.country for e in events), history.folded.countries, "country")),
            new_addresses=frozenset(history.new((e.ip for e in events), history.folded.ips, "ip")),
            new_resources=frozenset(history.new((e.ref for e in events), history.folded.refs, "ref")),
            denied_resources=frozenset(e.ref for e in events if e.verdict == "DENY"),
            prior_events=history.events,
        )

    def baseline(self, squid_id: str) -> dict[str, float] | None:
        """The mean of each feature over the identity's folded windows; None without any."""
        self._finish_folded()
        who = self._ids.get(squid_id)
        if who is None or who.feature_windows == 0:
            return None
        return {name: total / who.feature_windows for name, total in who.feature_sums.items()}

    def _update_membership(self, squid_id: str, who: _Identity) -> None:
        best = min(who.daos.items(), key=lambda item: (-item[1], item[0]))[0]
        if best != who.peer_dao:
            if who.peer_dao is not None:
                self._members[who.peer_dao].discard(squid_id)
            self._members[best].add(squid_id)
            who.peer_dao = best

    def _fold_oldest(self, squid_id: str, who: _Identity) -> None:
        start = min(who.recent)
        row = who.rows.pop(start, None)
        dirty = (squid_id, start) in self._dirty
        if dirty or row is None:  # its features as of now, finished later (``_finish_folded``)
            self._dirty.discard((squid_id, start))
            self._folding.append(((squid_id, start), self._facts(squid_id, start), dirty))
        else:
            self._add_to_baseline(who, row)
        who.folded.add(who.recent.pop(start), start, new_window=True)
        who.folded_upto = start
        horizon = start - _PEER_COUNTS_KEPT * self.size_ms
        for old in [w for w in who.counts if w < horizon]:
            del who.counts[old]

    def _finish_folded(self) -> None:
        if not self._folding:
            return
        folding, self._folding = self._folding, []
        rows = self._finish([facts for _, facts, _ in folding])
        for (key, _, ready), row in zip(folding, rows, strict=True):
            self._add_to_baseline(self._ids[key[0]], row.values)
            if ready:
                self._ready[key] = row

    @staticmethod
    def _add_to_baseline(who: _Identity, values: dict[str, float]) -> None:
        for name in FEATURE_COLUMNS:
            who.feature_sums[name] = who.feature_sums.get(name, 0.0) + values[name]
        who.feature_windows += 1

    def _facts(self, squid_id: str, start: int) -> _Facts:
        """The window's facts and hour facts, as of now."""
        who = self._ids[squid_id]
        events = who.recent.get(start, [])
        history = _History(who, start)
        facts = (
            squid_id,
            start,
            *_own_facts(events),
            *_history_facts(events, history, start),
            *self._peers(who, start),
        )
        in_hour = collections.Counter(hour_of_day(event.occurred_at_ms) for event in events)
        prior_hours = history.hours() if in_hour else []
        hours = [(squid_id, start, n, prior_hours[hour], history.events) for hour, n in in_hour.items()]
        return facts, hours

    def _peers(self, who: _Identity, start: int) -> tuple[float | None, float | None, int | None]:
        """``peer_sum``, ``peer_sumsq`` and ``members`` of ``FACT_COLUMNS``."""
        if who.peer_dao is None:
            return None, None, None
        counts = [float(self._ids[member].counts.get(start, 0)) for member in self._members[who.peer_dao]]
        return sum(counts), sum(c * c for c in counts), len(counts)

    @staticmethod
    def _finish(facts: Sequence[_Facts]) -> list[FeatureRow]:
        """The features of windows from their facts (``definition.feature_exprs``), in the order given."""
        windows = pl.DataFrame([window for window, _ in facts], schema=_FACT_SCHEMA, orient="row")
        hours = pl.DataFrame([row for _, rows in facts for row in rows], schema=_HOUR_FACT_SCHEMA, orient="row")
        features = windows.join(off_hour_events(hours), on=["s", "w"], how="left", maintain_order="left").select(
            "s", "w", *feature_exprs()
        )
        return [
            FeatureRow(squid_id, start, dict(zip(FEATURE_COLUMNS, map(float, values), strict=True)))
            for squid_id, start, *values in features.iter_rows()
        ]


def rows_from_events(events: Iterable[LiveEvent], window: str) -> list[FeatureRow]:
    """Features of every window of a batch of events with no history (``POST /anomaly/detect``)."""
    features = IncrementalFeatures(window, keep_windows=1_000_000)
    for event in sorted(events, key=lambda e: (e.occurred_at_ms, e.seq)):
        features.add(event)
    return features.take_ready()
