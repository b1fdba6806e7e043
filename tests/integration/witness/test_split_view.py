"""A split view: one log forked into two databases that both sign with its key (someone holds the key and
the host), both served by ``qerberos serve``. The monitor and the witness each accept one branch and refuse
the other, on SQLite and PostgreSQL; reading only public endpoints (checkpoint and tiles) over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from cli import app
from models.ledger import Ledger, initialise
from models.tile_proofs import TiledTree
from models.tiles import TileRequest, tile_path
from pipelines.monitor import ForkDetected, Monitor
from pipelines.witnessing import submission
from qerberos import verifier
from qerberos.settings import Settings
from tests.conftest import POSTGRES_ADMIN_URL
from tests.integration.ledger.helpers import event
from tests.integration.witness.processes import fork, log_server, witness_server


@pytest.fixture
def fork_url(backend_settings: Settings, tmp_path: Path) -> Iterator[str]:
    """A second, empty database of the same backend."""
    if backend_settings.is_sqlite:
        yield f"sqlite:///{tmp_path / 'fork.db'}"
        return
    schema = f"qerberos_fork_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def branches(backend_settings: Settings, fork_url: str, tmp_path: Path) -> Iterator[tuple[Ledger, Ledger]]:
    """20 shared entries, then 10 different ones on each branch; each branch signed its 30."""
    with initialise(backend_settings) as honest:
        honest.append([event(n) for n in range(20)])
        honest.checkpoint(force=True)
        with fork(honest, backend_settings.home, tmp_path / "fork", fork_url) as forked:
            honest.append([event(n) for n in range(20, 30)])
            forked.append([event(n, actor="did:squid:mallory") for n in range(20, 30)])
            honest.checkpoint(force=True)
            forked.checkpoint(force=True)
            yield honest, forked


def _fetch(url: str) -> Callable[[TileRequest], bytes]:
    def fetch(request: TileRequest) -> bytes:
        return httpx.get(f"{url}/tile/{tile_path(request)}").raise_for_status().content

    return fetch


def test_the_monitor_and_the_witness_each_refuse_the_second_branch(
    branches: tuple[Ledger, Ledger], backend_settings: Settings, fork_url: str, tmp_path: Path
) -> None:
    honest, forked = branches
    key = honest.verifier_key()
    state = tmp_path / "monitor"
    witness_state = tmp_path / "witness"
    assert (
        0 == CliRunner().invoke(app, ["witness", "init", "--state", str(witness_state), "--name", "w.test/w"]).exit_code
    )
    with (
        log_server(backend_settings.home, backend_settings.database_url, honest.origin) as first,
        log_server(tmp_path / "fork", fork_url, honest.origin) as second,
        witness_server(witness_state, [key]) as witness,
    ):
        # the monitor accepts the first branch, reading its history from its tiles
        with Monitor(first, state, [key]) as monitor:
            assert 30 == monitor.round().size
        code = CliRunner().invoke(app, ["monitor", second, "--state", str(state), "--key", key, "--once"])
        assert (1, True) == (code.exit_code, "forked" in code.output), code.output
        forked.append([event(n, actor="did:squid:mallory") for n in range(30, 35)])
        forked.checkpoint(force=True)
        with Monitor(second, state, [key]) as monitor, pytest.raises(ForkDetected, match="forked"):
            monitor.round()  # a larger tree: the leaves 30..34 replayed on the accepted frontier miss its root

        # the witness cosigns the first branch, then refuses the second, at its size and beyond
        assert 200 == _submit(witness, first, 0).status_code
        assert 422 == _submit(witness, second, 30).status_code
        same_size = forked.sign_tree(30, forked.root(30))
        assert 422 == httpx.post(f"{witness}/add-checkpoint", content=submission(30, [], same_size)).status_code


def _submit(witness: str, log: str, old: int) -> httpx.Response:
    """What a log's witness client sends: the served checkpoint, with a proof from ``old`` from its tiles."""
    note = httpx.get(f"{log}/checkpoint").text
    size = verifier.parse_checkpoint(verifier.parse_note(note).text).size
    proof = TiledTree(_fetch(log), size).consistency_proof(old)
    return httpx.post(f"{witness}/add-checkpoint", content=submission(old, proof, note))


def test_the_monitor_names_a_log_that_shrank(backend_settings: Settings, fork_url: str, tmp_path: Path) -> None:
    with initialise(backend_settings) as honest:
        honest.append([event(n) for n in range(20)])
        honest.checkpoint(force=True)
        with fork(honest, backend_settings.home, tmp_path / "fork", fork_url) as smaller:
            honest.append([event(n) for n in range(20, 30)])
            honest.checkpoint(force=True)
            key, state = honest.verifier_key(), tmp_path / "monitor"
            with (
                log_server(backend_settings.home, backend_settings.database_url, honest.origin) as first,
                log_server(tmp_path / "fork", fork_url, honest.origin) as second,
            ):
                with Monitor(first, state, [key]) as monitor:
                    assert 30 == monitor.round().size
                with Monitor(second, state, [key]) as monitor, pytest.raises(ForkDetected, match="shrank"):
                    monitor.round()
            assert smaller.size() == 20
