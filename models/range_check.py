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
import operator
from collections.abc import Iterable, Sequence
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
_sha256 = hashlib.sha256
_digest = operator.methodcaller("digest")
_hexdigest = operator.methodcaller("hexdigest")


def range_intact(reader: ColumnReader, start: int, end: int, checkpoints: Sequence[Checkpoint]) -> bool:
    """True when entries ``[start, end)`` pass every check; ``checkpoints`` are those with a size in
    ``(start, end]``."""
    try:
        return _range_intact(reader, start, end, checkpoints)
    except Exception:  # whatever surprised the fast path, the exact check reports (or raises) exactly
        return False


def _range_intact(reader: ColumnReader, start: int, end: int, checkpoints: Sequence[Checkpoint]) -> bool:
    entries = reader.entries(start, end)
    entries.validate(full=True)  # text is valid UTF-8, as the row-by-row driver would insist
    if not _in_sequence(entries["seq"], start, end) or not _canonical_matches(entries):
        return False
    leaves = _sha256_all(map(_LEAF_PREFIX.__add__, pc.cast(entries["canonical"], pa.binary()).to_pylist()))
    if leaves != entries["leaf_hash"].to_pylist():
        return False
    chain_before = GENESIS_CHAIN_HASH if start == 0 else reader.chain_hash(start - 1)
    chain_hashes = entries["chain_hash"].to_pylist()
    if _sha256_all(map(bytes.__add__, [chain_before, *chain_hashes[:-1]], leaves)) != chain_hashes:
        return False
    if not _details_match(reader.details(start, end), entries["details_commitment"], start):
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
    digests = pa.array(list(map(_hexdigest, map(_sha256, salted.to_pylist()))), pa.string())
    expected = pc.take(commitments, pc.subtract(details["seq"], start))
    return bool(pc.all(pc.equal(pc.binary_join_element_wise(DETAILS_COMMITMENT_PREFIX, digests, ""), expected)).as_py())


def _tree_matches(
    reader: ColumnReader,
    start: int,
    leaves: list[bytes],
    frontier: dict[merkle.Key, bytes],
    checkpoints: Sequence[Checkpoint],
) -> bool:
    """Every Merkle node the leaves complete equals the stored one, none is missing, and each
    checkpoint's root is the root of the tree the leaves make."""
    levels = _complete_levels(leaves)
    climbed = _climb(start, levels, frontier)
    expected = [(level, start >> level, nodes) for level, nodes in enumerate(levels) if level and nodes]
    expected += [(level, index, [node]) for (level, index), node in climbed.items()]
    if expected:
        stored = reader.nodes([(level, low, low + len(nodes) - 1) for level, low, nodes in expected])
        levels_wanted = np.concatenate([np.full(len(nodes), level) for level, _, nodes in expected])
        indexes_wanted = np.concatenate([np.arange(low, low + len(nodes)) for _, low, nodes in expected])
        if not (
            np.array_equal(stored["level"].to_numpy(), levels_wanted)
            and np.array_equal(stored["idx"].to_numpy(), indexes_wanted)
            and stored["hash"].to_pylist() == [node for _, _, nodes in expected for node in nodes]
        ):
            return False
    known = {**frontier, **climbed}
    for size, root in checkpoints:
        nodes = {key: _node(key, start, levels, known) for key in merkle.frontier_keys(size)}
        if merkle.root_from_frontier(size, nodes) != root:
            return False
    return True


def _complete_levels(leaves: list[bytes]) -> list[list[bytes]]:
    """The leaves, then every complete node above them, level by level (the leaves start aligned)."""
    levels = [leaves]
    while len(levels[-1]) >= 2:
        below = levels[-1]
        pairs = map(bytes.__add__, below[0::2], below[1::2])
        levels.append(_sha256_all(map(_NODE_PREFIX.__add__, pairs)))
    return levels


def _climb(start: int, levels: list[list[bytes]], frontier: dict[merkle.Key, bytes]) -> dict[merkle.Key, bytes]:
    """The nodes above the range's own top node that it completes, with the frontier's left siblings."""
    level, index, node = len(levels) - 1, start >> (len(levels) - 1), levels[-1][0]
    climbed = {}
    while index & 1:
        node = _sha256(_NODE_PREFIX + frontier[(level, index - 1)] + node).digest()
        level, index = level + 1, index >> 1
        climbed[(level, index)] = node
    return climbed


def _node(key: merkle.Key, start: int, levels: list[list[bytes]], known: dict[merkle.Key, bytes]) -> bytes:
    level, index = key
    offset = index - (start >> level)
    if level < len(levels) and 0 <= offset < len(levels[level]):
        return levels[level][offset]
    return known[key]


def _sha256_all(messages: Iterable[bytes]) -> list[bytes]:
    return list(map(_digest, map(_sha256, messages)))
