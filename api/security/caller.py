"""Who is calling: the value the authentication middleware puts on ``request.user`` and ``request.auth``."""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller (``request.user``).

    ``source`` is what the ledger records as the submitter: ``squid:<squidId>`` (remote mode) or
    ``local:<identity name>`` (local mode). It is also the rate limiter's key.
    """

    squid_id: str
    sub_id: str | None
    dao_id: str | None
    source: str


@dataclasses.dataclass(frozen=True, slots=True)
class Credential:
    """How the caller proved who it is (``request.auth``). Never holds the token or the signature.

    ``permissions`` is the local identity's grant set in local mode, ``None`` in remote mode (Qonsent decides).
    """

    scheme: Literal["bearer", "signature"]
    permissions: frozenset[str] | None = None
