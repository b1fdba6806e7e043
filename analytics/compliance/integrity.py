"""Integrity first: the whole ledger re-verified, the signed checkpoint it was checked against, and a
consistency proof from the previous report's checkpoint to this one (history was only appended).

Signatures and proofs are checked with the stand-alone auditor's verifier (``qerberos.verifier``), not
with the code that produced them. A ledger that does not verify gets no new checkpoint: signing over
tampered history would lend it authority.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from typing import Any

from analytics.compliance.evidence import FAILED, NO_EVIDENCE, PASSED, Status
from models.ledger import Ledger
from models.verification import verify_ledger
from qerberos import verifier
from qerberos.errors import QerberosError

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class ConsistencyResult:
    status: Status
    from_size: int | None
    to_size: int | None
    detail: str


@dataclasses.dataclass(frozen=True, slots=True)
class IntegrityResult:
    intact: bool
    ledger_size: int
    first_bad_seq: int | None
    problem: str | None
    checkpoints_checked: int
    checkpoint_note: str | None
    checkpoint_size: int | None
    checkpoint_root: bytes | None
    checkpoint_status: Status
    checkpoint_detail: str
    consistency: ConsistencyResult

    @property
    def status(self) -> Status:
        """Failed when anything failed; the missing previous checkpoint of a first report is not a failure."""
        if not self.intact or FAILED in (self.checkpoint_status, self.consistency.status):
            return FAILED
        return PASSED if self.checkpoint_status == PASSED else NO_EVIDENCE

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "intact": self.intact,
            "ledgerSize": self.ledger_size,
            "firstBadSeq": self.first_bad_seq,
            "problem": self.problem,
            "checkpointsChecked": self.checkpoints_checked,
            "checkpoint": {
                "status": self.checkpoint_status,
                "size": self.checkpoint_size,
                "rootHash": None if self.checkpoint_root is None else base64.b64encode(self.checkpoint_root).decode(),
                "note": self.checkpoint_note,
                "detail": self.checkpoint_detail,
            },
            "consistency": {
                "status": self.consistency.status,
                "fromSize": self.consistency.from_size,
                "toSize": self.consistency.to_size,
                "detail": self.consistency.detail,
            },
        }


def check_integrity(ledger: Ledger, previous_checkpoint: str | None = None) -> IntegrityResult:
    report = verify_ledger(ledger)
    keys = ledger.verifier_keys()
    if report.intact:
        note: str | None = ledger.checkpoint(force=True)
    else:
        logger.error("ledger does not verify at seq %s: %s", report.first_bad_seq, report.problem)
        notes = ledger.checkpoints()
        note = notes[-1] if notes else None
    checkpoint, checkpoint_status, checkpoint_detail = _check_checkpoint(note, keys, ledger.origin, report.size)
    if not report.intact and checkpoint_status == PASSED:
        checkpoint_detail += "; the newest stored checkpoint, no new one was signed over a ledger that fails"
    consistency = _check_consistency(ledger, keys, previous_checkpoint, checkpoint)
    return IntegrityResult(
        intact=report.intact,
        ledger_size=report.size,
        first_bad_seq=report.first_bad_seq,
        problem=report.problem,
        checkpoints_checked=report.checkpoints_checked,
        checkpoint_note=note,
        checkpoint_size=None if checkpoint is None else checkpoint.size,
        checkpoint_root=None if checkpoint is None else checkpoint.root_hash,
        checkpoint_status=checkpoint_status,
        checkpoint_detail=checkpoint_detail,
        consistency=consistency,
    )


def _check_checkpoint(
    note: str | None, keys: list[str], origin: str, verified_size: int
) -> tuple[verifier.Checkpoint | None, Status, str]:
    if note is None:
        return None, NO_EVIDENCE, "the ledger holds no signed checkpoint"
    try:
        checkpoint = verifier.verify_checkpoint(note, keys, origin)
    except verifier.VerificationError as exc:
        return None, FAILED, f"the checkpoint does not verify: {exc.reason}"
    detail = f"signed checkpoint of {origin} at size {checkpoint.size}, signature verified"
    if checkpoint.size > verified_size:
        detail += f" ({checkpoint.size - verified_size} events appended while the ledger was being verified)"
    return checkpoint, PASSED, detail


def _check_consistency(
    ledger: Ledger, keys: list[str], previous: str | None, current: verifier.Checkpoint | None
) -> ConsistencyResult:
    if not previous or not previous.strip():
        return ConsistencyResult(NO_EVIDENCE, None, None, "no previous report checkpoint: first report")
    try:
        before = verifier.verify_checkpoint(previous, keys, ledger.origin)
    except verifier.VerificationError as exc:
        return ConsistencyResult(FAILED, None, None, f"the previous report's checkpoint does not verify: {exc.reason}")
    if current is None:
        return ConsistencyResult(NO_EVIDENCE, before.size, None, "no verified checkpoint to prove consistency to")
    if before.size > current.size:
        return ConsistencyResult(
            FAILED, before.size, current.size, "the previous checkpoint is larger than the ledger: history was cut"
        )
    try:
        proof = ledger.consistency_proof(before.size, current.size)
        verifier.verify_consistency(before.size, current.size, before.root_hash, current.root_hash, proof.proof)
    except verifier.VerificationError as exc:
        return ConsistencyResult(FAILED, before.size, current.size, f"consistency proof fails: {exc.reason}")
    except QerberosError as exc:
        return ConsistencyResult(FAILED, before.size, current.size, f"no consistency proof: {exc.message}")
    return ConsistencyResult(
        PASSED,
        before.size,
        current.size,
        f"the ledger at {current.size} extends the previous report's ledger at {before.size}: only appended",
    )
