"""The stand-alone verifier's cosignature checks (C2SP tlog-cosignature, cosignature/v1) with a k-of-n policy.

Cosignatures are made here by hand from the specification (the witness's own code is tested against it
in ``tests/integration/witness``), so the verifier is checked against the spec, not against our signer.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from models.signed_note import Checkpoint, NoteSigner, sign_checkpoint
from qerberos import verifier

ORIGIN = "log.test/audit"
LOG = NoteSigner.generate(ORIGIN)
NOTE = sign_checkpoint(Checkpoint(ORIGIN, 12, hashlib.sha256(b"root").digest()), [LOG])
TEXT = NOTE[: NOTE.index("\n\n") + 1]


class Witness:
    """A witness's key and its lines, built from the spec's text alone."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.key = Ed25519PrivateKey.generate()
        self.public = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = hashlib.sha256(name.encode() + b"\n" + b"\x04" + self.public).digest()[:4]
        encoded = base64.b64encode(b"\x04" + self.public).decode()
        self.vkey = f"{name}+{self.key_id.hex()}+{encoded}"

    def line(self, timestamp: int = 1_700_000_000, text: str = TEXT) -> str:
        message = f"cosignature/v1\ntime {timestamp}\n{text}".encode()
        raw = self.key_id + timestamp.to_bytes(8, "big") + self.key.sign(message)
        return f"\u2014 {self.name} {base64.b64encode(raw).decode()}\n"


W1, W2, W3 = Witness("w1.test/w"), Witness("w2.test/w"), Witness("w3.test/w")
KEYS = [W1.vkey, W2.vkey, W3.vkey]


def test_two_of_three_cosignatures_meet_a_policy_of_two_and_not_three() -> None:
    note = NOTE + W1.line(1_700_000_001) + W3.line(1_700_000_003)
    found = verifier.verify_cosignatures(note, KEYS, 2)
    assert [("w1.test/w", 1_700_000_001), ("w3.test/w", 1_700_000_003)] == [(c.name, c.timestamp) for c in found]
    with pytest.raises(verifier.NoteVerificationError, match="2 of the 3 witnesses cosigned, 3 needed") as refused:
        verifier.verify_cosignatures(note, KEYS, 3)
    assert "quorum" == refused.value.problem
    assert 12 == verifier.verify_witnessed_checkpoint(note, [LOG.verifier_key], ORIGIN, KEYS, 2).size


def test_a_cosignature_that_does_not_verify_rejects_the_note() -> None:
    other_text = TEXT.replace("12\n", "13\n")
    with pytest.raises(verifier.NoteVerificationError, match=r"w2\.test/w") as refused:
        verifier.verify_cosignatures(NOTE + W1.line() + W2.line(text=other_text), KEYS, 1)
    assert "invalid-signature" == refused.value.problem


def test_lines_of_unknown_keys_are_ignored_and_the_log_key_is_no_witness() -> None:
    stranger = Witness("w1.test/w")  # the same name, another key (so another key id)
    note = NOTE + stranger.line() + W2.line()
    assert ["w2.test/w"] == [c.name for c in verifier.verify_cosignatures(note, KEYS, 1)]
    with pytest.raises(verifier.NoteVerificationError, match="algorithm"):
        verifier.verify_cosignatures(note, [LOG.verifier_key], 0)  # a 0x01 key is no cosigner key
    with pytest.raises(verifier.NoteVerificationError, match="algorithm"):
        verifier.verify_checkpoint(note, [W1.vkey], ORIGIN)  # and a 0x04 key signs no checkpoint


@pytest.mark.parametrize("quorum", [-1, 4, True])
def test_a_policy_that_cannot_be_met_is_refused(quorum: int) -> None:
    with pytest.raises(verifier.NoteVerificationError, match="cannot be met"):
        verifier.verify_cosignatures(NOTE + W1.line(), KEYS, quorum)


def test_a_timestamp_past_two_to_the_63_is_refused() -> None:
    with pytest.raises(verifier.NoteVerificationError, match="does not verify"):
        verifier.verify_cosignatures(NOTE + W1.line(2**63), KEYS, 1)
