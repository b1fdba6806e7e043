"""Properties of the stored tree (models.merkle) checked by the auditor's verifier (qerberos.verifier).

Every tree here is built only through ``append_batch``/``completed_nodes``; every proof is assembled
from exactly the nodes its ``*_keys`` function names, so a missing key would show as a LedgerError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import merkle
from qerberos.errors import LedgerError, ValidationError
from qerberos.verifier import (
    VerificationError,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 300
Nodes = dict[tuple[int, int], bytes]

LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(MAX_SIZE + 1)]
ROOTS = [root_from_leaf_hashes(LEAVES[:n]) for n in range(MAX_SIZE + 1)]


def _stored_tree(size: int) -> Nodes:
    """What the ledger stores for ``size`` leaves: leaf hashes (level 0) and completed nodes."""
    new_nodes, _ = merkle.append_batch(0, LEAVES[:size], {})
    nodes: Nodes = {(0, i): h for i, h in enumerate(LEAVES[:size])}
    nodes.update({(level, index): h for level, index, h in new_nodes})
    return nodes


FULL = _stored_tree(MAX_SIZE)


def _only(keys: list[tuple[int, int]]) -> Nodes:
    """The rows one batched query for ``keys`` returns; each key must be a completed node."""
    assert len(keys) == len(set(keys))
    return {k: FULL[k] for k in keys}


def _inclusion(index: int, size: int) -> list[bytes]:
    return merkle.inclusion_proof(index, size, _only(merkle.inclusion_proof_keys(index, size)))


def _consistency(first: int, second: int) -> list[bytes]:
    return merkle.consistency_proof(first, second, _only(merkle.consistency_proof_keys(first, second)))


def _rejected(check: Callable[..., None], *args: Any) -> bool:
    try:
        check(*args)
    except VerificationError:
        return True
    return False


sizes = st.integers(min_value=1, max_value=MAX_SIZE)
case_sizes = st.integers(min_value=1, max_value=MAX_SIZE - 1)  # leaves room for a larger wrong size


@settings(max_examples=60, deadline=None)
@given(sizes)
def test_every_inclusion_proof_verifies_against_the_full_root(size: int) -> None:
    for index in range(size):
        verify_inclusion(index, size, LEAVES[index], _inclusion(index, size), ROOTS[size])


@settings(max_examples=60, deadline=None)
@given(sizes)
def test_every_consistency_proof_verifies_against_both_full_roots(second: int) -> None:
    for first in range(1, second + 1):
        verify_consistency(first, second, ROOTS[first], ROOTS[second], _consistency(first, second))


@st.composite
def inclusion_cases(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(case_sizes)
    return draw(st.integers(0, size - 1)), size


@st.composite
def consistency_cases(draw: st.DrawFn) -> tuple[int, int]:
    second = draw(case_sizes)
    return draw(st.integers(1, second)), second


def _flip(proof: list[bytes], data: st.DataObject) -> list[bytes]:
    at = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 255))
    element = bytearray(proof[at])
    element[bit // 8] ^= 1 << (bit % 8)
    return [*proof[:at], bytes(element), *proof[at + 1 :]]


def _mutations(proof: list[bytes], data: st.DataObject) -> list[list[bytes]]:
    """A flipped bit, a dropped element, an added element (each when it applies)."""
    out = [[*proof[:at], LEAVES[0], *proof[at:]] for at in (0, len(proof))]
    if proof:
        out.append(_flip(proof, data))
        at = data.draw(st.integers(0, len(proof) - 1))
        out.append(proof[:at] + proof[at + 1 :])
    return out


@settings(max_examples=300, deadline=None)
@given(inclusion_cases(), st.data())
def test_mutated_inclusion_proof_fails(case: tuple[int, int], data: st.DataObject) -> None:
    index, size = case
    proof = _inclusion(index, size)
    for mutated in _mutations(proof, data):
        assert _rejected(verify_inclusion, index, size, LEAVES[index], mutated, ROOTS[size])
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index) if size > 1 else st.none())
    if other is not None:
        assert _rejected(verify_inclusion, other, size, LEAVES[index], proof, ROOTS[size])
        assert _rejected(verify_inclusion, other, size, LEAVES[other], proof, ROOTS[size])
    bad_size = data.draw(st.integers(index + 1, MAX_SIZE).filter(lambda n: n != size))
    assert _rejected(verify_inclusion, index, bad_size, LEAVES[index], proof, ROOTS[bad_size])
    assert _rejected(verify_inclusion, index, index, LEAVES[index], proof, ROOTS[size])
    for bad_root in _flip([ROOTS[size]], data) + [r for r in ROOTS[1:] if r != ROOTS[size]][:1]:
        assert _rejected(verify_inclusion, index, size, LEAVES[index], proof, bad_root)
    bad_leaf = _flip([LEAVES[index]], data)[0]
    assert _rejected(verify_inclusion, index, size, bad_leaf, proof, ROOTS[size])


@settings(max_examples=300, deadline=None)
@given(consistency_cases(), st.data())
def test_mutated_consistency_proof_fails(case: tuple[int, int], data: st.DataObject) -> None:
    first, second = case
    proof = _consistency(first, second)
    for mutated in _mutations(proof, data):
        assert _rejected(verify_consistency, first, second, ROOTS[first], ROOTS[second], mutated)
    bad_first = data.draw(st.integers(1, second).filter(lambda n: n != first) if second > 1 else st.none())
    if bad_first is not None:
        assert _rejected(verify_consistency, bad_first, second, ROOTS[bad_first], ROOTS[second], proof)
    bad_second = data.draw(st.integers(first, MAX_SIZE).filter(lambda n: n != second))
    assert _rejected(verify_consistency, first, bad_second, ROOTS[first], ROOTS[bad_second], proof)
    bad_first_root, bad_second_root = _flip([ROOTS[first]], data)[0], _flip([ROOTS[second]], data)[0]
    assert _rejected(verify_consistency, first, second, bad_first_root, ROOTS[second], proof)
    assert _rejected(verify_consistency, first, second, ROOTS[first], bad_second_root, proof)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, MAX_SIZE // 12), max_size=12))
def test_append_batch_in_any_chunks_equals_one_by_one(chunk_sizes: list[int]) -> None:
    one_by_one: list[merkle.Node] = []
    stored: Nodes = {}
    total = sum(chunk_sizes)
    for i, h in enumerate(LEAVES[:total]):
        stored[(0, i)] = h
        for level, index, node in merkle.completed_nodes(i, h, lambda lv, ix: stored[(lv, ix)]):
            stored[(level, index)] = node
            one_by_one.append((level, index, node))

    batched: list[merkle.Node] = []
    frontier: dict[tuple[int, int], bytes] = {}
    start = 0
    for n in chunk_sizes:
        new_nodes, frontier = merkle.append_batch(start, LEAVES[start : start + n], frontier)
        batched.extend(new_nodes)
        start += n
        assert ROOTS[start] == merkle.root_from_frontier(start, frontier)
    assert one_by_one == batched
    assert set(merkle.frontier_keys(total)) == set(frontier)


@pytest.mark.parametrize("size", range(0, MAX_SIZE + 1))
def test_frontier_and_stored_roots_equal_the_full_root(size: int) -> None:
    _, frontier = merkle.append_batch(0, LEAVES[:size], {})
    assert ROOTS[size] == merkle.root_from_frontier(size, frontier)
    assert ROOTS[size] == merkle.root(size, _only(merkle.root_keys(size)))


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 255, 10_000_000, 2**40 + 12345, 2**63 - 1])
def test_frontier_keys_tile_the_tree_with_perfect_subtrees(size: int) -> None:
    covered = 0
    for level, index in merkle.frontier_keys(size):
        assert covered == index << level
        covered += 1 << level
    assert size == covered


@pytest.mark.parametrize("size", [10_000_000, 10_000_001, 2**40 - 1, 2**63 - 1])
def test_proofs_read_logarithmically_many_completed_nodes(size: int) -> None:
    """O(log n) keys, each a node that is complete (stored) at ``size``."""
    bound = 2 * size.bit_length()
    for index in (0, 1, size // 3, size - 2, size - 1):
        keys = merkle.inclusion_proof_keys(index, size)
        assert len(keys) <= bound
        assert all((i + 1) << level <= size for level, i in keys)
    for first in (1, 2, size // 3, size // 2, size - 1):
        keys = merkle.consistency_proof_keys(first, size)
        assert len(keys) <= bound
        assert all((i + 1) << level <= size for level, i in keys)


def test_proof_for_an_index_outside_the_tree_is_refused() -> None:
    with pytest.raises(ValidationError):
        merkle.inclusion_proof_keys(5, 5)
    with pytest.raises(ValidationError):
        merkle.consistency_proof_keys(0, 5)
    with pytest.raises(ValidationError):
        merkle.consistency_proof_keys(6, 5)


def test_missing_node_is_a_ledger_error() -> None:
    keys = merkle.inclusion_proof_keys(3, 9)
    with pytest.raises(LedgerError, match="missing"):
        merkle.inclusion_proof(3, 9, _only(keys[1:]))


def test_append_batch_refuses_a_frontier_of_another_size() -> None:
    _, frontier = merkle.append_batch(0, LEAVES[:5], {})
    with pytest.raises(LedgerError, match="frontier"):
        merkle.append_batch(6, LEAVES[6:8], frontier)


def test_append_batch_refuses_a_malformed_leaf_hash() -> None:
    with pytest.raises(LedgerError):
        merkle.append_batch(0, [LEAVES[0], b"short"], {})
