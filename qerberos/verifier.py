"""The stand-alone verifier an auditor runs against a qerberos log.

It imports nothing from qerberos: only the standard library (and, for signed notes, ``cryptography``),
so it can be read and checked in one sitting. The Merkle tree is exactly RFC 9162 section 2.1:

- ``leaf_hash(d) = SHA-256(0x00 || d)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``;
- the root of the empty tree is ``SHA-256("")``;
- inclusion proofs are checked with the algorithm of RFC 9162 section 2.1.3.2, consistency proofs with the
  one of section 2.1.4.2.

Every check fails closed: any input that is not exactly what it should be (a hash that is not 32 bytes, an
index outside the tree, a proof element too many or too few, a value of the wrong type) raises
``VerificationError`` with the reason, never another exception and never a silent success.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "VerificationError",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_MAX_SIZE = 2**64 - 1  # tree sizes and indices are uint64 in RFC 9162


class VerificationError(Exception):
    """The thing checked does not verify; the message (also ``reason``) says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- hashing (RFC 9162 section 2.1.1) ---------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """The hash of a leaf: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over the given leaf hashes, in linear time and constant stack depth.

    ``stack`` holds the roots of the perfect subtrees covering the leaves seen so far, largest first
    (the binary decomposition of the count). Appending leaf ``i`` merges one subtree per trailing 1-bit
    of ``i``. At the end the subtrees are folded right to left, which is exactly MTH's split at the
    largest power of two smaller than n.
    """
    sha256 = hashlib.sha256
    stack: list[bytes] = []
    for i, h in enumerate(hashes):
        _check_hash(f"leaf hash {i}", h)
        n = i
        while n & 1:
            h = sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
    if not stack:
        return EMPTY_ROOT
    root = stack.pop()
    while stack:
        root = sha256(b"\x01" + stack.pop() + root).digest()
    return root


# --- inclusion (RFC 9162 section 2.1.3.2) -------------------------------------------------------------


def verify_inclusion(leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``leaf_index`` of the tree of ``tree_size`` leaves with ``root``."""
    _check_size("leaf index", leaf_index)
    _check_size("tree size", tree_size)
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root", root)
    path = _check_proof(proof)
    if leaf_index >= tree_size:
        raise VerificationError(f"leaf index {leaf_index} is not below tree size {tree_size}")

    fn, sn = leaf_index, tree_size - 1
    r = bytes(leaf_hash)
    for p in path:
        if sn == 0:
            raise VerificationError("inclusion proof has more elements than the tree has levels")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion proof has fewer elements than the tree has levels")
    if r != root:
        raise VerificationError("inclusion proof does not lead to the root")


# --- consistency (RFC 9162 section 2.1.4.2) -----------------------------------------------------------


def verify_consistency(
    first_size: int, second_size: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``first_size`` leaves is a prefix of the tree of ``second_size`` leaves.

    RFC 9162 defines consistency proofs for ``0 < first_size < second_size``. Outside that range:
    equal sizes are consistent exactly when the proof is empty and the roots are equal, and a first size
    of 0 is refused (every tree extends the empty tree, so such a "proof" proves nothing).
    """
    _check_size("first size", first_size)
    _check_size("second size", second_size)
    _check_hash("first root", first_root)
    _check_hash("second root", second_root)
    path = _check_proof(proof)
    if second_size < first_size:
        raise VerificationError(f"second size {second_size} is smaller than first size {first_size}")
    if first_size == 0:
        raise VerificationError("consistency with the empty tree proves nothing")
    if first_size == second_size:
        if path:
            raise VerificationError("equal tree sizes need an empty consistency proof")
        if first_root != second_root:
            raise VerificationError("equal tree sizes but different roots")
        return

    if not path:
        raise VerificationError("consistency proof is empty")
    if first_size & (first_size - 1) == 0:  # an exact power of 2: the old root is itself a node
        path = [bytes(first_root), *path]
    fn, sn = first_size - 1, second_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof has more elements than the trees need")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof has fewer elements than the trees need")
    if fr != first_root:
        raise VerificationError("consistency proof does not lead to the first root")
    if sr != second_root:
        raise VerificationError("consistency proof does not lead to the second root")


# --- input checks (fail closed) -----------------------------------------------------------------------


def _check_size(name: str, value: object) -> None:
    if type(value) is not int or not 0 <= value <= _MAX_SIZE:
        raise VerificationError(f"{name} must be an integer in [0, 2^64): got {value!r}")


def _check_hash(name: str, value: object) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise VerificationError(f"{name} must be {HASH_SIZE} bytes")


def _check_proof(proof: object) -> list[bytes]:
    if isinstance(proof, bytes | bytearray | str) or not isinstance(proof, Sequence):
        raise VerificationError("proof must be a sequence of hashes")
    path: list[bytes] = []
    for i, p in enumerate(proof):
        _check_hash(f"proof element {i}", p)
        path.append(bytes(p))
    return path
