"""Signed notes and checkpoints: Go's published vectors, round trips, and every tampering rejected."""

from __future__ import annotations

import base64
import dataclasses
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from models.signed_note import (
    Checkpoint,
    NoteIntegrityError,
    NoteSigner,
    SignedNote,
    format_checkpoint,
    format_note,
    format_verifier_key,
    key_id,
    parse_checkpoint,
    parse_note,
    parse_verifier_key,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
    verify_note,
)
from qerberos import verifier
from qerberos.errors import IntegrityError, ValidationError

# golang.org/x/mod/sumdb/note, note_test.go (TestSign, TestOpen, TestNewVerifier) and the package example.
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
GO_NOTE = TEXT + "\n" + PETER_SIG

ORIGIN = "qerberos.test/audit"
ROOT = hashlib.sha256(b"root").digest()


def peter_signer() -> NoteSigner:
    """Go's private key string is PRIVATE+KEY+name+id+base64(0x01 || 32-byte seed)."""
    raw = base64.b64decode(PETER_SKEY.split("+", 4)[4])
    assert raw[0] == 0x01
    return NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(raw[1:]))


def problem(exc: pytest.ExceptionInfo[NoteIntegrityError]) -> str:
    return exc.value.problem


# --- Go's vectors -------------------------------------------------------------------------------------


def test_key_id_formula_matches_the_go_vector() -> None:
    key = parse_verifier_key(PETER_VKEY)
    expected = int.from_bytes(hashlib.sha256(b"PeterNeumann\n\x01" + key.public_key).digest()[:4], "big")
    assert 0xC74F20A3 == expected == key_id("PeterNeumann", key.public_key) == key.key_id
    assert parse_verifier_key(ENOCH_VKEY).key_id == 0xAF0CFE78


def test_verifier_key_formats_back_to_the_go_string() -> None:
    key = parse_verifier_key(PETER_VKEY)
    assert PETER_VKEY == format_verifier_key(key.name, key.public_key) == peter_signer().verifier_key


def test_signing_the_go_text_gives_the_go_note_byte_for_byte() -> None:
    assert sign_note(TEXT, [peter_signer()]) == GO_NOTE


def test_the_go_note_verifies_with_the_go_key() -> None:
    opened = verify_note(GO_NOTE, [PETER_VKEY])
    assert opened.text == TEXT
    assert [(s.name, s.key_id) for s in opened.signatures] == [("PeterNeumann", 0xC74F20A3)]


def test_unknown_signers_are_ignored_and_trusted_ones_verified() -> None:
    both = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert [s.name for s in verify_note(both, [PETER_VKEY]).signatures] == ["PeterNeumann"]
    assert [s.name for s in verify_note(both, [ENOCH_VKEY]).signatures] == ["EnochRoot"]
    assert [s.name for s in verify_note(both, [PETER_VKEY, ENOCH_VKEY]).signatures] == ["PeterNeumann", "EnochRoot"]


def test_a_note_no_trusted_key_signed_is_rejected() -> None:
    with pytest.raises(NoteIntegrityError) as exc:
        verify_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [])
    assert problem(exc) == "untrusted"


def test_every_mangling_of_the_go_verifier_key_is_rejected() -> None:
    raw = PETER_VKEY.encode()
    mangled = {raw[i:j] for i in range(len(raw) + 1) for j in range(i + 1, len(raw) + 1)} - {raw}
    mangled |= {raw[:i] + bytes([raw[i] + 1]) + raw[i + 1 :] for i in range(len(raw))}
    mangled |= {
        b"PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",  # wrong length
        b"PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # unknown algorithm
    }
    for candidate in mangled:
        with pytest.raises(verifier.NoteVerificationError) as exc:
            verifier.parse_verifier_key(candidate.decode("latin-1"))
        assert exc.value.problem == "malformed-key"


