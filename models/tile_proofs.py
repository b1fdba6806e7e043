"""Roots and proofs computed from C2SP tlog-tiles alone, as any tiles client computes them.

Every hash an RFC 9162 proof or root needs is the root of a perfect subtree, node ``(h, i)`` of
``models/merkle.py``. Such a node lies inside one tile: with ``L = h // 8`` and ``r = h % 8`` it is the
Merkle Tree Hash of the ``2**r`` hashes of tile level ``L`` that start at ``i * 2**r``, folded pairwise
``r`` times. So ``TiledTree`` fetches the few tiles a question needs (each once, through the function it
is given: HTTP for the monitor, the ledger's tables for the log's own witness client) and hands the nodes
to the same proof code the ledger uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from models import merkle
from models.tiles import TILE_HEIGHT, TILE_WIDTH, TileRequest, tile_path, tile_width
from qerberos.errors import IntegrityError
from qerberos.verifier import HASH_SIZE, node_hash

__all__ = ["TileFetch", "TiledTree"]

TileFetch = Callable[[TileRequest], bytes]
"""The bytes of a tile (or an entry bundle), from wherever the client reads them."""


class TiledTree:
    """The Merkle tree of ``size`` leaves as its tiles describe it."""

    def __init__(self, fetch: TileFetch, size: int) -> None:
        self.size = size
        self._fetch = fetch
        self._tiles: dict[tuple[int, int], bytes] = {}

    def root(self) -> bytes:
        return merkle.root(self.size, self.nodes(merkle.root_keys(self.size)))

    def consistency_proof(self, first: int) -> list[bytes]:
        """RFC 9162 PROOF(first, D[size]): empty for equal sizes and for ``first == 0``."""
        if first in (0, self.size):
            return []
        return merkle.consistency_proof(first, self.size, self.nodes(merkle.consistency_proof_keys(first, self.size)))

    def inclusion_proof(self, index: int) -> list[bytes]:
        return merkle.inclusion_proof(index, self.size, self.nodes(merkle.inclusion_proof_keys(index, self.size)))

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes ``[start, end)`` from the level-0 tiles."""
        found: list[bytes] = []
        for tile_index in range(start // TILE_WIDTH, -(-end // TILE_WIDTH)):
            tile = self._tile(0, tile_index)
            first = tile_index * TILE_WIDTH
            low, high = max(start, first) - first, min(end, first + TILE_WIDTH) - first
            found.extend(tile[offset * HASH_SIZE : (offset + 1) * HASH_SIZE] for offset in range(low, high))
        return found

    def nodes(self, keys: Iterable[merkle.Key]) -> dict[merkle.Key, bytes]:
        return {key: self.node(*key) for key in keys}

    def node(self, level: int, index: int) -> bytes:
        """The root of the perfect subtree over leaves ``[index * 2**level, (index + 1) * 2**level)``."""
        tile_level, height = divmod(level, TILE_HEIGHT)
        first, count = index << height, 1 << height
        tile_index, offset = divmod(first, TILE_WIDTH)
        tile = self._tile(tile_level, tile_index)
        if (offset + count) * HASH_SIZE > len(tile):
            raise IntegrityError(f"node ({level}, {index}) lies beyond the tree of {self.size} leaves")
        hashes = [tile[(offset + n) * HASH_SIZE : (offset + n + 1) * HASH_SIZE] for n in range(count)]
        while len(hashes) > 1:
            hashes = [node_hash(hashes[n], hashes[n + 1]) for n in range(0, len(hashes), 2)]
        return hashes[0]

    def _tile(self, level: int, index: int) -> bytes:
        key = (level, index)
        if key not in self._tiles:
            request = TileRequest(level, index, tile_width(level, index, self.size))
            if request.width == 0:
                raise IntegrityError(f"tile {level}/{index} lies beyond the tree of {self.size} leaves")
            tile = self._fetch(request)
            if len(tile) != request.width * HASH_SIZE:
                raise IntegrityError(f"tile {tile_path(request)} is {len(tile)} bytes, not {request.width * HASH_SIZE}")
            self._tiles[key] = tile
        return self._tiles[key]
