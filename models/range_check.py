"""The verifier's fast path: every check of one aligned range of the ledger, column-wise.

``range_intact`` answers one question about entries ``[start, end)``, where ``start`` is a multiple of
a power of two at least ``end - start``: do they pass every check ``verify_ledger`` makes, given the
stored chain hash before ``start`` and the stored Merkle frontier at ``start``? Those two stored values
are what the sequential check would have recomputed whenever the entries before ``start`` verify, so
ranges can be checked in any order, in any process.

It says True only when it is sure. False (a failed check, a value of an unexpected type, any error)
sends the range to the exact, row-by-row check in ``models/verification.py``, which names the first bad
sequence number and the problem: a False costs time, never a verdict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from models import merkle
from models.canonical import DETAILS_COMMITMENT_PREFIX, canonical_record
from models.canonical_columns import plain_mask, template_records
from models.ledger import GENESIS_CHAIN_HASH
from models.ledger_columns import ColumnReader

Checkpoint = tuple[int, bytes]
"""``(size, root)`` of a checkpoint whose signature was verified."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_HASH_SIZE = 32
_COMMITMENT_PREFIX = DETAILS_COMMITMENT_PREFIX.encode()
_COMMITMENT_SIZE = len(_COMMITMENT_PREFIX) + 2 * _HASH_SIZE  # "sha256:" and the digest in hexadecimal
_sha256 = hashlib.sha256


def range_intact(
    reader: ColumnReader, start: int, end: int, checkpoints: Sequence[Checkpoint], erasures: Mapping[str, int]
) -> bool:
    """True when entries ``[start, end)`` pass every check; ``checkpoints`` are those with a size in
    ``(start, end]``, ``erasures`` the sequence number of each erased identity's latest erasure event."""
    try:
        return _range_intact(reader, start, end, checkpoints, erasures)
    except Exception:  # whatever surprised the fast path, the exact check reports (or raises) exactly
        return False


def _range_intact(
    reader: ColumnReader, start: int, end: int, checkpoints: Sequence[Checkpoint], erasures: Mapping[str, int]
) -> bool:
    entries = reader.entries(start, end)
    entries.validate(full=True)  # text is valid UTF-8, as the row-by-row driver would insist
    if not _in_sequence(entries["seq"], start, end) or not _canonical_matches(entries):
        return False
    records = pc.cast(entries["canonical"], pa.binary()).to_pylist()
    leaves = b"".join([_sha256(_LEAF_PREFIX + record).digest() for record in records])
    if leaves != _end_to_end(entries["leaf_hash"], _HASH_SIZE):
        return False
    chain_hashes = _end_to_end(entries["chain_hash"], _HASH_SIZE)
    chain_before = GENESIS_CHAIN_HASH if start == 0 else reader.chain_hash(start - 1)
    if chain_hashes is None or chain_before is None:
        return False
    if _sha256_rows(np.hstack([_rows(chain_before + chain_hashes[:-_HASH_SIZE]), _rows(leaves)])) != chain_hashes:
        return False
    details = reader.details(start, end)
    if not _details_match(details, entries["details_commitment"], start):
        return False
    if not _missing_details_erased(details["seq"], entries["actor_squid_id"], start, erasures):
        return False
    frontier = reader.node_hashes(merkle.frontier_keys(start))
    return _tree_matches(reader, start, leaves, frontier, checkpoints)


def _in_sequence(seqs: pa.ChunkedArray, start: int, end: int) -> bool:
    return bool(len(seqs) == end - start and np.array_equal(seqs.to_numpy(), np.arange(start, end)))


def _canonical_matches(entries: pa.Table) -> bool:
    """The canonical encoding re-derived from the columns equals the stored one, row for row."""
    stored = entries["canonical"]
    plain = plain_mask(entries)
    if pc.all(plain).as_py():
        return bool(pc.all(pc.fill_null(pc.equal(template_records(entries), stored), False)).as_py())
    template_holds = pc.fill_null(pc.or_(pc.invert(plain), pc.equal(template_records(entries), stored)), False)
    if not pc.all(template_holds).as_py():
        return False
    others = pc.indices_nonzero(pc.invert(plain)).to_pylist()
    return all(_encoded(row) == row["canonical"].encode() for row in entries.take(others).to_pylist())


def _encoded(row: dict[str, Any]) -> bytes:
    """``canonical_record`` of one row as the columnar reader returns it (a row that is not plain)."""
    return canonical_record(
        seq=row["seq"], event_id=row["id"], type=row["type"], ref=row["ref"], squid_id=row["actor_squid_id"],
        sub_id=row["actor_sub_id"], dao_id=row["actor_dao_id"], layer=row["layer"], verdict=row["verdict"],
        details_commitment=row["details_commitment"], cid=row["cid"], occurred_at_ms=row["occurred_at_ms"],
        received_at_ms=row["received_at_ms"], source=row["source"],
    )  # fmt: skip


def _details_match(details: pa.Table, commitments: pa.ChunkedArray, start: int) -> bool:
    """Each stored (unerased) details row hashes, with its salt, to the commitment its entry carries."""
    if details.num_rows == 0:
        return True
    salted = pc.binary_join_element_wise(details["salt"], pc.cast(details["details"], pa.binary()), b"")
    digests = b"".join([_sha256(message).digest() for message in salted.to_pylist()])
    hex_digests = _rows(digests.hex().encode(), 2 * _HASH_SIZE)
    prefixes = np.tile(np.frombuffer(_COMMITMENT_PREFIX, np.uint8), (len(hex_digests), 1))
    expected = pc.take(commitments, pc.subtract(details["seq"], start))
    return np.hstack([prefixes, hex_digests]).tobytes() == _end_to_end(expected, _COMMITMENT_SIZE)


