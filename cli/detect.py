"""``qerberos detect``: live detection as a process of its own, beside API replicas that leave it off.

In production the API replicas run with ``QERBEROS_LIVE_DETECTION=off`` and one ``qerberos detect``
tails the shared ledger, scores identities' windows with the champion model, applies the rules and raises
alerts; its metrics (``qerberos_detector_*``, ``qerberos_alerts_created_total``,
``qerberos_memory_limit_bytes``, process_*) are served on ``QERBEROS_DETECTOR_METRICS_PORT``. Several may
run: one holds the leadership, the others wait.
"""

from __future__ import annotations

import signal
import threading

import typer

from cli._common import reported_errors
from qerberos.settings import get_settings


def register(app: typer.Typer) -> None:
    app.command("detect")(detect)


def detect() -> None:
    """Run live detection in the foreground until SIGTERM or Ctrl-C."""
    from prometheus_client import start_http_server

    from models.schema import prepare
    from pipelines.live_detection import LiveDetection
    from pipelines.model_registry import ChampionWatcher
    from qerberos.logging import configure_logging
    from qerberos.resources import observe_memory_limit

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_dir)
    observe_memory_limit(settings)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with reported_errors(), prepare(settings) as ledger:
        start_http_server(settings.detector_metrics_port, addr=settings.host)
        uri = settings.mlflow_tracking_uri
        detection = LiveDetection(ledger, ChampionWatcher(uri), tracking_uri=uri)
        detection.start()
        typer.echo(f"live detection running; metrics on {settings.host}:{settings.detector_metrics_port}", err=True)
        stopping.wait()
        detection.stop()
