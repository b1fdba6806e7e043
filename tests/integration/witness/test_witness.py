"""``qerberos witness serve`` against C2SP tlog-witness and tlog-cosignature, as a real process.

The cosignature bytes and the key id are computed here from the specifications' text, with nothing of
qerberos: key id = SHA-256(name || 0x0A || 0x04 || public key)[:4]; the signature is a big-endian u64
timestamp then Ed25519 over "cosignature/v1\\n" "time <timestamp>\\n" and the checkpoint's note text.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from typer.testing import CliRunner

from cli import app
from models import keys
from models.database import create_ledger_engine, create_schema
from models.ledger import Ledger, initialise
from models.signing import LogSigner
from qerberos.settings import Settings
from tests.integration.ledger.helpers import event
from tests.integration.witness.processes import fork, witness_server

NAME = "witness.test/w1"


@pytest.fixture
def log(sqlite_settings: Settings) -> Iterator[Ledger]:
    with initialise(sqlite_settings) as ledger:
        ledger.append([event(n) for n in range(10)])
        yield ledger


@pytest.fixture
def state(tmp_path: Path) -> Path:
    result = CliRunner().invoke(app, ["witness", "init", "--state", str(tmp_path / "witness"), "--name", NAME])
    assert 0 == result.exit_code, result.output
    return tmp_path / "witness"


def _witness_key(state: Path) -> tuple[str, int, bytes]:
    """(name, key id as the verifier key states it, public key) from ``qerberos witness key``."""
    vkey = CliRunner().invoke(app, ["witness", "key", "--state", str(state)]).output.strip()
    name, key_id, data = vkey.split("+", 2)  # base64 may hold "+" too
    raw = base64.b64decode(data)
    assert 0x04 == raw[0]  # "Ed25519 public keys MAY be encoded as vkeys with signature type 0x04"
    return name, int(key_id, 16), raw[1:]


def _body(old: int, proof: list[bytes], note: str) -> bytes:
    lines = [f"old {old}", *(base64.b64encode(node).decode() for node in proof)]
    return ("\n".join(lines) + "\n\n" + note).encode()


def _submit(url: str, log: Ledger, old: int, size: int | None = None) -> httpx.Response:
    size = log.size() if size is None else size
    note = log.sign_tree(size, log.root(size))
    proof = log.consistency_proof(old, size).proof if 0 < old < size else []
    return httpx.post(f"{url}/add-checkpoint", content=_body(old, list(proof), note))


def _check_cosignature(response: httpx.Response, note: str, state: Path) -> int:
    """The timestamp of the one cosignature line, checked from the spec's text alone."""
    name, stated_id, public_key = _witness_key(state)
    assert (200, name) == (response.status_code, NAME)
    (line,) = response.text.splitlines()
    prefix, key_name, encoded = line.split(" ")
    raw = base64.b64decode(encoded)
    key_id, timestamp, signature = raw[:4], int.from_bytes(raw[4:12], "big"), raw[12:]
    expected_id = hashlib.sha256(name.encode() + b"\x0a" + b"\x04" + public_key).digest()[:4]
    text = note[: note.index("\n\n") + 1]  # the note body, final newline included, no signature lines
    message = b"cosignature/v1\n" + f"time {timestamp}\n".encode() + text.encode()
    Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)  # raises if it does not verify
    assert ("\u2014", NAME, expected_id, stated_id, 64) == (
        prefix,
        key_name,
        key_id,
        int.from_bytes(expected_id, "big"),
        len(signature),
    )
    assert abs(time.time() - timestamp) < 3600 and timestamp > 0
    return timestamp


