"""The RFC 9162 Merkle tree as the ledger stores it: pure functions, no database.

The ledger stores the hash of every *perfect* subtree as a node keyed ``(level, index)``: node
``(l, i)`` is MTH of the leaves ``[i * 2**l, (i + 1) * 2**l)``. Level 0 are the leaf hashes themselves
(the ledger keeps them in ``ledger_entries.leaf_hash``, ``index == seq``); levels >= 1 are written when
they complete, so nothing is ever rewritten.

A tree of any size is covered by the perfect subtrees of the binary decomposition of its size (its
"frontier", left to right, largest first); its root is those hashes folded right to left. Every
hash an RFC 9162 proof needs is either a stored node or such a fold over a suffix of the frontier, so
the ``*_keys`` functions name O(log n) nodes that the ledger reads in one batched query, and the
assembling functions turn those rows into the proof.

Hashing is the verifier's (``qerberos.verifier``), so the tree and the auditor cannot disagree on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

from qerberos.errors import LedgerError, ValidationError
from qerberos.verifier import EMPTY_ROOT, HASH_SIZE, node_hash

__all__ = [
    "Key",
    "Node",
    "NodeGetter",
    "append_batch",
    "completed_nodes",
    "consistency_proof",
    "consistency_proof_keys",
    "frontier_keys",
    "inclusion_proof",
    "inclusion_proof_keys",
    "root",
    "root_from_frontier",
    "root_keys",
]

Key = tuple[int, int]
"""``(level, index)`` of a perfect subtree."""
Node = tuple[int, int, bytes]
"""``(level, index, hash)`` as the ledger stores it."""
NodeGetter = Callable[[int, int], bytes]

_Range = tuple[int, int]  # leaves [lo, hi)


# --- appending ----------------------------------------------------------------------------------------


def completed_nodes(leaf_index: int, leaf_hash: bytes, get: NodeGetter) -> list[Node]:
    """The nodes (level >= 1) that appending leaf ``leaf_index`` completes, lowest level first.

    ``get(level, index)`` reads a node stored earlier (level 0: an earlier leaf hash).
    """
    _check_index("leaf index", leaf_index)
    _check_hash(leaf_hash)
    out: list[Node] = []
    h, index, level = leaf_hash, leaf_index, 0
    while index & 1:
        h = node_hash(get(level, index - 1), h)
        index >>= 1
        level += 1
        out.append((level, index, h))
    return out


def append_batch(
    start_index: int, leaf_hashes: Iterable[bytes], frontier: Mapping[Key, bytes]
) -> tuple[list[Node], dict[Key, bytes]]:
    """Append leaves in memory to a tree of ``start_index`` leaves whose frontier is ``frontier``.

    Returns every node to store (levels >= 1, in completion order) and the frontier of the new size.
    ``frontier`` must hold exactly ``frontier_keys(start_index)``.
    """
    keys = frontier_keys(start_index)
    if len(frontier) != len(keys):
        raise LedgerError(
            "frontier does not match the tree size",
            details={"size": start_index, "expected": keys, "got": sorted(frontier)},
        )
    try:
        stack = [frontier[k] for k in keys]  # the perfect-subtree roots, largest first
    except KeyError as exc:
        raise LedgerError(f"frontier lacks node {exc.args[0]}", details={"size": start_index}) from exc

    sha256 = hashlib.sha256
    pop, push = stack.pop, stack.append
    out: list[Node] = []
    emit = out.append
    n = start_index
    for h in leaf_hashes:
        if len(h) != HASH_SIZE:
            raise LedgerError(f"leaf hash {n} is not {HASH_SIZE} bytes")
        index, level = n, 0
        while index & 1:  # one merge per trailing 1-bit of the leaf's index
            h = sha256(b"\x01" + pop() + h).digest()
            index >>= 1
            level += 1
            emit((level, index, h))
        push(h)
        n += 1
    return out, dict(zip(frontier_keys(n), stack, strict=True))


# --- roots --------------------------------------------------------------------------------------------


def frontier_keys(size: int) -> list[Key]:
    """The perfect subtrees covering leaves ``[0, size)``, left to right (largest first)."""
    _check_index("tree size", size)
    return _range_keys(0, size)


def root_keys(size: int) -> list[Key]:
    """The nodes ``root(size, ...)`` reads: the frontier of ``size``."""
    return frontier_keys(size)


def root_from_frontier(size: int, frontier: Mapping[Key, bytes]) -> bytes:
    """MTH of the tree of ``size`` leaves from its frontier (the empty tree: SHA-256 of "")."""
    return _range_hash(0, size, frontier)


def root(size: int, nodes: Mapping[Key, bytes]) -> bytes:
    """MTH of the tree of ``size`` leaves from stored nodes holding at least ``root_keys(size)``."""
    _check_index("tree size", size)
    return _range_hash(0, size, nodes)


# --- proofs -------------------------------------------------------------------------------------------


def inclusion_proof_keys(index: int, size: int) -> list[Key]:
    """The nodes ``inclusion_proof(index, size, ...)`` reads (O(log size), no duplicates)."""
    return _keys_of(_inclusion_ranges(index, size))


def inclusion_proof(index: int, size: int, nodes: Mapping[Key, bytes]) -> list[bytes]:
    """RFC 9162 PATH(index, D[size]) (section 2.1.3.1), leaf to root."""
    return [_range_hash(lo, hi, nodes) for lo, hi in _inclusion_ranges(index, size)]


def consistency_proof_keys(first: int, second: int) -> list[Key]:
    """The nodes ``consistency_proof(first, second, ...)`` reads (O(log second), no duplicates)."""
    return _keys_of(_consistency_ranges(first, second))


def consistency_proof(first: int, second: int, nodes: Mapping[Key, bytes]) -> list[bytes]:
    """RFC 9162 PROOF(first, D[second]) = SUBPROOF(first, D[second], true) (section 2.1.4.1).

    Defined for ``0 < first <= second`` (equal sizes: the empty proof).
    """
    return [_range_hash(lo, hi, nodes) for lo, hi in _consistency_ranges(first, second)]


def _inclusion_ranges(index: int, size: int) -> list[_Range]:
    """The leaf ranges whose hashes make PATH(index, D[size]), leaf to root.

    PATH(m, D[n]) for n > 1 and k the largest power of 2 below n is PATH(m, D[0:k]) : MTH(D[k:n]) when
    m < k, else PATH(m - k, D[k:n]) : MTH(D[0:k]); unrolled from the root down, then reversed.
    """
    _check_index("leaf index", index)
    _check_index("tree size", size)
    if index >= size:
        raise ValidationError(f"leaf index {index} is not below tree size {size}")
    out: list[_Range] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    out.reverse()
    return out


def _consistency_ranges(first: int, second: int) -> list[_Range]:
    """The leaf ranges whose hashes make SUBPROOF(first, D[second], true), in proof order.

    SUBPROOF(m, D[n], b) is [] if m == n and b, [MTH(D[n])] if m == n and not b; otherwise, with k the
    largest power of 2 below n, SUBPROOF(m, D[0:k], b) : MTH(D[k:n]) when m <= k, else
    SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]); unrolled from the root down, then reversed.
    """
    _check_index("first size", first)
    _check_index("second size", second)
    if not 0 < first <= second:
        raise ValidationError(f"no consistency proof from size {first} to size {second}")
    out: list[_Range] = []
    lo, hi, m, whole = 0, second, first, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            m -= k
            lo += k
            whole = False
    if not whole:
        out.append((lo, hi))
    out.reverse()
    return out


# --- helpers ------------------------------------------------------------------------------------------


def _split(n: int) -> int:
    """The largest power of 2 strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_keys(lo: int, hi: int) -> list[Key]:
    """The maximal aligned perfect subtrees covering leaves ``[lo, hi)``, left to right.

    The ranges the proofs use are a perfect subtree or a suffix ``[lo, size)`` of a frontier, for which
    this is exactly the split MTH makes.
    """
    keys: list[Key] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1  # the largest that fits ...
        if lo:
            level = min(level, (lo & -lo).bit_length() - 1)  # ... and is aligned at lo
        keys.append((level, lo >> level))
        lo += 1 << level
    return keys


def _range_hash(lo: int, hi: int, nodes: Mapping[Key, bytes]) -> bytes:
    """MTH of leaves ``[lo, hi)`` from stored nodes: its perfect subtrees folded right to left."""
    keys = _range_keys(lo, hi)
    if not keys:
        return EMPTY_ROOT
    try:
        hashes = [nodes[k] for k in keys]
    except KeyError as exc:
        raise LedgerError(f"Merkle node {exc.args[0]} is missing", details={"range": (lo, hi)}) from exc
    h = hashes.pop()
    while hashes:
        h = node_hash(hashes.pop(), h)
    return h


def _keys_of(ranges: Sequence[_Range]) -> list[Key]:
    return list(dict.fromkeys(k for lo, hi in ranges for k in _range_keys(lo, hi)))


def _check_index(name: str, value: int) -> None:
    if type(value) is not int or value < 0:
        raise ValidationError(f"{name} must be a non-negative integer: got {value!r}")


def _check_hash(value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise LedgerError(f"a leaf hash is {HASH_SIZE} bytes, not {len(value)}")
