"""The ``qerberos`` command: one typer app, one module per command group.

Exit codes, for every command: 0 success; 1 the data says no (a tampered ledger, an invalid input line,
a conflict); 2 the command could not run (bad usage, missing configuration, an unreachable database).
"""

from __future__ import annotations

import typer

from cli import (
    detect,
    detection,
    detector_models,
    dev,
    features,
    identity,
    importing,
    ledger,
    mcp,
    monitor,
    ops,
    publish,
    report,
    serve,
    simulate,
    taxonomy,
    witness,
)
from cli._common import EXIT_CANNOT_RUN, private_files
from qerberos.errors import QerberosError

app = typer.Typer(
    name="qerberos",
    help="qerberos: the verifiable audit ledger and security monitor of the Q ecosystem.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for command_group in (
    ledger,
    importing,
    taxonomy,
    identity,
    serve,
    ops,
    report,
    detect,
    publish,
    mcp,
    detection,
    dev,
    simulate,
    features,
    detector_models,
    witness,
    monitor,
):
    command_group.register(app)


def main() -> None:
    """The console script: any qerberos error left unhandled (bad settings, say) is one line and exit 2."""
    private_files()
    try:
        app()
    except QerberosError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise SystemExit(EXIT_CANNOT_RUN) from exc
