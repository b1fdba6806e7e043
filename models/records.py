"""The ledger's value objects: what goes in (``NewEvent``) and what is stored (``LedgerRecord``).

What the ledger builds per row (``LedgerRecord``, ``AppendResult``, ``Actor``) are frozen msgspec Structs:
every append and every search page makes one per event, and a Struct is built in C at about a third of
the CPU of a frozen dataclass (whose ``__init__`` sets each field through ``object.__setattr__``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

import msgspec

Verdict = Literal["ALLOW", "DENY", "WARN"]
VERDICTS: tuple[Verdict, ...] = ("ALLOW", "DENY", "WARN")
ERASURE_TYPE = "gdpr.erasure"
"""The type of the event ``Ledger.erase`` appends; its actor is the erased identity, its layer ``qerberos``."""
OWN_LAYER = "qerberos"
"""The layer of the events qerberos appends itself (erasures, alerts, risk changes, reports): never a caller's."""
ERASURE_REF_PREFIX = "identity:"
"""An erasure event's ``ref`` is this prefix and the erased identity: it covers that identity's earlier entries."""


class Actor(msgspec.Struct, frozen=True):
    """A sQuid identity, optionally narrowed to a sub-identity and a DAO."""

    squid_id: str
    sub_id: str | None = None
    dao_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class NewEvent:
    """An audit event as submitted, before the ledger gives it a place.

    ``id`` makes a submission idempotent; ``occurred_at`` defaults to the time of receipt; ``source``
    names who handed the event to qerberos (``squid:<id>``, ``local:<name>``, ``cli``).
    """

    type: str
    ref: str
    actor: Actor
    layer: str
    verdict: Verdict
    source: str
    details: Mapping[str, Any] | None = None
    cid: str | None = None
    id: uuid.UUID | None = None
    occurred_at: dt.datetime | None = None


class LedgerRecord(msgspec.Struct, frozen=True):
    """An event as the ledger stores it. ``details`` is None once erased (the commitment stays)."""

    seq: int
    id: uuid.UUID
    type: str
    ref: str
    actor: Actor
    layer: str
    verdict: Verdict
    details: Mapping[str, Any] | None
    details_commitment: str
    cid: str | None
    occurred_at: dt.datetime
    received_at: dt.datetime
    source: str
    leaf_hash: bytes
    chain_hash: bytes


class AppendResult(msgspec.Struct, frozen=True):
    """One appended event; ``created`` is False when an identical earlier submission was found."""

    record: LedgerRecord
    created: bool


class LedgerAppender(Protocol):
    """What the services that record their own events need of ``models.ledger.Ledger``."""

    def append(self, events: Sequence[NewEvent]) -> list[AppendResult]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class SearchQuery:
    """Filters of ``GET /audit``; ``cursor`` (opaque, from a previous page) replaces ``offset``."""

    type: str | None = None
    actor: str | None = None
    layer: str | None = None
    verdict: Verdict | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    limit: int = 100
    offset: int = 0
    cursor: str | None = None


class SearchPage(msgspec.Struct, frozen=True):
    records: Sequence[LedgerRecord]
    total_count: int
    has_more: bool
    next_cursor: str | None
