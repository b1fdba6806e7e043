"""C2SP tlog-tiles as any client reads them, on SQLite and PostgreSQL.

``SpecClient`` below is written from the text of tlog-tiles and RFC 6962 section 2.1 alone, with nothing of
qerberos: it fetches ``/checkpoint`` and tiles over HTTP and rebuilds the checkpoint's root, for tree sizes
that are and are not multiples of 256 (partial tiles at every level, up to level 2).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import SecurityHooks, create_app
from models.ledger import Ledger
from models.tile_proofs import TiledTree
from models.tiles import TileReader
from qerberos import verifier
from qerberos.settings import Settings
from tests.integration.ledger.helpers import event

SIZES = [1, 255, 256, 257, 700, 65536, 66001]


# --- a tlog-tiles client from the specification's text -------------------------------------------------


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()  # RFC 6962 2.1: SHA-256(0x01 || left || right)


def _encode_index(n: int) -> str:
    """ "zero-padded 3-digit path elements. All but the last path element MUST begin with an x"."""
    digits = str(n)
    digits = "0" * (-len(digits) % 3) + digits
    parts = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join(["x" + part for part in parts[:-1]] + [parts[-1]])


class SpecClient:
    def __init__(self, get: Callable[[str], bytes]) -> None:
        self.get = get

    def checkpoint(self) -> tuple[int, bytes]:
        body = self.get("/checkpoint").decode().split("\n\n")[0].split("\n")  # origin, size, root hash
        return int(body[1]), base64.b64decode(body[2])

    def tile_hash(self, level: int, j: int, size: int) -> bytes:
        """Hash j of level ``level``: MTH(D[j * 256**level : (j + 1) * 256**level])."""
        n, i = divmod(j, 256)
        count = size // 256**level  # "floor(s / 256**l)" full hashes at this level
        width = 256 if (n + 1) * 256 <= count else count % 256
        tile = self.get(f"/tile/{level}/{_encode_index(n)}" + ("" if width == 256 else f".p/{width}"))
        assert len(tile) == 32 * width
        return tile[32 * i : 32 * (i + 1)]

    def mth(self, lo: int, hi: int, size: int) -> bytes:
        """RFC 6962 MTH(D[lo:hi]), reading each whole tile-aligned subtree from the tile that holds its hash."""
        n = hi - lo
        for level in range(3, -1, -1):
            if n == 256**level and lo % n == 0:
                return self.tile_hash(level, lo // n, size)
        k = 1 << ((n - 1).bit_length() - 1)  # the largest power of two smaller than n
        return _node(self.mth(lo, lo + k, size), self.mth(lo + k, hi, size))


# --- the log ---------------------------------------------------------------------------------------------


@pytest.fixture
def served(ledger: Ledger, backend_settings: Settings) -> Iterator[tuple[Ledger, TestClient[Any]]]:
    app = create_app(backend_settings, ledger=ledger, security=SecurityHooks())
    with TestClient(app) as client:
        yield ledger, client


def _grow(ledger: Ledger, size: int) -> None:
    for start in range(ledger.size(), size, 5000):
        ledger.append([event(n, details={}) for n in range(start, min(start + 5000, size))])


def test_a_client_written_from_the_spec_rebuilds_each_checkpoint_root_from_tiles(
    served: tuple[Ledger, TestClient[Any]],
) -> None:
    ledger, http = served
    client = SpecClient(lambda path: http.get(path).raise_for_status().content)
    for size in SIZES:
        _grow(ledger, size)
        ledger.checkpoint(force=True)
        checkpoint_size, root = client.checkpoint()
        assert (size, root) == (checkpoint_size, client.mth(0, size, size)), size


def test_entry_bundles_hash_to_the_level_0_tiles_and_everything_is_immutable(
    served: tuple[Ledger, TestClient[Any]],
) -> None:
    ledger, http = served
    _grow(ledger, 300)
    bundle, tile = http.get("/tile/entries/001.p/44"), http.get("/tile/0/001.p/44")
    entries, position = [], 0
    while position < len(bundle.content):
        length = int.from_bytes(bundle.content[position : position + 2], "big")  # "big-endian uint16 length-prefixed"
        entries.append(bundle.content[position + 2 : position + 2 + length])
        position += 2 + length
    assert b"".join(verifier.leaf_hash(entry) for entry in entries) == tile.content
    assert 44 == len(entries)
    for response in (bundle, tile, http.get("/tile/0/000"), http.get("/tile/entries/000")):
        assert ("application/octet-stream", "public, max-age=31536000, immutable") == (
            response.headers["content-type"],
            response.headers["cache-control"],
        )
    missing = [http.get(path).status_code for path in ("/tile/0/001", "/tile/1/000", "/tile/0/002.p/1")]
    malformed = [http.get(path).status_code for path in ("/tile/0/1", "/tile/00/000", "/tile/0/000.p/256")]
    assert ([404, 404, 404], [400, 400, 400]) == (missing, malformed)


def test_proofs_from_tiles_are_the_ledgers_own(ledger: Ledger) -> None:
    reader = TileReader(ledger.engine)
    for size in (1, 256, 257, 700, 1100):
        _grow(ledger, size)
        tree = TiledTree(reader.read, size)
        assert ledger.root(size) == tree.root()
        for first in (1, 255, 256, 300):
            if first < size:
                assert ledger.consistency_proof(first, size).proof == tree.consistency_proof(first)
        assert ledger.inclusion_proof(size - 1, size).proof == tree.inclusion_proof(size - 1)
