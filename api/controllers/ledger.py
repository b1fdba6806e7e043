"""``/ledger``: the signed checkpoint, the verifier key and Merkle proofs, as the CLI prints them.

These need an authenticated caller and no permission beyond that: verifiability is the point. The one
exception is an inclusion proof asked by event id, which needs ``audit:read``: its answer (or its 404)
says whether an event with that id exists and where, which only readers of the audit log may learn. By
sequence number it says nothing about any event that the log's size, public in every checkpoint, does not.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Request, get
from litestar.connection import ASGIConnection
from litestar.params import FromPath, QueryParameter

from api.controllers.audit import READ, ledger_of, parse_event_id
from api.envelope import Envelope, ok
from api.schemas import ConsistencyProof, InclusionProof, LedgerKey

_Size = Annotated[int, QueryParameter(ge=0)]


def _is_seq(reference: str) -> bool:
    """An inclusion proof's reference is a sequence number, else an event id."""
    return reference.isdecimal()


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
        tree_size: Annotated[int | None, QueryParameter(name="treeSize", ge=1)] = None,
    ) -> Envelope[InclusionProof]:
        ledger = ledger_of(request)
        seq = int(reference) if _is_seq(reference) else ledger.get(parse_event_id(reference)).seq
        proof = ledger.inclusion_proof(seq, tree_size)
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
