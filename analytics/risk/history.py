"""An identity's ledger rows as risk reads them (``LedgerRow``), from the rows ``models.reader.ReadSession`` hands
out: the time, the event's category (``analytics.taxonomy``, what risk reads instead of the type), and the access
details (``ip``, ``country``, ``device``) of the event's
details; of qerberos's own rows (layer ``qerberos``: alerts, risk changes, erasures) only whether they erase details.

What is read, and when: the risk service reads, in one read session, the ledger's snapshot (its size and "now";
risk time is ledger time, so on an idle ledger risk does not decay until events arrive) and each identity's
newest rows below that size (``pipelines.risk.history_cache`` keeps them between assessments). Of these rows,
qerberos's own and those dated after "now" are left out of the history. "Never seen for this identity" means
within these events.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING

import msgspec

from models.records import ERASURE_TYPE, OWN_LAYER

if TYPE_CHECKING:
    from analytics.taxonomy import Category, Taxonomy


class _Access(msgspec.Struct):
    """The access details risk reads from an event's details (every other key is ignored)."""

    ip: str | None = None
    country: str | None = None
    device: str | None = None


_access_decoder = msgspec.json.Decoder(_Access)
_NO_ACCESS = _Access()

#: What a history event holds besides its time: ``(category, ip, country, device)``.
EventFields = tuple["Category", str | None, str | None, str | None]


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerRow:
    """One of an identity's ledger rows as risk reads it; ``own``: qerberos's own (no access details read),
    ``erases_details``: an erasure event."""

    occurred_at_ms: int
    own: bool
    erases_details: bool
    fields: EventFields | None


def ledger_row(
    taxonomy: Taxonomy, occurred: int, type_: str, layer: str, verdict: str, details: str | None
) -> LedgerRow:
    """The row of ``models.reader.ActorRow``'s values, classified by ``taxonomy``, its strings interned: the
    history cache holds them for every identity, and a handful of categories (memoised by the taxonomy),
    countries and devices would otherwise be one object per row."""
    if layer == OWN_LAYER:
        return LedgerRow(occurred, True, type_ == ERASURE_TYPE, None)
    intern = sys.intern
    access = _decode_access(details)
    ip, country, device = access.ip, access.country, access.device
    category = taxonomy.classify(type_, layer, verdict, details)
    return LedgerRow(
        occurred, False, False, (category, ip and intern(ip), country and intern(country), device and intern(device))
    )


def _decode_access(details: str | None) -> _Access:
    if not details:
        return _NO_ACCESS
    try:
        return _access_decoder.decode(details)
    except msgspec.DecodeError:  # erased, not an object, or other types under these keys: no access data
        return _NO_ACCESS
