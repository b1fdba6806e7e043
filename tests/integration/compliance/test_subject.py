"""`qerberos report subject DID` (GDPR Art. 15): every event of one data subject with inclusion proofs to a
signed checkpoint, a bundle the stand-alone verifier checks on its own; changing any byte of it is caught; the
export is recorded in the ledger and the next GDPR report counts it under Art. 15."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli import report
from models.ledger import Ledger
from models.records import Actor, NewEvent
from pipelines.report_build import build_report
from qerberos import verifier
from qerberos.settings import Settings
from tests.integration.compliance.helpers import START

SUBJECT = "did:squid:subject-under-test"


def _cli(*args: str) -> tuple[int, str]:
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    report.register(app)
    result = CliRunner().invoke(app, ["report", *args])
    return result.exit_code, result.output


def _fill(ledger: Ledger) -> None:
    ledger.append([
        NewEvent("access", f"file:{n}", Actor(SUBJECT if n % 3 == 0 else f"did:squid:other-{n}"), "qdrive", "ALLOW",
                 "cli", {"ip": f"10.0.0.{n}"}, occurred_at=START + dt.timedelta(minutes=n))
        for n in range(30)
    ])  # fmt: skip
    ledger.close()


def test_subject_bundle_verifies_alone_and_is_recorded(
    backend_settings: Settings, ledger: Ledger, tmp_path: Path
) -> None:
    _fill(ledger)
    bundle = tmp_path / "bundle"
    code, output = _cli("subject", SUBJECT, "--out", str(bundle))
    result = verifier.verify_subject_bundle(bundle)
    records = [json.loads(line) for line in (bundle / "records.jsonl").read_text().splitlines()]
    assert (0, f"exported 10 events of {SUBJECT}") == (code, output.strip().splitlines()[-1].split(" to ")[0])
    assert (SUBJECT, 10, [n * 3 for n in range(10)]) == (result.subject, result.events, [r["seq"] for r in records])
    assert (0, "verified: 10 events") == (
        _cli("verify-subject", str(bundle))[0],
        _cli("verify-subject", str(bundle))[1][:19],
    )
    with Ledger.from_settings(backend_settings) as reopened:
        report_ = build_report(
            reopened, framework="gdpr", start=START, end=dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        )
    art15 = next(c for c in report_.controls if c.id == "Art. 15")
    assert ("passed", [SUBJECT]) == (art15.status, report_.gdpr.subject_exports["subject"].to_list())


@pytest.mark.parametrize("change", ["details", "canonical", "proof", "other subject"])
def test_a_changed_subject_bundle_does_not_verify(
    change: str, backend_settings: Settings, ledger: Ledger, tmp_path: Path
) -> None:
    _fill(ledger)
    bundle = tmp_path / "bundle"
    assert 0 == _cli("subject", SUBJECT, "--out", str(bundle))[0]
    lines = (bundle / "records.jsonl").read_text().splitlines()
    record = json.loads(lines[2])
    if change == "details":
        record["details"] = record["details"].replace("10.0.0", "10.9.9")
    elif change == "canonical":
        record["canonical"] = record["canonical"].replace('"ALLOW"', '"DENY"')
    elif change == "proof":
        record["proof"] = list(reversed(record["proof"]))
    else:
        (bundle / "manifest.json").write_text(
            (bundle / "manifest.json").read_text().replace(SUBJECT, "did:squid:someone-else")
        )
    lines[2] = json.dumps(record)
    (bundle / "records.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(verifier.VerificationError):
        verifier.verify_subject_bundle(bundle)
    assert 1 == _cli("verify-subject", str(bundle))[0]
