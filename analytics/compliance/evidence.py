"""Checks, controls and the report's verdict.

A check names the evidence it examined, the query behind it, the rows it found and its criterion; it ends
passed, failed or no evidence. A control passes only when every one of its checks passed on real data; one
failed check fails it; a check without data makes it "no evidence" (never "passed"). Each control says what
would change its verdict, from its checks' criteria.

The report's verdict (``verdict``) over its controls and the ledger's integrity:

- ``PASSED``: every control passed and the ledger verified;
- ``PASSED WITH EXCEPTIONS``: nothing failed, but at least one control (or the consistency proof) has no
  evidence, so the report cannot vouch for it;
- ``NOT PASSED``: at least one control failed, or the ledger does not verify.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, Literal

import polars as pl

Status = Literal["passed", "failed", "no evidence"]
PASSED: Status = "passed"
FAILED: Status = "failed"
NO_EVIDENCE: Status = "no evidence"

Verdict = Literal["PASSED", "PASSED WITH EXCEPTIONS", "NOT PASSED"]
VERDICTS: dict[Verdict, str] = {
    "PASSED": "every control passed on evidence from the ledger and its stores, and the ledger verified",
    "PASSED WITH EXCEPTIONS": "no control failed, but at least one has no evidence: the report does not vouch "
    "for it, and the exceptions are listed",
    "NOT PASSED": "at least one control failed, or the ledger did not verify",
}
#: A check that rests on what qerberos cannot see: it is reported, never silently left out.
OUTSIDE_THE_LEDGER = "not evidenced by the ledger"


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    name: str
    evidence: str  # what was examined, in words a reader can repeat
    status: Status
    detail: str = ""
    criterion: str = ""  # when it passes, in words: what would change the verdict
    query: str = ""  # the query or filter behind it, over the ledger and its stores
    rows: pl.DataFrame | None = None  # the evidence rows (written to the evidence index)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "evidence": self.evidence,
            "status": self.status,
            "detail": self.detail,
            "criterion": self.criterion,
            "query": self.query,
            "evidenceRows": None if self.rows is None else self.rows.height,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Control:
    framework: str
    id: str
    title: str
    checks: tuple[Check, ...]

    @property
    def status(self) -> Status:
        return combine(check.status for check in self.checks)

    @property
    def would_change(self) -> str:
        """What would change this control's verdict, from its checks' criteria."""
        if self.status == PASSED:
            rules = "; ".join(f"{c.name}: {c.criterion}" for c in self.checks)
            return f"Would no longer pass if any check stopped meeting its criterion ({rules})."
        open_checks = [c for c in self.checks if c.status != PASSED]
        rules = "; ".join(f"{c.name}: {c.criterion}" for c in open_checks)
        if self.status == FAILED:
            return f"Would pass once every check meets its criterion ({rules})."
        return f"Would pass once evidence exists and meets the criterion ({rules})."

    def to_json(self) -> dict[str, Any]:
        return {
            "framework": self.framework,
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "wouldChange": self.would_change,
            "checks": [check.to_json() for check in self.checks],
        }


def combine(statuses: Iterable[Status]) -> Status:
    """Failed if any failed; passed if all passed (and there was at least one); else no evidence."""
    seen = list(statuses)
    if FAILED in seen:
        return FAILED
    if seen and all(status == PASSED for status in seen):
        return PASSED
    return NO_EVIDENCE


def verdict(controls: Iterable[Control], integrity: Status) -> Verdict:
    """The report's verdict (see the module's docstring): integrity counts as one more control."""
    status = combine([*(control.status for control in controls), integrity])
    return "PASSED" if status == PASSED else "NOT PASSED" if status == FAILED else "PASSED WITH EXCEPTIONS"


def check_count(
    name: str, evidence: str, rows: pl.DataFrame, *, query: str, unit: str = "events", criterion: str = ""
) -> Check:
    """A check that passes when the evidence exists at all (any row), else no evidence."""
    rule = criterion or f"at least one of the {unit} in the period"
    if rows.height > 0:
        return Check(name, evidence, PASSED, f"{rows.height:,} {unit}", rule, query, rows)
    return Check(name, evidence, NO_EVIDENCE, f"no {unit} in the period", rule, query, rows)


def outside_the_ledger(name: str, what: str, where: str) -> Check:
    """A check qerberos cannot evidence: ``what`` is not recorded in the ledger; ``where`` the evidence lives."""
    return Check(name, what, NO_EVIDENCE, f"{OUTSIDE_THE_LEDGER}: {where}",
                 f"evidence attached from {where}", "none: not recorded in the ledger or its stores")  # fmt: skip
