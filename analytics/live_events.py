"""One ledger event as rules and the incremental window features read it (``LiveEvent``, with its category from
``analytics.taxonomy``), from a row of the ledger's tail (``live_event``), and the pattern both the live and
the batch features read ``ip`` and ``country`` out of the details JSON text with (``detail_pattern``)."""

from __future__ import annotations

import dataclasses
import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analytics.taxonomy import Category, Taxonomy

__all__ = ["LiveEvent", "detail_pattern", "live_event"]


def detail_pattern(name: str) -> str:
    """The regular expression of a string value of the details JSON text (cheaper than parsing 10M objects)."""
    return rf'"{name}"\s*:\s*"([^"]*)"'


_IP = re.compile(detail_pattern("ip"))
_COUNTRY = re.compile(detail_pattern("country"))


@dataclasses.dataclass(frozen=True, slots=True)
class LiveEvent:
    """The fields of one ledger event that rules and live features read (``ip``/``country`` from details) and
    its category, which they read instead of the type."""

    seq: int
    squid_id: str
    type: str
    ref: str
    layer: str
    verdict: str
    occurred_at_ms: int
    category: Category
    dao_id: str | None = None
    ip: str | None = None
    country: str | None = None


def live_event(
    taxonomy: Taxonomy,
    seq: int,
    squid_id: str,
    type: str,
    ref: str,
    layer: str,
    verdict: str,
    occurred_at_ms: int,
    dao_id: str | None,
    details: str | None,
) -> LiveEvent:
    """A ledger row (``models.reader.TailRow``) as rules and live features read it, classified by ``taxonomy``."""
    ip = country = None
    if details:
        found = _IP.search(details)
        ip = found.group(1) if found else None
        found = _COUNTRY.search(details)
        country = found.group(1) if found else None
    category = taxonomy.classify(type, layer, verdict, details)
    # Interned: the recent windows and rule windows hold every event of their span, and a driver returns a new
    # string per cell; the same identities, refs and types repeat, so one copy of each is held (7 strings of
    # about 50 bytes an event otherwise, a third of the live state's memory)
    intern = sys.intern
    return LiveEvent(seq, intern(squid_id), intern(type), intern(ref), intern(layer), intern(verdict),
                     int(occurred_at_ms), category, _interned(dao_id), _interned(ip), _interned(country))  # fmt: skip


def _interned(value: str | None) -> str | None:
    return None if value is None else sys.intern(value)
