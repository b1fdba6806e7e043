"""How many ledger entries match a search filter, remembered per filter so a count is only topped up.

The ledger is append-only and its sequence numbers are given in commit order, so the number of entries
below a sequence number that match a filter never changes (erasure deletes details, never entries). A
search then counts only the entries appended since the filter was last counted: a filter matching 1 in 8
of a million events cost ~10 ms of CPU a page to count in full, and costs what the new entries cost after.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Hashable

DEFAULT_MAX_FILTERS = 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Counted:
    """``matches`` entries with a sequence number below ``below`` match the filter."""

    matches: int
    below: int


NOTHING_COUNTED = Counted(0, 0)


class MatchCounts:
    """The latest count of each recently searched filter (least recently used dropped beyond ``max_filters``).

    Thread-safe: the API searches from worker threads.
    """

    def __init__(self, max_filters: int = DEFAULT_MAX_FILTERS) -> None:
        self._counted: collections.OrderedDict[Hashable, Counted] = collections.OrderedDict()
        self._max_filters = max_filters
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Counted:
        """What is known of ``key``'s filter; ``NOTHING_COUNTED`` (0 matches below 0) when nothing is."""
        with self._lock:
            counted = self._counted.get(key)
            if counted is None:
                return NOTHING_COUNTED
            self._counted.move_to_end(key)
            return counted

    def put(self, key: Hashable, counted: Counted) -> None:
        """Remember ``counted`` unless a count that reaches further is already known."""
        with self._lock:
            known = self._counted.get(key)
            if known is None or known.below < counted.below:
                self._counted[key] = counted
            self._counted.move_to_end(key)
            while len(self._counted) > self._max_filters:
                self._counted.popitem(last=False)
