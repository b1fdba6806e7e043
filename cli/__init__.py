"""The ``qerberos`` command: one typer app, one module per command group.

Exit codes, for every command: 0 success; 1 the data says no (a tampered ledger, an invalid input line,
a conflict); 2 the command could not run (bad usage, missing configuration, an unreachable database).
"""

from __future__ import annotations

import importlib.metadata
from typing import Annotated

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
from cli._common import enable_debug, run_app

app = typer.Typer(
    name="qerberos",
    help="qerberos: the verifiable audit ledger and security monitor of the Q ecosystem.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"qerberos {importlib.metadata.version('qerberos')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    # The root command's own options (its help is the app's).
    if debug:
        enable_debug()


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
    """The console script: any error left unhandled is one line and exit 2 (a traceback with ``--debug``)."""
    run_app(app)
