"""The signer signs only trees consistent with the last one it signed, and keeps each in its history."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from models import keys, merkle
from models.checkpoint_history import CheckpointHistory
from models.signed_note import checkpoint_of
from models.signer_state import CheckpointRefusedError, SignerState
from models.signing import LogSigner
from qerberos.errors import ConfigurationError, IntegrityError

ORIGIN = "qerberos.test/audit"


class Tree:
    """An in-memory RFC 9162 tree of numbered leaves; ``fork`` changes the leaves from that index on."""

    def __init__(self, size: int, fork: int | None = None) -> None:
        leaves = [
            hashlib.sha256(f"{n}{'x' if fork is not None and n >= fork else ''}".encode()).digest() for n in range(size)
        ]
        self.size = size
        nodes, _ = merkle.append_batch(0, leaves, {})
        self.nodes = {(0, index): leaf for index, leaf in enumerate(leaves)} | {(lv, ix): h for lv, ix, h in nodes}

    def root(self, size: int | None = None) -> bytes:
        return merkle.root(self.size if size is None else size, self.nodes)

    def prove(self, first: int, second: int) -> Sequence[bytes]:
        return merkle.consistency_proof(first, second, self.nodes)


@pytest.fixture
def signer(tmp_path: Path) -> LogSigner:
    keys.ensure_key(tmp_path, ORIGIN)
    return LogSigner.load(tmp_path, ORIGIN, None)


def _sign(signer: LogSigner, tree: Tree, size: int | None = None) -> int:
    size = tree.size if size is None else size
    return checkpoint_of(signer.sign_checkpoint(size, tree.root(size), tree.prove)).size


def _state_size(home: Path) -> int | None:
    note = SignerState(home).last_signed()
    return None if note is None else checkpoint_of(note).size


def test_consistent_extensions_are_signed_and_remembered(signer: LogSigner, tmp_path: Path) -> None:
    tree = Tree(300)
    assert [0, 5, 5, 256, 300] == [_sign(signer, tree, size) for size in (0, 5, 5, 256, 300)]
    assert 300 == _state_size(tmp_path)


def test_a_prefix_of_the_last_tree_is_signed_and_the_state_stays(signer: LogSigner, tmp_path: Path) -> None:
    tree = Tree(40)
    _sign(signer, tree)
    assert (17, 40) == (_sign(signer, tree, 17), _state_size(tmp_path))


@pytest.mark.parametrize(
    ("fork", "size"),
    [(10, 40), (10, 20), (30, 40), (0, 12), (39, 40), (10, 60)],
    ids=["same size", "shorter", "tail", "from the first leaf", "last leaf", "longer"],
)
def test_a_tree_inconsistent_with_the_last_one_signed_is_refused(
    signer: LogSigner, tmp_path: Path, fork: int, size: int
) -> None:
    _sign(signer, Tree(40))
    history_before = list(signer.history())
    with pytest.raises(CheckpointRefusedError, match="not consistent with the checkpoint of size 40"):
        _sign(signer, Tree(size, fork=fork))
    assert (40, history_before) == (_state_size(tmp_path), list(signer.history()))


def test_a_tree_the_nodes_cannot_prove_is_refused(signer: LogSigner) -> None:
    _sign(signer, Tree(40))
    truncated = Tree(30)
    with pytest.raises(CheckpointRefusedError, match="size 40"):
        signer.sign_checkpoint(30, truncated.root(), truncated.prove)  # no node for size 40 exists


def test_every_signed_checkpoint_is_in_the_history_one_file_each(signer: LogSigner, tmp_path: Path) -> None:
    tree = Tree(1300)
    for size in (3, 1001, 1300):
        _sign(signer, tree, size)
    files = sorted(
        str(path.relative_to(tmp_path / "checkpoints"))
        for path in (tmp_path / "checkpoints").rglob("*")
        if path.is_file()
    )
    assert (["003", "x001/001", "x001/300"], [3, 1001, 1300]) == (files, [size for size, _ in signer.history()])


def test_the_history_keeps_the_first_note_of_a_tree_and_refuses_another_root(tmp_path: Path, signer: LogSigner) -> None:
    tree = Tree(8)
    note = signer.sign_checkpoint(8, tree.root(), tree.prove)
    history = CheckpointHistory.of_home(tmp_path)
    history.add(note)  # the same tree again: nothing changes
    keys.ensure_key(tmp_path / "elsewhere", ORIGIN)
    other = LogSigner.load(tmp_path / "elsewhere", ORIGIN, None)
    forked = other.sign_checkpoint(8, Tree(8, fork=2).root(), Tree(8, fork=2).prove)
    with pytest.raises(IntegrityError, match="another checkpoint of size 8"):
        history.add(forked)
    assert [(8, note)] == list(history.notes())


def test_a_signer_without_its_home_signs_no_checkpoint() -> None:
    with pytest.raises(ConfigurationError, match="without its home"):
        LogSigner(ORIGIN, [], []).sign_checkpoint(0, merkle.root(0, {}), Tree(0).prove)
