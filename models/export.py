"""Export the ledger as a self-contained bundle that ``qerberos.verifier`` checks on its own.

Layout of the bundle directory:
- ``records.jsonl``: one line per event in sequence order: ``canonical`` (the RFC 8785 record, a string),
  ``leafHash`` and ``chainHash`` (base64), and, unless erased, ``details`` (their canonical text, the exact
  bytes their commitment hashes) and their ``salt`` (base64);
- ``checkpoints.jsonl``: ``{"size", "note"}`` per signed checkpoint the database stores, oldest first;
- ``checkpoint-history.jsonl``: the same for every checkpoint of the signer's history outside the database
  (``QERBEROS_HOME/checkpoints``), so that the bundle cannot leave out what was signed: a truncation or a
  rewrite of the database shows against it;
- ``keys.txt``: the verifier keys, one per line;
- ``manifest.json``: the origin, the size and the export time.

``export_subject`` writes the bundle of one data subject (GDPR Art. 15), which
``qerberos.verifier.verify_subject_bundle`` checks on its own:
- ``records.jsonl``: each event of the subject, in sequence order: ``seq``, ``canonical``, ``details`` and
  ``salt`` unless erased, and ``proof``, the RFC 9162 inclusion proof (base64 nodes) in the checkpoint's tree;
- ``checkpoint.txt``: the signed checkpoint the proofs lead to; ``keys.txt``: the verifier keys;
- ``manifest.json``: ``kind`` (``subject``), the origin, the subject, the tree size, the events and the time.
The export itself is recorded in the ledger, after the checkpoint, as a ``gdpr.subject.exported`` event.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from models.database import connected
from models.ledger import Ledger, checkpoint_size
from models.records import Actor, NewEvent
from models.tables import EventDetails, LedgerEntry
from qerberos.output_directory import staged_output_directory

_entries = LedgerEntry.__table__  # type: ignore[attr-defined]
_details = EventDetails.__table__  # type: ignore[attr-defined]
_CHUNK = 20_000


def export_bundle(ledger: Ledger, directory: Path, *, progress: Callable[[int, int], None] | None = None) -> int:
    """Write the bundle for the ledger up to its newest checkpoint (made now) into ``directory`` (new or
    empty); return its size. The bundle is written beside ``directory`` and moved into place when whole: an
    export that fails (the database gone midway, a full disk) leaves no partial bundle that a verifier would
    read as a truncated log."""
    with staged_output_directory(directory) as staging:
        return _write_bundle(ledger, staging, progress)


def _write_bundle(ledger: Ledger, directory: Path, progress: Callable[[int, int], None] | None) -> int:
    history = ledger.checkpoint_history()  # read first: everything in it was signed over fewer entries than now
    note = ledger.checkpoint(force=True)
    size = checkpoint_size(note)
    with (directory / "records.jsonl").open("w", encoding="utf-8") as out, connected(ledger.engine) as connection:
        for start in range(0, size, _CHUNK):
            rows = connection.execute(
                select(
                    _entries.c.canonical,
                    _entries.c.leaf_hash,
                    _entries.c.chain_hash,
                    _details.c.salt,
                    _details.c.details,
                )
                .outerjoin(_details, _details.c.seq == _entries.c.seq)
                .where(_entries.c.seq >= start, _entries.c.seq < min(start + _CHUNK, size))
                .order_by(_entries.c.seq)
            )
            for row in rows:
                line = {
                    "canonical": row.canonical,
                    "leafHash": _b64(row.leaf_hash),
                    "chainHash": _b64(row.chain_hash),
                    "details": row.details,
                    "salt": None if row.salt is None else _b64(row.salt),
                }
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
            if progress is not None:
                progress(min(start + _CHUNK, size), size)
    stored = [(checkpoint_size(note), note) for note in ledger.checkpoints()]
    _write_checkpoints(directory / "checkpoints.jsonl", [(n, note) for n, note in stored if n <= size])
    _write_checkpoints(directory / "checkpoint-history.jsonl", history)
    (directory / "keys.txt").write_text("".join(f"{key}\n" for key in ledger.verifier_keys()), encoding="utf-8")
    manifest = {"origin": ledger.origin, "size": size, "exportedAt": dt.datetime.now(dt.UTC).isoformat()}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return size


SUBJECT_EXPORT_TYPE = "gdpr.subject.exported"


def export_subject(ledger: Ledger, squid_id: str, directory: Path, *, requested_by: str) -> int:
    """Write the bundle of every event of ``squid_id`` (see the module's docstring) into ``directory`` (new or
    empty; written beside it and moved into place when whole), then record the export in the ledger (by
    ``requested_by``, a ``source``); return how many events it holds."""
    with staged_output_directory(directory) as staging:
        events, size = _write_subject(ledger, squid_id, staging)
    event = NewEvent(
        type=SUBJECT_EXPORT_TYPE,
        ref=f"identity:{squid_id}",
        actor=Actor("qerberos"),
        layer="qerberos",
        verdict="ALLOW",
        source=requested_by,
        details={"events": events, "treeSize": size, "article": "GDPR Art. 15"},
    )
    ledger.append([event])
    return events


def _write_subject(ledger: Ledger, squid_id: str, directory: Path) -> tuple[int, int]:
    note = ledger.checkpoint(force=True)
    size = checkpoint_size(note)
    statement = (
        select(_entries.c.seq, _entries.c.canonical, _details.c.salt, _details.c.details)
        .outerjoin(_details, _details.c.seq == _entries.c.seq)
        .where(_entries.c.actor_squid_id == squid_id, _entries.c.seq < size)
        .order_by(_entries.c.seq)
    )
    with connected(ledger.engine) as connection:
        rows = connection.execute(statement).all()
    with (directory / "records.jsonl").open("w", encoding="utf-8") as out:
        for row in rows:
            proof = ledger.inclusion_proof(row.seq, size)
            line = {
                "seq": row.seq,
                "canonical": row.canonical,
                "details": row.details,
                "salt": None if row.salt is None else _b64(row.salt),
                "proof": [_b64(node) for node in proof.proof],
            }
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    (directory / "checkpoint.txt").write_text(note, encoding="utf-8")
    (directory / "keys.txt").write_text("".join(f"{key}\n" for key in ledger.verifier_keys()), encoding="utf-8")
    manifest = {"kind": "subject", "origin": ledger.origin, "subject": squid_id, "treeSize": size,
                "events": len(rows), "exportedAt": dt.datetime.now(dt.UTC).isoformat()}  # fmt: skip
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return len(rows), size


def _write_checkpoints(path: Path, checkpoints: list[tuple[int, str]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for size, note in checkpoints:
            out.write(json.dumps({"size": size, "note": note}) + "\n")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
