"""What a transparency log serves (C2SP tlog-tiles): ``GET /checkpoint``, ``GET /tile/<L>/<N>[.p/<W>]`` and
``GET /tile/entries/<N>[.p/<W>]``.

The checkpoint is the newest one the log's witnesses cosigned (the newest, without witnesses), with its
cosignatures. The checkpoint and the hash tiles are public, as the health probes are: they reveal the log's size and
hashes, nothing of its events, and with them alone any tlog-tiles client proves inclusion and consistency
and rebuilds the signed root. Serving them signs nothing and computes nothing (one range read), so an
anonymous caller cannot make the log work. Entry bundles hold the canonical records themselves (who did
what to which resource), so they need the read permission of ``GET /audit``; details stay behind their
commitments either way. Tiles and bundles never change once they exist: caches may keep them for good;
the checkpoint changes as the log grows: caches keep it a few seconds.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, MediaType, Request, Response, get
from litestar.params import FromPath

from api.controllers.audit import READ, ledger_of
from models.cosignatures import CosignatureStore
from models.tiles import ENTRIES, TileReader, TileRequest, parse_tile_path
from qerberos.errors import NotFoundError

_CHECKPOINT_CACHE = "public, max-age=2"
_IMMUTABLE = "public, max-age=31536000, immutable"
_OCTETS = "application/octet-stream"


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
        witnessed = bool(request.app.state.service.settings.witnesses)
        note = CosignatureStore(ledger_of(request).engine).published(witnessed=witnessed)
        if note is None:
            raise NotFoundError("the log has signed no checkpoint yet")
        return Response(note, headers={"Cache-Control": _CHECKPOINT_CACHE}, media_type=MediaType.TEXT)

    @get(
        "/tile/{path:path}",
        opt={"public": True},
        sync_to_thread=True,
        summary="A Merkle tree tile: up to 256 hashes end to end (C2SP tlog-tiles; no authentication)",
        operation_id="getTile",
        media_type=_OCTETS,
    )
    def tile(self, request: Request[Any, Any, Any], path: FromPath[str]) -> Response[bytes]:
        tile = parse_tile_path(path)
        if tile.level == ENTRIES:  # only the route below, with its permission, serves entries
            raise NotFoundError("entry bundles are served at /tile/entries/<N>")
        return _immutable(request, tile)

    @get(
        "/tile/entries/{path:path}",
        opt={"permission": READ},
        sync_to_thread=True,
        summary="An entry bundle: up to 256 canonical records, each after its uint16 length (C2SP tlog-tiles)",
        operation_id="getEntryBundle",
        media_type=_OCTETS,
    )
    def entries(self, request: Request[Any, Any, Any], path: FromPath[str]) -> Response[bytes]:
        return _immutable(request, parse_tile_path(f"{ENTRIES}/{path.lstrip('/')}"))


def _immutable(request: Request[Any, Any, Any], tile: TileRequest) -> Response[bytes]:
    body = TileReader(ledger_of(request).engine).read(tile)
    return Response(body, headers={"Cache-Control": _IMMUTABLE}, media_type=_OCTETS)
