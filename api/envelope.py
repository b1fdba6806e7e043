"""The success envelope of every JSON answer: ``{status: "ok", code, message, data, timestamp}``.

Errors have their own envelope, built only in :mod:`api.errors`.
"""

from __future__ import annotations

import datetime as dt
from typing import Generic, Literal, TypeVar

import msgspec

from qerberos.instants import iso_instant

T = TypeVar("T")


def iso_timestamp(moment: dt.datetime | None = None) -> str:
    """``moment`` (default now) in the contract's spelling (``qerberos.instants.iso_instant``)."""
    return iso_instant(dt.datetime.now(dt.UTC) if moment is None else moment)


class Envelope(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """A successful answer; ``data`` is the route's payload."""

    status: Literal["ok"] = "ok"
    code: str = "OK"
    message: str = "success"
    data: T
    timestamp: str = msgspec.field(default_factory=iso_timestamp)


def ok(data: T, *, code: str = "OK", message: str = "success") -> Envelope[T]:
    return Envelope(data=data, code=code, message=message)
