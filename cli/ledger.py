"""Ledger commands: init, ingest, checkpoint, key, proof, verify, export, erase."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO, TextIO

import typer

from cli._common import EXIT_REFUSED, fail, progress_bar, reported_errors
from qerberos import verifier
from qerberos.errors import QerberosError
from qerberos.settings import get_settings

if TYPE_CHECKING:
    from models.ledger import Ledger
    from models.records import NewEvent

proof_app = typer.Typer(help="Print Merkle proofs as JSON (base64 hashes).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("ingest")(ingest)
    app.command("checkpoint")(checkpoint)
    app.command("key")(key)
    app.command("verify")(verify)
    app.command("export")(export)
    app.command("erase")(erase)
    app.add_typer(proof_app, name="proof")


def _ledger() -> Ledger:
    from models.ledger import Ledger

    return Ledger.from_settings(get_settings())


def init() -> None:
    """Prepare QERBEROS_HOME: the database schema, a signing key and, on first run, the admin identity.

    The admin's token is written once, when it is created, to QERBEROS_HOME/admin.token (mode 600);
    the database keeps only its hash.
    """
    from models.identities import ensure_admin_token_file
    from models.schema import prepare

    settings = get_settings()
    with reported_errors(), prepare(settings) as ledger:
        typer.echo(f"qerberos home {settings.home}; ledger holds {ledger.size()} events")
        typer.echo(f"verifier key: {ledger.verifier_key()}")
        token_file = ensure_admin_token_file(ledger.engine, settings.home) if settings.auth_mode == "local" else None
    if token_file is not None:
        typer.echo(f"created the identity 'admin'; its bearer token is in {token_file} (mode 600). Try:")
        typer.echo(f'  curl -H "Authorization: Bearer $(cat {token_file})" http://localhost:{settings.port}/audit')


def ingest(
    source: Annotated[str, typer.Argument(help="A file of JSON lines, or - for standard input.")],
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Events appended per transaction.")] = 1000,
) -> None:
    """Append audit events given one JSON object per line (the upstream AuditEventRequest shape).

    Each batch is validated whole before it is appended; a bad line stops the run, naming its line
    number, and nothing of its batch is written. What was appended is signed in a checkpoint at the end.
    """
    from cli._appending import append_in_batches, open_input

    with reported_errors(), open_input(source) as stream, _ledger() as ledger:
        appended = append_in_batches(ledger, _decoded(stream), batch_size)
    typer.echo(f"appended {appended} events")


def _decoded(stream: BinaryIO) -> Iterator[NewEvent]:
    from models.wire_events import decode_event

    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            yield decode_event(line).to_new_event(source="cli")
        except QerberosError as exc:
            raise fail(f"line {number}: {exc.message} {exc.details}", EXIT_REFUSED) from exc


def checkpoint() -> None:
    """Print the latest signed checkpoint, making a new one if the log grew."""
    with reported_errors(), _ledger() as ledger:
        typer.echo(ledger.checkpoint(force=True), nl=False)


def key() -> None:
    """Print the verifier key(s) in signed-note form: name+keyid+base64(0x01||pubkey)."""
    with reported_errors(), _ledger() as ledger:
        for verifier_key in ledger.verifier_keys():
            typer.echo(verifier_key)


@proof_app.command("inclusion")
def inclusion(
    seq: Annotated[int, typer.Argument(min=0, help="Sequence number (0-based leaf index).")],
    tree_size: Annotated[int | None, typer.Option("--tree-size", min=1)] = None,
) -> None:
    """Inclusion proof of one event in the tree of the given size (default: a fresh checkpoint)."""
    with reported_errors(), _ledger() as ledger:
        typer.echo(json.dumps(ledger.inclusion_proof(seq, tree_size).to_json(), indent=2))


@proof_app.command("consistency")
def consistency(first: Annotated[int, typer.Argument(min=0)], second: Annotated[int, typer.Argument(min=0)]) -> None:
    """Consistency proof: the tree of size FIRST is a prefix of the tree of size SECOND."""
    with reported_errors(), _ledger() as ledger:
        typer.echo(json.dumps(ledger.consistency_proof(first, second).to_json(), indent=2))


def verify(
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="Check an exported bundle instead of the database.")
    ] = None,
    trusted_checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--trusted-checkpoint",
            help="A signed checkpoint you kept (repeatable): the log must be a consistent extension of each.",
        ),
    ] = None,
) -> None:
    """Re-derive everything and check it. Exit 0 intact, 1 tampered (naming the first bad sequence
    number or tree size), 2 could not run."""
    from models.verification import verify_ledger

    trusted = [_read_text(path) for path in trusted_checkpoint or []]
    if bundle is not None:
        _verify_bundle(bundle, trusted)
        return
    with reported_errors(), _ledger() as ledger, progress_bar("verifying") as progress:
        report = verify_ledger(ledger, progress=progress, trusted_checkpoints=trusted)
    if not report.intact:
        typer.echo(f"TAMPERED at sequence number {report.first_bad_seq}: {report.problem}")
        raise typer.Exit(EXIT_REFUSED)
    typer.echo(f"intact: {report.size} events, {report.checkpoints_checked} signed checkpoints verified")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read {path}: {exc}") from exc


def _verify_bundle(bundle: Path, trusted: list[str]) -> None:
    try:
        result = verifier.verify_bundle(bundle, trusted)
    except verifier.VerificationError as exc:
        typer.echo(f"TAMPERED: {exc}")
        raise typer.Exit(EXIT_REFUSED) from exc
    except OSError as exc:
        raise fail(f"cannot read bundle: {exc}") from exc
    typer.echo(f"intact: {result.size} events, {result.checkpoints} signed checkpoints verified")


def export(
    destination: Annotated[
        str, typer.Argument(help="bundle: a new or empty directory; ocsf: a file, or - for standard output.")
    ],
    format: Annotated[
        str, typer.Option("--format", "-f", help="bundle (records, checkpoints, keys) or ocsf (NDJSON).")
    ] = "bundle",
    alerts: Annotated[bool, typer.Option("--alerts", help="ocsf: the alerts, as Detection Findings.")] = False,
) -> None:
    """Write a self-contained bundle (records as JSON lines, checkpoints and the verifier keys), or with
    --format ocsf every event as an OCSF 1.7 event of its class (--alerts: every alert as a Detection
    Finding), one per line, for a SIEM."""
    from models.export import export_bundle

    if format == "ocsf":
        _export_ocsf(destination, alerts)
        return
    if format != "bundle" or alerts:
        raise fail("--format is bundle or ocsf; --alerts goes with ocsf")
    directory = Path(destination)
    with reported_errors(), _ledger() as ledger, progress_bar("exporting") as progress:
        size = export_bundle(ledger, directory, progress=progress)
    typer.echo(f"exported {size} events to {directory}")


def _export_ocsf(destination: str, alerts: bool) -> None:
    from analytics.taxonomy import default_taxonomy
    from models.alerts import AlertStore, create_alert_tables
    from pipelines.ocsf_export import write_alerts, write_events

    taxonomy = default_taxonomy()
    with reported_errors(), _ledger() as ledger, _output(destination) as out, progress_bar("exporting") as progress:
        if alerts:
            create_alert_tables(ledger.engine)
            store = AlertStore(ledger.engine)
            count = write_alerts(store.list(limit=store.count() or 1), out, taxonomy, ledger.origin)
        else:
            count = write_events(ledger, out, taxonomy, progress=progress)
    typer.echo(f"exported {count} {'alerts' if alerts else 'events'} as OCSF", err=destination == "-")


def _output(destination: str) -> contextlib.AbstractContextManager[TextIO]:
    if destination == "-":
        return contextlib.nullcontext(sys.stdout)
    return Path(destination).open("x", encoding="utf-8")


def erase(
    actor: Annotated[str, typer.Option("--actor", help="The sQuid DID whose personal details to erase.")],
) -> None:
    """Erase an identity's event details (GDPR Art. 17); proofs and checkpoints still verify."""
    with reported_errors(), _ledger() as ledger:
        erased = ledger.erase(actor, requested_by="cli")
        ledger.checkpoint(force=True)
    typer.echo(f"erased the details of {erased} events of {actor}")
