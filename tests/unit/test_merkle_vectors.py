"""Standard RFC 6962 / RFC 9162 vectors run through the auditor's verifier, plus the classic 8-leaf roots.

The vectors are transparency-dev/merkle's ``testdata/``, kept in ``tests/fixtures/rfc6962/`` (source, commit
and licence: ``tests/fixtures/README.md``): one JSON file per case, base64 hashes, 0-based indices,
``wantErr`` when the proof must be rejected.

- ``inclusion/`` and ``consistency/`` (with ``additional/`` and ``single-entry/``): all of them.
- ``subtreeinclusion/`` and ``subtreeconsistency/`` are for *subtree* proofs (arbitrary leaf ranges
  ``[start, end)``, as in the Merkle Tree Certificates drafts), which are not RFC 9162 proofs. Only the
  cases with ``start == 0 and end > 0`` are RFC 9162 proofs (inclusion of ``leafIdx`` in the tree of
  ``end`` leaves; consistency of the tree of ``end`` leaves with the one of ``size``), and those are run.
  The others are left out on purpose: ``start > 0`` proves a range that is not a tree prefix, and an empty
  subtree (``end == 0``) is "trivially consistent" there whereas RFC 9162 defines no proof from size 0.

One deliberate deviation, listed in ``DEVIATIONS``: transparency-dev accepts equal sizes with equal
12-byte placeholder "roots" ("don't care"). Our verifier fails closed on any hash that is not 32 bytes,
so it rejects those; the test asserts that it does, and why.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from models import merkle
from qerberos.verifier import (
    VerificationError,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parents[1] / "fixtures" / "rfc6962"

DEVIATIONS = {
    "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json": "first root must be 32 bytes",
    "subtreeconsistency/additional/sizes-are-equal-one-and-proof-is-empty.json": "first root must be 32 bytes",
}

# RFC 6962 test data from certificate-transparency (merkle_tree_test.cc) and their roots for sizes 1..8.
CLASSIC_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
CLASSIC_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CLASSIC_HASHES = [leaf_hash(d) for d in CLASSIC_LEAVES]


def _load(kind: str) -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for path in sorted((VECTORS / kind).rglob("*.json")):
        case = json.loads(path.read_text())
        if kind.startswith("subtree") and not (case["start"] == 0 and case["end"] > 0):
            continue
        cases.append((path.relative_to(VECTORS).as_posix(), case))
    return cases


INCLUSION = _load("inclusion") + _load("subtreeinclusion")
CONSISTENCY = _load("consistency") + _load("subtreeconsistency")


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _proof(values: list[str] | None) -> list[bytes]:
    return [_b64(v) for v in values or []]


def _outcome(check: Any, *args: Any) -> str | None:
    """None when the check passes, else the verifier's reason."""
    try:
        check(*args)
    except VerificationError as exc:
        return exc.reason
    return None


def test_every_standard_vector_is_collected() -> None:
    """A missing or truncated copy of the vectors must fail loudly, not collect zero cases."""
    per_kind = 98
    assert (per_kind, per_kind) == (len(_load("inclusion")), len(_load("consistency")))
    assert len(INCLUSION) > 98
    assert len(CONSISTENCY) > 98


@pytest.mark.parametrize(("name", "case"), INCLUSION, ids=[n for n, _ in INCLUSION])
def test_inclusion_vector_verdict_matches_want_err(name: str, case: dict[str, Any]) -> None:
    leaf_index = case["leafIdx"]
    tree_size = case["end"] if "end" in case else case["treeSize"]
    reason = _outcome(
        verify_inclusion,
        leaf_index,
        tree_size,
        _b64(case["leafHash"]),
        _proof(case["proof"]),
        _b64(case["root"]),
    )
    assert case["wantErr"] == (reason is not None), reason


@pytest.mark.parametrize(("name", "case"), CONSISTENCY, ids=[n for n, _ in CONSISTENCY])
def test_consistency_vector_verdict_matches_want_err(name: str, case: dict[str, Any]) -> None:
    first, second = (case["end"], case["size"]) if "size" in case else (case["size1"], case["size2"])
    reason = _outcome(
        verify_consistency, first, second, _b64(case["root1"]), _b64(case["root2"]), _proof(case["proof"])
    )
    if name in DEVIATIONS:
        assert DEVIATIONS[name] == reason
    else:
        assert case["wantErr"] == (reason is not None), reason


@pytest.mark.parametrize("size", range(1, 9))
def test_classic_root_for_each_size(size: int) -> None:
    assert CLASSIC_ROOTS[size - 1] == root_from_leaf_hashes(CLASSIC_HASHES[:size]).hex()


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    sha256_of_nothing = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sha256_of_nothing == root_from_leaf_hashes([]).hex()


def _classic_nodes() -> dict[tuple[int, int], bytes]:
    new_nodes, _ = merkle.append_batch(0, CLASSIC_HASHES, {})
    nodes = {(0, i): h for i, h in enumerate(CLASSIC_HASHES)}
    nodes.update({(level, index): h for level, index, h in new_nodes})
    return nodes


@pytest.mark.parametrize("size", range(0, 9))
def test_stored_tree_root_matches_classic_root(size: int) -> None:
    assert root_from_leaf_hashes(CLASSIC_HASHES[:size]) == merkle.root(size, _classic_nodes())


def _is_classic(size: int, root: str) -> bool:
    return 1 <= size <= 8 and _b64(root).hex() == CLASSIC_ROOTS[size - 1]


def test_ledger_proofs_equal_the_standard_happy_path_proofs() -> None:
    """The proofs models.merkle assembles are byte for byte those of the reference implementation."""
    nodes = _classic_nodes()
    compared = 0
    for _, case in _load("inclusion"):
        if not case["wantErr"] and _is_classic(case["treeSize"], case["root"]):
            expected = _proof(case["proof"])
            assert expected == merkle.inclusion_proof(case["leafIdx"], case["treeSize"], nodes)
            compared += 1
    for _, case in _load("consistency"):
        if not case["wantErr"] and _is_classic(case["size2"], case["root2"]) and case["size1"] > 0:
            expected = _proof(case["proof"])
            assert expected == merkle.consistency_proof(case["size1"], case["size2"], nodes)
            compared += 1
    assert compared >= 10