def test_a_witness_cosigns_per_the_spec_and_refuses_stale_sizes_and_bad_proofs(log: Ledger, state: Path) -> None:
    with witness_server(state, [log.verifier_key()]) as url:
        first = _submit(url, log, 0)
        _check_cosignature(first, log.sign_tree(10, log.root(10)), state)

        log.append([event(n) for n in range(10, 25)])
        second = _submit(url, log, 10)
        _check_cosignature(second, log.sign_tree(25, log.root(25)), state)

        stale = _submit(url, log, 10)
        assert (409, "text/x.tlog.size", "25\n") == (stale.status_code, stale.headers["content-type"], stale.text)

        log.append([event(n) for n in range(25, 40)])
        proof = list(log.consistency_proof(25, 40).proof)
        proof[0] = bytes([proof[0][0] ^ 1]) + proof[0][1:]
        bad = httpx.post(f"{url}/add-checkpoint", content=_body(25, proof, log.sign_tree(40, log.root(40))))
        empty_from_zero = httpx.post(
            f"{url}/add-checkpoint", content=_body(0, proof[:1], log.sign_tree(40, log.root(40)))
        )
        assert (422, 409) == (bad.status_code, empty_from_zero.status_code)
        assert 200 == _submit(url, log, 25).status_code


def test_a_witness_refuses_what_it_cannot_trust_or_parse(log: Ledger, state: Path, tmp_path: Path) -> None:
    with initialise_other(tmp_path) as other, witness_server(state, [log.verifier_key()]) as url:
        note = log.sign_tree(10, log.root(10))
        foreign = other.sign_tree(other.size(), other.root(other.size()))
        resigned = note.replace(log.origin, "elsewhere.test/log", 1)
        answers = [
            httpx.post(f"{url}/add-checkpoint", content=body).status_code
            for body in (
                _body(0, [], foreign),  # another log's origin
                _body(0, [], forged(note)),  # the log's origin, a signature that does not verify
                _body(11, [], note),  # old size above the checkpoint's
                b"old 01\n\n" + note.encode(),  # a leading zero
                _body(0, [], resigned),  # body changed under the signature: its origin is unknown
                _body(0, [bytes(32)], note),  # a proof from size 0, which must be empty
            )
        ]
        assert [404, 403, 400, 400, 404, 422] == answers
        assert 404 == httpx.get(f"{url}/{hashlib.sha256(log.origin.encode()).hexdigest()}/checkpoint").status_code


def test_a_witness_never_cosigns_a_fork_and_keeps_its_state_across_a_restart(
    log: Ledger, state: Path, sqlite_settings: Settings, tmp_path: Path
) -> None:
    forked = fork(log, sqlite_settings.home, tmp_path / "fork", f"sqlite:///{tmp_path / 'fork.db'}")
    log.append([event(n) for n in range(10, 20)])
    forked.append([event(n, actor="did:squid:mallory") for n in range(10, 20)])
    with forked, witness_server(state, [log.verifier_key()]) as url:
        assert 200 == _submit(url, log, 0).status_code
        same_size = _submit(url, forked, 20)
        forked.append([event(20)])
        longer = _submit(url, forked, 20)
        assert (422, 422) == (same_size.status_code, longer.status_code)
    with witness_server(state, [log.verifier_key()]) as url:  # a new process on the same state
        assert (409, "20\n") == (_submit(url, forked, 0).status_code, _submit(url, forked, 0).text)
        served = httpx.get(f"{url}/{hashlib.sha256(log.origin.encode()).hexdigest()}/checkpoint")
        assert (200, log.root(20)) == (served.status_code, base64.b64decode(served.text.split("\n")[2]))
        assert 2 == served.text.count("\u2014 ")  # the log's signature and the witness's cosignature
        assert 422 == _submit(url, forked, 20).status_code


def forged(note: str) -> str:
    """The note with its signature's last byte flipped (same key name and id)."""
    text, _, line = note.rpartition("\u2014 ")
    name, encoded = line.strip().split(" ")
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 1
    return f"{text}\u2014 {name} {base64.b64encode(bytes(raw)).decode()}\n"


def initialise_other(tmp_path: Path) -> Ledger:
    """Another log (its own origin and key) with a few entries."""
    home = tmp_path / "other"
    keys.ensure_key(home, "other.test/log")
    ledger = Ledger(
        create_ledger_engine(f"sqlite:///{tmp_path / 'other.db'}"), LogSigner.load(home, "other.test/log", None)
    )
    create_schema(ledger.engine)
    ledger.append([event(0)])
    return ledger
