"""``/ledger``: the signed checkpoint, the verifier key and Merkle proofs, as the CLI prints them.

These need an authenticated caller and no permission beyond that: verifiability is the point. The one
exception is an inclusion proof asked by event id, which needs ``audit:read``: its answer (or its 404)
says whether an event with that id exists and where, which only readers of the audit log may learn. By
sequence number it says nothing about any event that the log's size, public in every checkpoint, does not.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Request, get
from litestar.connection import ASGIConnection
from litestar.params import FromPath, QueryParameter

from api.controllers.audit import READ, ledger_of
from api.envelope import Envelope, ok
from api.schemas import ConsistencyProof, InclusionProof, LedgerKey
from models.ledger import MAX_SEQ, Ledger, parse_seq
from qerberos.errors import ValidationError

_Size = Annotated[int, QueryParameter(ge=0, le=MAX_SEQ)]


def _is_seq(reference: str) -> bool:
    """An inclusion proof's reference is a sequence number (ASCII digits, ``parse_seq``), else an event id."""
    return parse_seq(reference) is not None


def _permission_of_inclusion(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    return None if _is_seq(connection.path_params["reference"]) else READ


class LedgerController(Controller):
    path = "/ledger"
    tags = ("Ledger",)

    @get(
        "/checkpoint",
        sync_to_thread=True,
        media_type=MediaType.TEXT,
        summary="The latest signed checkpoint (C2SP signed note)",
        operation_id="getCheckpoint",
    )
    def checkpoint(self, request: Request[Any, Any, Any]) -> str:
        return ledger_of(request).checkpoint()

    @get("/key", sync_to_thread=True, summary="The log's signed-note verifier key", operation_id="getLedgerKey")
    def key(self, request: Request[Any, Any, Any]) -> Envelope[LedgerKey]:
        ledger = ledger_of(request)
        return ok(
            LedgerKey(origin=ledger.origin, verifier_key=ledger.verifier_key(), verifier_keys=ledger.verifier_keys())
        )

    @get(
        "/proof/inclusion/{reference:str}",
        sync_to_thread=True,
        opt={"permission": _permission_of_inclusion},
        summary="Inclusion proof of an event (by id: needs audit:read; or by sequence number)",
        operation_id="getInclusionProof",
    )
    def inclusion(
        self,
        request: Request[Any, Any, Any],
        reference: FromPath[str],
        tree_size: Annotated[int | None, QueryParameter(name="treeSize", ge=1, le=MAX_SEQ)] = None,
    ) -> Envelope[InclusionProof]:
        ledger = ledger_of(request)
        proof = ledger.inclusion_proof(_seq_of(ledger, reference), tree_size)
        return ok(msgspec.convert(proof.to_json(), InclusionProof))

    @get(
        "/proof/consistency",
        sync_to_thread=True,
        summary="Consistency proof between two tree sizes",
        operation_id="getConsistencyProof",
    )
    def consistency(self, request: Request[Any, Any, Any], first: _Size, second: _Size) -> Envelope[ConsistencyProof]:
        proof = ledger_of(request).consistency_proof(first, second)
        return ok(msgspec.convert(proof.to_json(), ConsistencyProof))


def _seq_of(ledger: Ledger, reference: str) -> int:
    """The sequence number a path names: itself in ASCII digits, or that of the event whose id it is."""
    seq = parse_seq(reference)
    if seq is not None:
        return seq
    try:
        event_id = uuid.UUID(reference)
    except ValueError as exc:
        raise ValidationError(
            "invalid reference", details={"reference": f"a sequence number (0 to {MAX_SEQ}) or an event id (UUID)"}
        ) from exc
    return ledger.get(event_id).seq
