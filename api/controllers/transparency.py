"""What a transparency log serves to anyone, unauthenticated: ``GET /checkpoint`` (C2SP tlog-tiles).

The newest signed checkpoint the database stores, as plain text, with the cosignatures its witnesses
returned. It reveals the log's size and root hash, nothing of its events; serving it signs nothing, so an
anonymous caller cannot make the log work. It changes as the log grows: caches keep it a few seconds.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, MediaType, Request, Response, get

from api.controllers.audit import ledger_of
from qerberos.errors import NotFoundError

_CHECKPOINT_CACHE = "public, max-age=2"


class TransparencyController(Controller):
    tags = ("Transparency log",)

    @get(
        "/checkpoint",
        opt={"public": True},
        sync_to_thread=True,
        summary="The newest signed checkpoint, with its cosignatures (C2SP tlog-tiles; no authentication)",
        operation_id="getPublicCheckpoint",
        media_type=MediaType.TEXT,
    )
    def checkpoint(self, request: Request[Any, Any, Any]) -> Response[str]:
        note = ledger_of(request).latest_checkpoint()
        if note is None:
            raise NotFoundError("the log has signed no checkpoint yet")
        return Response(note, headers={"Cache-Control": _CHECKPOINT_CACHE}, media_type=MediaType.TEXT)
