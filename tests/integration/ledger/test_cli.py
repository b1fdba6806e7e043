"""The CLI as an operator and an auditor use it: init, ingest, checkpoint, key, proofs, export, verify."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from models.export import export_bundle
from models.ledger import Ledger
from qerberos import verifier
from qerberos.settings import Settings

EVENT = (
    '{{"type":"access","ref":"file:doc-{n}","actor":{{"squidId":"did:squid:{who}"}},'
    '"layer":"qdrive","verdict":"ALLOW","details":{{"n":{n}}}}}'
)
runner = CliRunner()


def _run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.output


def _ingest(count: int, who: str = "alice") -> None:
    lines = "\n".join(EVENT.format(n=n, who=who) for n in range(count))
    assert (0, f"appended {count} events\n") == _run("ingest", "-", stdin=lines)


def test_init_is_idempotent_and_prints_the_verifier_key(backend_settings: Settings) -> None:
    first = _run("init")
    second = _run("init")
    assert (first[0], second[0]) == (0, 0)
    key_lines = [[line for line in out.splitlines() if line.startswith("verifier key: ")] for _, out in (first, second)]
    assert key_lines[0] == key_lines[1]
    assert key_lines[0][0].startswith("verifier key: test.qerberos.local/audit+")
    assert ("admin.token" in first[1], "admin.token" in second[1]) == (True, False)


def test_ingest_reports_a_bad_line_by_number_and_writes_nothing_of_its_batch(backend_settings: Settings) -> None:
    _run("init")
    lines = [EVENT.format(n=0, who="a"), EVENT.format(n=1, who="a"), '{"type":"access"}']
    code, output = _run("ingest", "-", stdin="\n".join(lines))
    assert (code, "line 3" in output) == (1, True), output
    with Ledger.from_settings(backend_settings) as ledger:
        assert ledger.size() == 0


@pytest.mark.parametrize(
    "bad_line",
    [
        b"\xff\xfe not UTF-8",
        EVENT.format(n=1, who="a").replace('"layer"', '"ref":"twice","layer"').encode(),
        EVENT.format(n=1, who="a").replace("file:doc-1", "file:\\u0000").encode(),
        b"[" * 5000 + b"]" * 5000,
    ],
    ids=["not UTF-8", "a member twice", "NUL", "nested 5,000 levels"],
)
def test_ingest_refuses_what_the_api_refuses_by_line_number(
    backend_settings: Settings, tmp_path: Path, bad_line: bytes
) -> None:
    _run("init")
    source = tmp_path / "events.jsonl"
    source.write_bytes(EVENT.format(n=0, who="a").encode() + b"\n" + bad_line + b"\n")

    for args, stdin in ((("ingest", str(source)), None), (("ingest", "-"), source.read_bytes())):
        result = runner.invoke(app, list(args), input=stdin)

        assert (1, None) == (result.exit_code, _uncaught(result.exception)), result.output
        assert "line 2" in result.output
    with Ledger.from_settings(backend_settings) as ledger:
        assert ledger.size() == 0


def _uncaught(exception: BaseException | None) -> BaseException | None:
    """What a CLI run raised past its own error handling (a ``SystemExit`` is how it exits, not a crash)."""
    return None if exception is None or isinstance(exception, SystemExit) else exception


def test_proofs_printed_by_the_cli_verify_against_the_printed_checkpoint(backend_settings: Settings) -> None:
    _run("init")
    _ingest(9)
    code, note = _run("checkpoint")
    keys = _run("key")[1].split()
    checkpoint = verifier.verify_checkpoint(note, keys, backend_settings.log_origin)
    assert (code, checkpoint.size) == (0, 9)

    proof = json.loads(_run("proof", "inclusion", "4", "--tree-size", "9")[1])
    assert {"leafIndex", "treeSize", "leafHash", "proof", "checkpoint"} == set(proof)
    decode = verifier.base64.b64decode
    verifier.verify_inclusion(
        4, 9, decode(proof["leafHash"]), [decode(p) for p in proof["proof"]], checkpoint.root_hash
    )

    _ingest(4, who="bob")
    later = verifier.verify_checkpoint(_run("checkpoint")[1], keys, backend_settings.log_origin)
    consistency = json.loads(_run("proof", "consistency", "9", "13")[1])
    assert {"first", "second", "proof"} == set(consistency)
    verifier.verify_consistency(9, 13, checkpoint.root_hash, later.root_hash, [decode(p) for p in consistency["proof"]])
    assert _run("proof", "inclusion", "20")[0] == 2


def test_exported_bundle_verifies_and_a_tampered_one_does_not(backend_settings: Settings, tmp_path: Path) -> None:
    _run("init")
    _ingest(5)
    _run("checkpoint")
    _ingest(3, who="carol")
    assert _run("erase", "--actor", "did:squid:carol")[0] == 0
    bundle = tmp_path / "bundle"
    assert (0, f"exported 9 events to {bundle}\n") == _run("export", str(bundle))
    code, output = _run("verify", "--bundle", str(bundle))
    assert (code, output) == (0, "intact: 9 events, 3 signed checkpoints verified\n")

    tampered = tmp_path / "tampered"
    shutil.copytree(bundle, tampered)
    records = (tampered / "records.jsonl").read_text().splitlines()
    records[2] = records[2].replace('\\"n\\":2', '\\"n\\":7')
    (tampered / "records.jsonl").write_text("\n".join(records) + "\n")
    code, output = _run("verify", "--bundle", str(tampered))
    assert (code, output) == (1, "TAMPERED: record 2: details do not match their commitment\n")
    assert _run("verify", "--bundle", str(tmp_path / "missing"))[0] == 2


def test_export_refuses_a_directory_that_holds_anything(backend_settings: Settings, tmp_path: Path) -> None:
    """A bundle is never mixed with files left by an earlier export or anyone else."""
    _run("init")
    _ingest(2)
    used = tmp_path / "used"
    used.mkdir()
    (used / "records.jsonl").write_text("left from before\n")
    code, output = _run("export", str(used))
    assert (2, True) == (code, "exists and is not an empty directory" in output), output
    assert ["records.jsonl"] == [path.name for path in used.iterdir()]
    assert "left from before\n" == (used / "records.jsonl").read_text()


def test_an_export_that_fails_midway_leaves_no_bundle(ledger: Ledger, tmp_path: Path) -> None:
    """A partial bundle would read as a truncated log to the auditor who verifies it."""
    _ingest(3)

    def database_gone(done: int, total: int) -> None:
        raise ConnectionError("the database went away")

    with pytest.raises(ConnectionError):
        export_bundle(ledger, tmp_path / "exports" / "bundle", progress=database_gone)
    assert [] == list((tmp_path / "exports").iterdir())


MALFORMED_RECORDS = {
    "not JSON": ("{", "record 1: not valid JSON"),
    "not an object": ("[1, 2]", "record 1: not a JSON object"),
    "canonical missing": ('{"leafHash": "x", "chainHash": "y"}', "record 1: 'canonical' is missing or not text"),
    "canonical not text": ('{"canonical": 7}', "record 1: 'canonical' is missing or not text"),
    "canonical not an object": ('{"canonical": "[]"}', "record 1: canonical: not a JSON object"),
    "lone surrogate": ('{"canonical": "\\ud800"}', "record 1: 'canonical' is missing or not text"),
}


@pytest.mark.parametrize("replacement, problem", MALFORMED_RECORDS.values(), ids=MALFORMED_RECORDS)
def test_a_malformed_bundle_fails_verification_naming_the_record(
    sqlite_settings: Settings, tmp_path: Path, replacement: str, problem: str
) -> None:
    _run("init")
    _ingest(3)
    _run("checkpoint")
    bundle = tmp_path / "bundle"
    _run("export", str(bundle))
    records = (bundle / "records.jsonl").read_text().splitlines()
    records[1] = replacement
    (bundle / "records.jsonl").write_text("\n".join(records) + "\n")
    assert _run("verify", "--bundle", str(bundle)) == (1, f"TAMPERED: {problem}\n")


def test_a_record_whose_salt_is_not_base64_fails_verification(sqlite_settings: Settings, tmp_path: Path) -> None:
    _run("init")
    _ingest(2)
    _run("checkpoint")
    bundle = tmp_path / "bundle"
    _run("export", str(bundle))
    records = [json.loads(line) for line in (bundle / "records.jsonl").read_text().splitlines()]
    records[0]["salt"] = "not base64!"
    (bundle / "records.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    assert _run("verify", "--bundle", str(bundle)) == (1, "TAMPERED: record 0: salt is not base64\n")


def test_ingest_and_erase_sign_what_they_appended(backend_settings: Settings) -> None:
    _run("init")
    _ingest(3)
    _run("erase", "--actor", "did:squid:alice")
    with Ledger.from_settings(backend_settings) as ledger:
        assert (4, 4) == (
            ledger.size(),
            verifier.parse_checkpoint(verifier.parse_note(ledger.checkpoints()[-1]).text).size,
        )