def _missing_details_erased(
    present: pa.ChunkedArray, actors: pa.ChunkedArray, start: int, erasures: Mapping[str, int]
) -> bool:
    """Each entry without its details row has an erasure event of its identity after it."""
    if len(present) == len(actors):
        return True
    missing = np.setdiff1d(np.arange(start, start + len(actors)), present.to_numpy(), assume_unique=True)
    owners = actors.take(pa.array(missing - start)).to_pylist()
    return all(erasures.get(owner, -1) > seq for seq, owner in zip(missing.tolist(), owners, strict=True))


def _tree_matches(
    reader: ColumnReader,
    start: int,
    leaves: bytes,
    frontier: dict[merkle.Key, bytes],
    checkpoints: Sequence[Checkpoint],
) -> bool:
    """Every Merkle node the leaves complete equals the stored one, none is missing, and each
    checkpoint's root is the root of the tree the leaves make."""
    levels = _complete_levels(leaves)
    climbed = _climb(start, levels, frontier)
    expected = [(level, start >> level, nodes) for level, nodes in enumerate(levels) if level and nodes]
    expected += [(level, index, node) for (level, index), node in climbed.items()]
    if expected and not _stored_nodes_equal(reader, expected):
        return False
    known = {**frontier, **climbed}
    return all(
        merkle.root_from_frontier(size, {key: _node(key, start, levels, known) for key in merkle.frontier_keys(size)})
        == root
        for size, root in checkpoints
    )


def _stored_nodes_equal(reader: ColumnReader, expected: list[tuple[int, int, bytes]]) -> bool:
    """The stored nodes of each (level, first index, hashes end to end) are exactly those hashes, none missing."""
    spans = [(level, low, low + len(nodes) // _HASH_SIZE - 1) for level, low, nodes in expected]
    stored = reader.nodes(spans)
    levels_wanted = np.concatenate([np.full(high - low + 1, level) for level, low, high in spans])
    indexes_wanted = np.concatenate([np.arange(low, high + 1) for _, low, high in spans])
    return (
        np.array_equal(stored["level"].to_numpy(), levels_wanted)
        and np.array_equal(stored["idx"].to_numpy(), indexes_wanted)
        and _end_to_end(stored["hash"], _HASH_SIZE) == b"".join(nodes for _, _, nodes in expected)
    )


def _complete_levels(leaves: bytes) -> list[bytes]:
    """The leaves, then every complete node above them, level by level (the leaves start aligned), each
    level's hashes end to end."""
    levels = [leaves]
    while len(levels[-1]) >= 2 * _HASH_SIZE:
        below = levels[-1]
        pairs = _rows(below[: len(below) - len(below) % (2 * _HASH_SIZE)], 2 * _HASH_SIZE)
        prefixes = np.full((len(pairs), 1), _NODE_PREFIX[0], np.uint8)
        levels.append(_sha256_rows(np.hstack([prefixes, pairs])))
    return levels


def _climb(start: int, levels: list[bytes], frontier: dict[merkle.Key, bytes]) -> dict[merkle.Key, bytes]:
    """The nodes above the range's own top node that it completes, with the frontier's left siblings."""
    level, index, node = len(levels) - 1, start >> (len(levels) - 1), levels[-1][:_HASH_SIZE]
    climbed = {}
    while index & 1:
        node = _sha256(_NODE_PREFIX + frontier[(level, index - 1)] + node).digest()
        level, index = level + 1, index >> 1
        climbed[(level, index)] = node
    return climbed


def _node(key: merkle.Key, start: int, levels: list[bytes], known: dict[merkle.Key, bytes]) -> bytes:
    level, index = key
    offset = index - (start >> level)
    if level < len(levels) and 0 <= offset < len(levels[level]) // _HASH_SIZE:
        return levels[level][offset * _HASH_SIZE : (offset + 1) * _HASH_SIZE]
    return known[key]


def _end_to_end(column: pa.ChunkedArray, width: int) -> bytes | None:
    """The values of a text or binary column end to end; None unless every one is ``width`` bytes long."""
    if column.null_count or not pc.all(pc.equal(pc.binary_length(column), width)).as_py():
        return None
    if len(column) == 0:
        return b""
    values = pc.cast(column, pa.binary()).combine_chunks()
    first = int(np.frombuffer(values.buffers()[1], np.int32, 1, values.offset * 4)[0])
    return bytes(values.buffers()[2][first : first + len(values) * width])


def _rows(joined: bytes, width: int = _HASH_SIZE) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Values of ``width`` bytes, end to end, as the rows of a byte matrix."""
    return np.frombuffer(joined, np.uint8).reshape(-1, width)


def _sha256_rows(messages: np.ndarray[Any, np.dtype[np.uint8]]) -> bytes:
    """The SHA-256 digests of a byte matrix's rows, end to end."""
    rows = messages.view(f"V{messages.shape[1]}").ravel().tolist()  # each row as one bytes object
    return b"".join([_sha256(row).digest() for row in rows])
