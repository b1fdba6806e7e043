"""A control passes only on evidence; the report's verdict is NOT PASSED on any failure (or a ledger that does
not verify), PASSED WITH EXCEPTIONS when something has no evidence, and each control says what would change it."""

from __future__ import annotations

import polars as pl
import pytest

from analytics.compliance.evidence import (
    FAILED,
    NO_EVIDENCE,
    PASSED,
    Check,
    Control,
    Status,
    check_count,
    outside_the_ledger,
    verdict,
)


def _control(*statuses: Status) -> Control:
    checks = tuple(Check(f"check {n}", "rows", status, "", f"criterion {n}") for n, status in enumerate(statuses))
    return Control("soc2", "CC0.0", "a control", checks)


@pytest.mark.parametrize(
    ("statuses", "integrity", "expected"),
    [
        ([(PASSED,), (PASSED, PASSED)], PASSED, "PASSED"),
        ([(PASSED,), (PASSED, NO_EVIDENCE)], PASSED, "PASSED WITH EXCEPTIONS"),
        ([(PASSED,), (PASSED,)], NO_EVIDENCE, "PASSED WITH EXCEPTIONS"),
        ([(NO_EVIDENCE,), (FAILED, PASSED)], PASSED, "NOT PASSED"),
        ([(PASSED,), (PASSED,)], FAILED, "NOT PASSED"),
        ([], PASSED, "PASSED"),
    ],
)
def test_summary_verdict(statuses: list[tuple[Status, ...]], integrity: Status, expected: str) -> None:
    assert expected == verdict([_control(*s) for s in statuses], integrity)


def test_two_of_six_controls_without_evidence_is_not_a_plain_pass() -> None:
    controls = [_control(PASSED)] * 4 + [_control(NO_EVIDENCE)] * 2
    assert "PASSED WITH EXCEPTIONS" == verdict(controls, PASSED)


def test_a_control_without_checks_or_with_an_unevidenced_check_never_passes() -> None:
    assert (NO_EVIDENCE, NO_EVIDENCE, FAILED) == (
        _control().status,
        _control(PASSED, NO_EVIDENCE).status,
        _control(NO_EVIDENCE, FAILED).status,
    )


def test_each_control_says_what_would_change_its_verdict() -> None:
    passed, failed, missing = _control(PASSED, PASSED), _control(PASSED, FAILED), _control(PASSED, NO_EVIDENCE)
    assert passed.would_change.startswith("Would no longer pass if")
    assert ("criterion 0" in passed.would_change, "criterion 1" in passed.would_change) == (True, True)
    assert failed.would_change.startswith("Would pass once every check")
    assert ("criterion 0" in failed.would_change, "criterion 1" in failed.would_change) == (False, True)
    assert missing.would_change.startswith("Would pass once evidence exists")
    assert "wouldChange" in missing.to_json()


def test_a_count_check_passes_only_with_rows_and_keeps_them() -> None:
    rows = pl.DataFrame({"seq": [1, 2]})
    found = check_count("decisions", "events", rows, query="q")
    empty = check_count("decisions", "events", rows.clear(), query="q")
    assert (PASSED, 2, NO_EVIDENCE, 0) == (
        found.status,
        found.to_json()["evidenceRows"],
        empty.status,
        empty.rows.height,
    )


def test_a_control_outside_the_ledger_is_reported_as_such() -> None:
    check = outside_the_ledger("physical access", "doors", "the site's logs")
    assert (NO_EVIDENCE, "not evidenced by the ledger: the site's logs") == (check.status, check.detail)
