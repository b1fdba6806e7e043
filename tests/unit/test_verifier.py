"""The auditor's verifier: stand-alone, and failing closed on every malformed input."""

from __future__ import annotations

import ast
import hashlib
import sys
from pathlib import Path
from typing import Any

import pytest

from qerberos import verifier
from qerberos.verifier import (
    EMPTY_ROOT,
    VerificationError,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [leaf_hash(bytes([i])) for i in range(7)]
ROOT7 = root_from_leaf_hashes(LEAVES)
ROOT3 = root_from_leaf_hashes(LEAVES[:3])
# PATH(2, D[7]) and PROOF(3, D[7]) by hand, from the definitions in RFC 9162 section 2.1.
PATH_2_7 = [
    LEAVES[3],
    node_hash(LEAVES[0], LEAVES[1]),
    node_hash(node_hash(LEAVES[4], LEAVES[5]), LEAVES[6]),
]
PROOF_3_7 = [
    LEAVES[2],
    LEAVES[3],
    node_hash(LEAVES[0], LEAVES[1]),
    node_hash(node_hash(LEAVES[4], LEAVES[5]), LEAVES[6]),
]


def test_verifier_imports_only_the_standard_library_and_cryptography() -> None:
    tree = ast.parse(Path(verifier.__file__).read_text())
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            roots.add((node.module or "").split(".")[0])
    assert set() == {r for r in roots if r not in sys.stdlib_module_names and r != "cryptography"}


def test_leaf_and_node_hashes_use_the_rfc_prefixes() -> None:
    assert hashlib.sha256(b"\x00abc").digest() == leaf_hash(b"abc")
    assert hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest() == node_hash(b"L" * 32, b"R" * 32)


def test_root_of_the_empty_tree_is_sha256_of_nothing() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT == root_from_leaf_hashes([])


def test_root_splits_at_the_largest_power_of_two() -> None:
    left = node_hash(node_hash(LEAVES[0], LEAVES[1]), node_hash(LEAVES[2], LEAVES[3]))
    right = node_hash(node_hash(LEAVES[4], LEAVES[5]), LEAVES[6])
    assert node_hash(left, right) == ROOT7


def test_root_of_a_malformed_leaf_hash_fails_closed() -> None:
    with pytest.raises(VerificationError, match="leaf hash 1"):
        root_from_leaf_hashes([LEAVES[0], b"short"])


def test_hand_built_inclusion_proof_verifies() -> None:
    verify_inclusion(2, 7, LEAVES[2], PATH_2_7, ROOT7)


def test_hand_built_consistency_proof_verifies() -> None:
    verify_consistency(3, 7, ROOT3, ROOT7, PROOF_3_7)


def test_equal_sizes_with_equal_roots_and_no_proof_are_consistent() -> None:
    verify_consistency(7, 7, ROOT7, ROOT7, [])


BAD_INCLUSION: list[tuple[str, tuple[Any, ...]]] = [
    ("index equal to size", (7, 7, LEAVES[2], PATH_2_7, ROOT7)),
    ("negative index", (-1, 7, LEAVES[2], PATH_2_7, ROOT7)),
    ("bool index", (True, 7, LEAVES[2], PATH_2_7, ROOT7)),
    ("float size", (2, 7.0, LEAVES[2], PATH_2_7, ROOT7)),
    ("size above uint64", (2, 2**64, LEAVES[2], PATH_2_7, ROOT7)),
    ("short leaf hash", (2, 7, LEAVES[2][:31], PATH_2_7, ROOT7)),
    ("long root", (2, 7, LEAVES[2], PATH_2_7, ROOT7 + b"\x00")),
    ("str root", (2, 7, LEAVES[2], PATH_2_7, ROOT7.hex())),
    ("none leaf hash", (2, 7, None, PATH_2_7, ROOT7)),
    ("proof as bytes", (2, 7, LEAVES[2], b"".join(PATH_2_7), ROOT7)),
    ("proof as none", (2, 7, LEAVES[2], None, ROOT7)),
    ("proof element as str", (2, 7, LEAVES[2], [p.hex() for p in PATH_2_7], ROOT7)),
    ("short proof element", (2, 7, LEAVES[2], [PATH_2_7[0][:16], *PATH_2_7[1:]], ROOT7)),
    ("extra proof element", (2, 7, LEAVES[2], [*PATH_2_7, PATH_2_7[0]], ROOT7)),
    ("missing proof element", (2, 7, LEAVES[2], PATH_2_7[:-1], ROOT7)),
    ("wrong leaf", (2, 7, LEAVES[3], PATH_2_7, ROOT7)),
    ("size zero", (0, 0, LEAVES[0], [], EMPTY_ROOT)),
]


@pytest.mark.parametrize("args", [a for _, a in BAD_INCLUSION], ids=[n for n, _ in BAD_INCLUSION])
def test_malformed_inclusion_input_raises_verification_error(args: tuple[Any, ...]) -> None:
    with pytest.raises(VerificationError):
        verify_inclusion(*args)


BAD_CONSISTENCY: list[tuple[str, tuple[Any, ...]]] = [
    ("second smaller than first", (7, 3, ROOT7, ROOT3, PROOF_3_7)),
    ("first is zero", (0, 7, EMPTY_ROOT, ROOT7, [])),
    ("both zero", (0, 0, EMPTY_ROOT, EMPTY_ROOT, [])),
    ("equal sizes, non-empty proof", (7, 7, ROOT7, ROOT7, [ROOT7])),
    ("equal sizes, different roots", (7, 7, ROOT7, ROOT3, [])),
    ("empty proof", (3, 7, ROOT3, ROOT7, [])),
    ("swapped roots", (3, 7, ROOT7, ROOT3, PROOF_3_7)),
    ("extra proof element", (3, 7, ROOT3, ROOT7, [*PROOF_3_7, ROOT7])),
    ("missing proof element", (3, 7, ROOT3, ROOT7, PROOF_3_7[:-1])),
    ("short root", (3, 7, ROOT3[:-1], ROOT7, PROOF_3_7)),
    ("bool size", (3, True, ROOT3, ROOT7, PROOF_3_7)),
    ("proof as str", (3, 7, ROOT3, ROOT7, "proof")),
    ("proof as generator", (3, 7, ROOT3, ROOT7, (p for p in PROOF_3_7))),
]


@pytest.mark.parametrize("args", [a for _, a in BAD_CONSISTENCY], ids=[n for n, _ in BAD_CONSISTENCY])
def test_malformed_consistency_input_raises_verification_error(args: tuple[Any, ...]) -> None:
    with pytest.raises(VerificationError):
        verify_consistency(*args)


def test_verification_error_carries_its_reason() -> None:
    with pytest.raises(VerificationError) as info:
        verify_inclusion(2, 7, LEAVES[3], PATH_2_7, ROOT7)
    expected = "inclusion proof does not lead to the root"
    assert expected == info.value.reason == str(info.value)


LENGTH_REASONS: list[tuple[str, Any, tuple[Any, ...], str]] = [
    ("inclusion, one too many", verify_inclusion, (2, 7, LEAVES[2], [*PATH_2_7, PATH_2_7[0]], ROOT7), "more"),
    ("inclusion, one too few", verify_inclusion, (2, 7, LEAVES[2], PATH_2_7[:-1], ROOT7), "fewer"),
    ("consistency, one too many", verify_consistency, (3, 7, ROOT3, ROOT7, [*PROOF_3_7, ROOT7]), "more"),
    ("consistency, one too few", verify_consistency, (3, 7, ROOT3, ROOT7, PROOF_3_7[:-1]), "fewer"),
]


@pytest.mark.parametrize(("check", "args", "word"), [c[1:] for c in LENGTH_REASONS], ids=[c[0] for c in LENGTH_REASONS])
def test_proof_of_the_wrong_length_is_refused_for_its_length(check: Any, args: tuple[Any, ...], word: str) -> None:
    """The RFC's level counting rejects these before any root comparison."""
    with pytest.raises(VerificationError, match=f"has {word} elements"):
        check(*args)