@pytest.mark.parametrize(
    "note",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT
        + "\n"
        + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG.replace("—", "-"),
        TEXT + "\n" + PETER_SIG.replace("— ", "—  "),
        TEXT + "\n" + PETER_SIG.replace("=\n", "\n"),  # base64 without its padding
        TEXT + "\n" + "— PeterNeumann AAAA\n",  # shorter than a key id and one byte
        TEXT.replace("\n", "\r\n", 1) + "\n" + PETER_SIG,
        TEXT.replace(" ", "\t", 1) + "\n" + PETER_SIG,
    ],
)
def test_malformed_notes_are_rejected(note: str) -> None:
    with pytest.raises(NoteIntegrityError) as exc:
        verify_note(note, [PETER_VKEY])
    assert problem(exc) == "malformed-note"


def test_bad_utf8_is_rejected() -> None:
    with pytest.raises(NoteIntegrityError) as exc:
        verify_note(b"\xff" + GO_NOTE.encode(), [PETER_VKEY])
    assert problem(exc) == "malformed-note"
    with pytest.raises(NoteIntegrityError):
        verify_note("\ud800" + GO_NOTE, [PETER_VKEY])


def test_the_go_note_as_bytes_verifies() -> None:
    assert verify_note(GO_NOTE.encode(), [PETER_VKEY]).text == TEXT


def test_more_than_100_signatures_are_rejected() -> None:
    with pytest.raises(NoteIntegrityError) as exc:
        verify_note(TEXT + "\n" + ENOCH_SIG * 101, [PETER_VKEY])
    assert problem(exc) == "too-many-signatures"


def test_duplicate_signature_lines_are_rejected_unlike_go_which_skips_them() -> None:
    for duplicated in (PETER_SIG + PETER_SIG, PETER_SIG + ENOCH_SIG + ENOCH_SIG):
        with pytest.raises(NoteIntegrityError) as exc:
            verify_note(TEXT + "\n" + duplicated, [PETER_VKEY])
        assert problem(exc) == "duplicate-signature"


def test_a_bad_signature_by_a_trusted_key_rejects_the_note() -> None:
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[64:]
    with pytest.raises(NoteIntegrityError) as exc:
        verify_note(TEXT + "\n" + bad + ENOCH_SIG, [PETER_VKEY, ENOCH_VKEY])
    assert problem(exc) == "invalid-signature"


def test_a_key_sharing_only_the_name_or_only_the_id_is_unknown() -> None:
    renamed = PETER_SIG.replace("PeterNeumann", "PeterNeuman")
    with pytest.raises(NoteIntegrityError) as exc:
        verify_note(TEXT + "\n" + renamed, [PETER_VKEY])
    assert problem(exc) == "untrusted"
    other_id = PETER_SIG.replace("x08g", "xxxx")
    with pytest.raises(NoteIntegrityError) as exc:
        verify_note(TEXT + "\n" + other_id, [PETER_VKEY])
    assert problem(exc) == "untrusted"


def test_two_different_trusted_keys_with_one_name_and_id_are_ambiguous() -> None:
    key = parse_verifier_key(PETER_VKEY)
    impostor = dataclasses.replace(key, public_key=bytes(32))
    with pytest.raises(verifier.NoteVerificationError) as exc:
        verifier.verify_note(GO_NOTE, [key, impostor])
    assert exc.value.problem in {"malformed-key", "ambiguous-key"}
    assert GO_NOTE[:10] == verifier.verify_note(GO_NOTE, [key, key, PETER_VKEY]).text[:10]


# --- checkpoints --------------------------------------------------------------------------------------


def test_checkpoint_body_has_the_c2sp_layout() -> None:
    body = format_checkpoint(Checkpoint(ORIGIN, 20852163, ROOT))
    assert f"{ORIGIN}\n20852163\n{base64.b64encode(ROOT).decode()}\n" == body
    assert Checkpoint(ORIGIN, 20852163, ROOT) == parse_checkpoint(body)


