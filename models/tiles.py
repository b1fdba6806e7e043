"""C2SP tlog-tiles: the log's Merkle tree as tiles, its entries as bundles, and their paths.

A tile at level ``L`` and index ``N`` is the sequence of up to 256 Merkle Tree Hashes
``MTH(D[(N * 256 + i) * 256**L : (N * 256 + i + 1) * 256**L])``: at level 0 the leaf hashes, above them
the roots of full tiles of the level below. The ledger already stores every perfect subtree as a node
``(level, index)`` (``models/merkle.py``), so tile ``(L, N)`` is the stored nodes of Merkle level ``8 L``
with indexes ``N * 256`` to ``N * 256 + width - 1``: one range read, nothing computed. A tile is full at
256 hashes, partial (``.p/<W>``) below; an entry bundle holds the same leaves' entries (the canonical
records, each hashed into its leaf), each prefixed by its length as a big-endian uint16.

A tile's index ``N`` is written as zero-padded 3-digit path elements, all but the last prefixed with
``x`` (1234067 is ``x001/x234/067``), so that a file system can hold millions of them without a file
and a directory of the same name. The checkpoint history (``models/checkpoint_history.py``) names its
files the same way, by tree size.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence

from sqlalchemy import Engine

from models.database import fetch_rows, reading
from qerberos.errors import NotFoundError, ValidationError

__all__ = [
    "ENTRIES",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileReader",
    "TileRequest",
    "index_path",
    "parse_index_path",
    "parse_tile_path",
    "tile_path",
    "tile_width",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_LEVEL = 63
ENTRIES = "entries"
"""The level name of entry bundles in a tile path (``tile/entries/<N>``)."""
_DIGITS = 3
_MAX_ENTRY_BYTES = 0xFFFF
_LEAVES = "SELECT leaf_hash FROM ledger_entries WHERE seq >= ? AND seq < ? ORDER BY seq"
# ``(level & 7) = 0`` (a multiple of 8) lets the planner use ``ix_merkle_nodes_tile_levels`` (models/tables.py)
_NODES = "SELECT hash FROM merkle_nodes WHERE level = ? AND (level & 7) = 0 AND idx >= ? AND idx < ? ORDER BY idx"
_ENTRIES = "SELECT canonical FROM ledger_entries WHERE seq >= ? AND seq < ? ORDER BY seq"


@dataclasses.dataclass(frozen=True, slots=True)
class TileRequest:
    """A tile (``level`` 0..63) or an entry bundle (``level`` is ``ENTRIES``), its index and its width."""

    level: int | str
    index: int
    width: int = TILE_WIDTH


def index_path(index: int) -> str:
    """``index`` as tlog-tiles path elements: ``x001/x234/067`` for 1234067, ``000`` for 0."""
    if index < 0:
        raise ValidationError(f"a tile index is not negative: got {index}")
    text = str(index)
    text = text.zfill(-(-len(text) // _DIGITS) * _DIGITS)
    groups = [text[start : start + _DIGITS] for start in range(0, len(text), _DIGITS)]
    return "/".join([*(f"x{group}" for group in groups[:-1]), groups[-1]])


def parse_index_path(elements: Sequence[str]) -> int:
    """The index that ``index_path`` writes as ``elements``; ``ValidationError`` for any other spelling."""
    spelled = "/".join(elements)
    digits = "".join(element.removeprefix("x") for element in elements)
    if not elements or not digits.isascii() or not digits.isdigit() or index_path(int(digits)) != spelled:
        raise ValidationError(f"not a tile index: {spelled!r}")
    return int(digits)


def tile_path(request: TileRequest) -> str:
    """``<L>/<N>`` or ``entries/<N>``, with ``.p/<W>`` for a partial tile (no leading ``tile/``)."""
    partial = "" if request.width == TILE_WIDTH else f".p/{request.width}"
    return f"{request.level}/{index_path(request.index)}{partial}"


def parse_tile_path(path: str) -> TileRequest:
    """The tile or bundle a path (``tile_path``'s form) names; ``ValidationError`` unless it is canonical."""
    level_text, _, rest = path.strip("/").partition("/")
    elements = rest.split("/")
    width = TILE_WIDTH
    if len(elements) >= 2 and elements[-2].endswith(".p"):
        width_text = elements[-1]
        if not (width_text.isascii() and width_text.isdigit()) or str(int(width_text)) != width_text:
            raise ValidationError(f"not a tile width: {width_text!r}")
        width = int(width_text)
        if not 1 <= width < TILE_WIDTH:
            raise ValidationError(f"a partial tile is 1 to {TILE_WIDTH - 1} wide: got {width}")
        elements = [*elements[:-2], elements[-2].removesuffix(".p")]
    index = parse_index_path(elements)
    if level_text == ENTRIES:
        return TileRequest(ENTRIES, index, width)
    if not (level_text.isascii() and level_text.isdigit()) or str(int(level_text)) != level_text:
        raise ValidationError(f"not a tile level: {level_text!r}")
    level = int(level_text)
    if level > MAX_LEVEL:
        raise ValidationError(f"a tile level is 0 to {MAX_LEVEL}: got {level}")
    return TileRequest(level, index, width)


def tile_width(level: int, index: int, tree_size: int) -> int:
    """How many hashes tile ``(level, index)`` holds in the tree of ``tree_size`` leaves (0: none yet)."""
    hashes = tree_size >> (TILE_HEIGHT * level)  # full subtrees of 256**level leaves
    return max(0, min(TILE_WIDTH, hashes - index * TILE_WIDTH))


class TileReader:
    """Tiles and entry bundles read from the ledger's tables: each one range read by primary key."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def read(self, request: TileRequest) -> bytes:
        """The tile's hashes end to end, or the bundle's entries; ``NotFoundError`` if the log is too small."""
        first = request.index * TILE_WIDTH
        bounds = (first, first + request.width)
        with reading(self._engine) as connection:
            if request.level == ENTRIES:
                rows = fetch_rows(connection, _ENTRIES, bounds)
            elif request.level == 0:
                rows = fetch_rows(connection, _LEAVES, bounds)
            else:
                rows = fetch_rows(connection, _NODES, (TILE_HEIGHT * int(request.level), *bounds))
        if len(rows) != request.width:
            raise NotFoundError(f"no tile {tile_path(request)} in this log (yet)")
        if request.level == ENTRIES:
            return b"".join(_length_prefixed(str(canonical).encode()) for (canonical,) in rows)
        return b"".join(bytes(node) for (node,) in rows)


def _length_prefixed(entry: bytes) -> bytes:
    if len(entry) > _MAX_ENTRY_BYTES:
        raise ValidationError(f"an entry of {len(entry)} bytes does not fit a tlog-tiles bundle")
    return struct.pack(">H", len(entry)) + entry
