"""``qerberos witness init|key|serve``: a C2SP tlog-witness that anyone can host with a key of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli._common import reported_errors
from qerberos.settings import get_settings

witness_app = typer.Typer(
    help="A witness: cosigns a log's checkpoints, never one inconsistent with the last it cosigned.",
    no_args_is_help=True,
)
StateOption = Annotated[Path, typer.Option("--state", help="The witness's directory: its key and what it cosigned.")]


def register(app: typer.Typer) -> None:
    app.add_typer(witness_app, name="witness")


@witness_app.command("init")
def init(
    state: StateOption,
    name: Annotated[str, typer.Option("--name", help="The witness's key name, a schema-less URL (w.example/w1).")],
) -> None:
    """Create the witness's Ed25519 key (encrypted with QERBEROS_KEY_PASSPHRASE if set) and print its
    verifier key, which logs and verifiers are configured with."""
    from models.witness import create_witness_home

    with reported_errors():
        cosigner = create_witness_home(state, name, get_settings().key_passphrase)
    typer.echo(cosigner.verifier_key)


@witness_app.command("key")
def key(state: StateOption) -> None:
    """Print the witness's verifier key (name+keyid+base64(0x04||pubkey), cosignature/v1)."""
    from models.witness import load_cosigner

    with reported_errors():
        typer.echo(load_cosigner(state, get_settings().key_passphrase).verifier_key)


@witness_app.command("serve")
def serve(
    state: StateOption,
    log: Annotated[list[str], typer.Option("--log", help="A log's verifier key (repeatable): the logs it witnesses.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 3100,
) -> None:
    """Serve POST /add-checkpoint and GET /<origin hash>/checkpoint until SIGTERM or Ctrl-C."""
    import uvicorn

    from api.witness_app import create_witness_app
    from models.witness import Witness, load_cosigner
    from qerberos.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_dir)
    with reported_errors():
        witness = Witness(state, load_cosigner(state, settings.key_passphrase), log)
    typer.echo(f"witness {witness.verifier_key} on http://{host}:{port}", err=True)
    uvicorn.run(create_witness_app(witness), host=host, port=port, log_config=None, access_log=False)