def test_checkpoint_extension_lines_round_trip() -> None:
    checkpoint = Checkpoint(ORIGIN, 3, ROOT, ("Timestamp: 1700000000", "x"))
    assert checkpoint == parse_checkpoint(format_checkpoint(checkpoint))


@pytest.mark.parametrize(
    "body",
    [
        f"\n1\n{base64.b64encode(ROOT).decode()}\n",  # empty origin
        f"{ORIGIN}\n01\n{base64.b64encode(ROOT).decode()}\n",  # leading zero
        f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n+1\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n1 \n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n\u0661\n{base64.b64encode(ROOT).decode()}\n",  # a non-ASCII digit
        f"{ORIGIN}\n{2**64}\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n1\n{base64.b64encode(ROOT[:31]).decode()}\n",  # 31-byte root
        f"{ORIGIN}\n1\n{base64.b64encode(ROOT).decode().rstrip('=')}\n",
        f"{ORIGIN}\n1\n",
        f"{ORIGIN}\n1\n{base64.b64encode(ROOT).decode()}",  # no final newline
        f"{ORIGIN}\n1\n{base64.b64encode(ROOT).decode()}\n\n",  # empty extension line
    ],
)
def test_malformed_checkpoint_bodies_are_rejected(body: str) -> None:
    with pytest.raises(NoteIntegrityError) as exc:
        parse_checkpoint(body)
    assert problem(exc) == "malformed-checkpoint"


def test_size_zero_is_the_empty_tree() -> None:
    assert parse_checkpoint(f"{ORIGIN}\n0\n{base64.b64encode(ROOT).decode()}\n").size == 0


def test_invalid_checkpoints_cannot_be_formatted() -> None:
    for checkpoint in (
        Checkpoint("", 1, ROOT),
        Checkpoint(ORIGIN, -1, ROOT),
        Checkpoint(ORIGIN, 1, ROOT[:5]),
        Checkpoint("two\nlines", 1, ROOT),
        Checkpoint(ORIGIN, 1, ROOT, ("",)),
    ):
        with pytest.raises(ValidationError):
            format_checkpoint(checkpoint)


def test_signed_checkpoint_verifies_and_returns_the_checkpoint() -> None:
    signer = NoteSigner.generate(ORIGIN)
    checkpoint = Checkpoint(ORIGIN, 7, ROOT)
    note = sign_checkpoint(checkpoint, [signer])
    assert checkpoint == verify_checkpoint(note, [signer.verifier_key], ORIGIN)
    assert checkpoint == verifier.verify_checkpoint(note, [signer.verifier_key], ORIGIN)


def test_a_checkpoint_of_another_origin_is_rejected() -> None:
    signer = NoteSigner.generate("other.log/audit")
    note = sign_checkpoint(Checkpoint("other.log/audit", 7, ROOT), [signer])
    with pytest.raises(NoteIntegrityError) as exc:
        verify_checkpoint(note, [signer.verifier_key], ORIGIN)
    assert problem(exc) == "wrong-origin"


def test_a_checkpoint_signed_only_by_a_key_of_another_name_is_rejected() -> None:
    witness = NoteSigner.generate("witness.example/w1")
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), [witness])
    with pytest.raises(NoteIntegrityError) as exc:
        verify_checkpoint(note, [witness.verifier_key], ORIGIN)
    assert problem(exc) == "untrusted"


def test_both_keys_of_a_rotation_sign_and_either_one_verifies() -> None:
    old, new = NoteSigner.generate(ORIGIN), NoteSigner.generate(ORIGIN)
    checkpoint = Checkpoint(ORIGIN, 9, ROOT)
    note = sign_checkpoint(checkpoint, [old, new])
    assert len(parse_note(note).signatures) == 2
    for trusted in ([old.verifier_key], [new.verifier_key], [old.verifier_key, new.verifier_key]):
        assert checkpoint == verify_checkpoint(note, trusted, ORIGIN)
    with pytest.raises(NoteIntegrityError):
        verify_checkpoint(note, [NoteSigner.generate(ORIGIN).verifier_key], ORIGIN)


