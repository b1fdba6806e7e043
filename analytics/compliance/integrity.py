"""Integrity first: what a report says of the whole ledger re-verified, of the signed checkpoint it was checked
against, and of the consistency proof from the previous report's checkpoint to this one (history was only
appended). ``pipelines.report_build.check_integrity`` finds it out.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

from analytics.compliance.evidence import FAILED, NO_EVIDENCE, PASSED, Status


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
