"""An identity's ledger rows as risk reads them (``LedgerRow``), from the rows ``models.reader.ReadSession`` hands
out: the time, the type and verdict, and the access details (``ip``, ``country``, ``device``) of the event's
details; qerberos's own rows (layer ``qerberos``: alerts, risk changes, erasures) keep only their type.

What is read, and when: the risk service reads, in one read session, the ledger's snapshot (its size and "now";
risk time is ledger time, so on an idle ledger risk does not decay until events arrive) and each identity's
newest rows below that size (``pipelines.risk.history_cache`` keeps them between assessments). Of these rows,
qerberos's own and those dated after "now" are left out of the history. "Never seen for this identity" means
within these events.
"""

from __future__ import annotations

import dataclasses
import sys

import msgspec

from models.records import ERASURE_TYPE, OWN_LAYER


class _Access(msgspec.Struct):
    """The access details risk reads from an event's details (every other key is ignored)."""

    ip: str | None = None
    country: str | None = None
    device: str | None = None


_access_decoder = msgspec.json.Decoder(_Access)
_NO_ACCESS = _Access()

#: What a history event holds besides its time: ``(type, verdict, ip, country, device)``.
EventFields = tuple[str, str, str | None, str | None, str | None]


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerRow:
    """One of an identity's ledger rows as risk reads it; ``own``: qerberos's own (no access details read)."""

    occurred_at_ms: int
    own: bool
    fields: EventFields

    @property
    def erases_details(self) -> bool:
        return self.own and self.fields[0] == ERASURE_TYPE


def ledger_row(occurred: int, type_: str, layer: str, verdict: str, details: str | None) -> LedgerRow:
    """The row of ``models.reader.ActorRow``'s values, its strings interned: the history cache holds them for
    every identity, and a handful of types, verdicts, countries and devices would otherwise be one string object
    per row."""
    intern = sys.intern
    if layer == OWN_LAYER:
        return LedgerRow(occurred, True, (intern(type_), intern(verdict), None, None, None))
    access = _decode_access(details)
    ip, country, device = access.ip, access.country, access.device
    return LedgerRow(
        occurred,
        False,
        (intern(type_), intern(verdict), ip and intern(ip), country and intern(country), device and intern(device)),
    )


def _decode_access(details: str | None) -> _Access:
    if not details:
        return _NO_ACCESS
    try:
        return _access_decoder.decode(details)
    except msgspec.DecodeError:  # erased, not an object, or other types under these keys: no access data
        return _NO_ACCESS