def test_tampered_body_signature_or_key_id_is_rejected() -> None:
    signer = NoteSigner.generate(ORIGIN)
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), [signer])
    parsed = parse_note(note)
    (signature,) = parsed.signatures
    body = parsed.text.replace("\n7\n", "\n8\n")
    flipped = bytes([signature.signature[0] ^ 1]) + signature.signature[1:]
    cases = {
        "invalid-signature": [
            format_note(SignedNote(body, parsed.signatures)),
            format_note(SignedNote(parsed.text, (dataclasses.replace(signature, signature=flipped),))),
        ],
        "untrusted": [
            format_note(SignedNote(parsed.text, (dataclasses.replace(signature, key_id=signature.key_id ^ 1),))),
        ],
    }
    for expected, notes in cases.items():
        for tampered in notes:
            with pytest.raises(NoteIntegrityError) as exc:
                verify_checkpoint(tampered, [signer.verifier_key], ORIGIN)
            assert expected == problem(exc)


def test_note_errors_are_integrity_errors_with_the_reason() -> None:
    with pytest.raises(IntegrityError, match="no signature by a trusted key"):
        verify_note(GO_NOTE, [ENOCH_VKEY])


def test_signing_refuses_what_would_not_verify() -> None:
    signer = NoteSigner.generate(ORIGIN)
    for text in ("no final newline", "tab\there\n", ""):
        with pytest.raises(ValidationError):
            sign_note(text, [signer])
    with pytest.raises(ValidationError):
        sign_note("text\n", [])
    with pytest.raises(ValidationError):
        sign_note("text\n", [signer, signer])  # one key twice
    with pytest.raises(ValidationError):
        NoteSigner("bad name", Ed25519PrivateKey.generate())


def test_the_signer_repr_hides_the_private_key() -> None:
    assert "private" not in repr(NoteSigner.generate(ORIGIN))


# --- properties ---------------------------------------------------------------------------------------

_names = st.text(
    alphabet=st.characters(exclude_categories=["Cs", "Zs", "Zl", "Zp", "Cc"], exclude_characters="+"),
    min_size=1,
    max_size=30,
).filter(verifier.is_valid_key_name)
_SIGNERS = [NoteSigner.generate(f"log{i}.example/audit") for i in range(3)]


@settings(max_examples=60, deadline=None)
@given(
    origin=_names,
    size=st.integers(min_value=0, max_value=2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(_names, max_size=3),
)
def test_any_checkpoint_round_trips_through_sign_and_verify(
    origin: str, size: int, root: bytes, extensions: list[str]
) -> None:
    signer = NoteSigner(origin, _SIGNERS[0].private_key)
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    assert checkpoint == verify_checkpoint(sign_checkpoint(checkpoint, [signer]), [signer.verifier_key], origin)


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=60).map(lambda t: t + "\n"),
    count=st.integers(min_value=1, max_value=3),
)
def test_any_text_round_trips_with_several_signers(text: str, count: int) -> None:
    signers = _SIGNERS[:count]
    note = sign_note(text, signers)
    opened = verify_note(note, [s.verifier_key for s in signers])
    assert text == opened.text
    assert [s.key_id for s in signers] == [s.key_id for s in opened.signatures]


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_any_single_character_change_to_a_signed_checkpoint_is_rejected(data: st.DataObject) -> None:
    signer = _SIGNERS[0]
    note = sign_checkpoint(Checkpoint(signer.name, 12345, ROOT), [signer])
    position = data.draw(st.integers(min_value=0, max_value=len(note) - 1))
    replacement = data.draw(st.characters(exclude_categories=["Cs"]).filter(lambda c: c != note[position]))
    tampered = note[:position] + replacement + note[position + 1 :]
    with pytest.raises(NoteIntegrityError):
        verify_checkpoint(tampered, [signer.verifier_key], signer.name)
