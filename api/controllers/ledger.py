"""``/ledger``: the signed checkpoint, the verifier key and Merkle proofs, as the CLI prints them.

These need an authenticated caller and no permission beyond that: verifiability is the point.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Request, get
from litestar.params import FromPath, QueryParameter

from api.controllers.audit import ledger_of, parse_event_id
from api.envelope import Envelope, ok
from api.schemas import ConsistencyProof, InclusionProof, LedgerKey

_Size = Annotated[int, QueryParameter(ge=0)]


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
        summary="Inclusion proof of an event (by id or sequence number)",
        operation_id="getInclusionProof",
    )
    def inclusion(
        self,
        request: Request[Any, Any, Any],
        reference: FromPath[str],
        tree_size: Annotated[int | None, QueryParameter(name="treeSize", ge=1)] = None,
    ) -> Envelope[InclusionProof]:
        ledger = ledger_of(request)
        seq = int(reference) if reference.isdecimal() else ledger.get(parse_event_id(reference)).seq
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
