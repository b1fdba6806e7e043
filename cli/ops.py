"""Operations commands: backup (online, consistent) and restore (verified before anything is replaced)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli._common import EXIT_REFUSED, fail, progress_bar, reported_errors
from qerberos.settings import Settings, get_settings


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)
    app.command("restore")(restore)


def backup(directory: Annotated[Path, typer.Argument(help="A new or empty directory for the backup.")]) -> None:
    """Back up the ledger (while it runs), configuration, keys, checkpoints, reports and MLflow store.

    The private keys are written encrypted with QERBEROS_KEY_PASSPHRASE; without it nothing is written.
    """
    from pipelines.backup import create_backup

    settings = get_settings()
    with reported_errors(), progress_bar("backing up") as progress:
        manifest = create_backup(settings, directory, progress=progress)
    typer.echo(f"backed up {manifest.ledger_size} events to {directory} ({len(manifest.files)} files)")


def restore(
    directory: Annotated[Path, typer.Argument(help="A directory written by `qerberos backup`.")],
    force: Annotated[
        bool, typer.Option("--force", help="Restore a backup older than the published log (needs --reason).")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why a forced restore is needed; logged and audited.")
    ] = None,
    trusted_key: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-key",
            help="A verifier key (as `qerberos key` prints it) that must have signed the backup, beside this "
            "deployment's own; repeatable. What anchors trust when restoring into a fresh home.",
        ),
    ] = None,
    trust_backup_keys: Annotated[
        bool,
        typer.Option(
            "--trust-backup-keys",
            help="In a home that trusts no key yet, take the backup's own keys on trust (compare them with the "
            "log's published verifier key first); without it or --trusted-key such a restore is refused.",
        ),
    ] = False,
) -> None:
    """Verify a backup completely, then replace the database and keys with it.

    Exit 1 when the backup is refused (tampered, forked from the published log, or older without
    --force --reason); nothing is replaced then. Stop the service first (`qerberos stop`).
    """
    from pipelines.restore import RestoreRefusedError, restore_backup

    settings = get_settings()
    if force and not (reason and reason.strip()):
        raise fail("--force needs --reason TEXT: a forced restore is logged and audited with its reason")
    _refuse_while_running(settings)
    with reported_errors(), progress_bar("verifying backup") as progress:
        try:
            result = restore_backup(
                settings,
                directory,
                force=force,
                reason=reason,
                trusted_keys=trusted_key or (),
                trust_backup_keys=trust_backup_keys,
                progress=progress,
            )
        except RestoreRefusedError as exc:  # the data says no: exit 1, nothing was replaced
            typer.echo(f"REFUSED: {exc.message}")
            raise typer.Exit(EXIT_REFUSED) from exc
    forced = " (FORCED)" if result.forced else ""
    typer.echo(f"restored {result.size} events from {directory}{forced}: {result.consistency}")
    typer.echo(f"audit event at sequence number {result.audit_seq}; run `qerberos verify`")


def _refuse_while_running(settings: Settings) -> None:
    """A local service holding the database open must be stopped before its files are replaced."""
    from cli.serve import running_services

    pids = running_services(settings.home)
    if pids:
        raise fail(f"qerberos is running (pid {', '.join(map(str, pids))}): stop it first with `qerberos stop`")
