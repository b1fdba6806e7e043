"""Checks and controls: each check names the evidence it examined and ends passed, failed or no evidence.

A control passes only when every one of its checks passed on real data; one failed check fails it; a check
without data makes it "no evidence" (never "passed").
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

Status = Literal["passed", "failed", "no evidence"]
PASSED: Status = "passed"
FAILED: Status = "failed"
NO_EVIDENCE: Status = "no evidence"


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    name: str
    evidence: str  # what was examined, in words a reader can repeat
    status: Status
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "evidence": self.evidence, "status": self.status, "detail": self.detail}


@dataclasses.dataclass(frozen=True, slots=True)
class Control:
    framework: str
    id: str
    title: str
    checks: tuple[Check, ...]

    @property
    def status(self) -> Status:
        return combine(check.status for check in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "framework": self.framework,
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "checks": [check.to_json() for check in self.checks],
        }


def combine(statuses: Any) -> Status:
    """Failed if any failed; passed if all passed (and there was at least one); else no evidence."""
    seen = list(statuses)
    if FAILED in seen:
        return FAILED
    if seen and all(status == PASSED for status in seen):
        return PASSED
    return NO_EVIDENCE


def check_count(name: str, evidence: str, count: int, *, unit: str = "events") -> Check:
    """A check that passes when the evidence exists at all (``count > 0``), else no evidence."""
    if count > 0:
        return Check(name, evidence, PASSED, f"{count:,} {unit}")
    return Check(name, evidence, NO_EVIDENCE, f"no {unit} in the period")
