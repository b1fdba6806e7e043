"""``qerberos monitor URL --state DIR``: what an auditor leaves running against a qerberos log."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from cli._common import EXIT_REFUSED, fail, reported_errors
from qerberos.errors import DependencyUnavailableError, IntegrityError
from qerberos.settings import get_settings


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor)


def monitor(
    url: Annotated[str, typer.Argument(help="The log's base URL (it serves /checkpoint and /tile/...).")],
    state: Annotated[Path, typer.Option("--state", help="Where the monitor keeps the checkpoint it accepted.")],
    key: Annotated[list[str], typer.Option("--key", help="The log's verifier key (repeatable, during a rotation).")],
    witness: Annotated[
        list[str] | None, typer.Option("--witness", help="A witness's cosignature/v1 verifier key (repeatable).")
    ] = None,
    quorum: Annotated[
        int | None, typer.Option(min=0, help="Cosignatures needed of the witnesses given (default: all of them).")
    ] = None,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between looks at the log.")] = 10.0,
    once: Annotated[bool, typer.Option("--once", help="Look once and exit.")] = False,
) -> None:
    """Follow the log: verify each new checkpoint's signatures (and cosignatures), check that it extends the
    last one accepted by replaying the new leaves from its tiles (and entries, with QERBEROS_MONITOR_TOKEN).
    Exits 1, logging both checkpoints, on a fork or a shrink; 2 when it cannot run (with --once, also when
    the log does not answer; otherwise it tries again)."""
    from pipelines.monitor import Monitor
    from qerberos.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_dir)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per tile read
    witnesses = witness or []
    with reported_errors():
        follower = Monitor(
            url,
            state,
            key,
            witness_keys=witnesses,
            quorum=len(witnesses) if quorum is None else quorum,
            token=settings.monitor_token,
        )
    with follower:
        while True:
            try:
                result = follower.round()
            except IntegrityError as exc:
                typer.echo(f"REFUSED: {exc.message}")
                raise typer.Exit(EXIT_REFUSED) from exc
            except DependencyUnavailableError as exc:
                if once:
                    raise fail(exc.message) from exc
                typer.echo(f"the log does not answer: {exc.message}", err=True)
            else:
                if once:
                    waiting = ", the newest checkpoint not yet cosigned enough" if result.waiting_for_witnesses else ""
                    typer.echo(f"consistent: {result.size} entries accepted{waiting}")
                    return
            time.sleep(interval)
