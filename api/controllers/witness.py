"""The witness's HTTP face (C2SP tlog-witness): ``POST /add-checkpoint`` and ``GET /<origin hash>/checkpoint``.

Thin: the body goes to ``models.witness.Witness`` as it came, its answer back as plain text. Refusals
become their status codes in ``api/errors.py`` (``WITNESS_EXCEPTION_HANDLERS``).
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.params import FromPath

from models.witness import Witness


def _witness(request: Request[Any, Any, Any]) -> Witness:
    witness: Witness = request.app.state.witness
    return witness


class WitnessController(Controller):
    tags = ("Witness",)

    @post("/add-checkpoint", summary="Cosign a checkpoint that extends the last one cosigned", status_code=200)
    async def add_checkpoint(self, request: Request[Any, Any, Any]) -> Response[str]:
        body = await request.body()
        line = await anyio.to_thread.run_sync(_witness(request).add_checkpoint, body)
        return Response(line, media_type=MediaType.TEXT)

    @get("/{origin_hash:str}/checkpoint", sync_to_thread=True, summary="The latest checkpoint cosigned for a log")
    def checkpoint(self, request: Request[Any, Any, Any], origin_hash: FromPath[str]) -> Response[str]:
        return Response(_witness(request).latest(origin_hash), media_type=MediaType.TEXT)
