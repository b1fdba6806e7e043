"""``qerberos report``: run a compliance report, list the reports, run the scheduler."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli._common import EXIT_REFUSED, fail, reported_errors

FRAMEWORK_HELP = "gdpr, soc2, iso27001 or custom (every control)."


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Compliance reports (GDPR, SOC 2, ISO 27001) from the ledger.", no_args_is_help=True)
    group.command("run")(run)
    group.command("list")(list_reports)
    group.command("schedule")(schedule)
    app.add_typer(group, name="report")


def _instant(value: str, name: str) -> dt.datetime:
    from analytics.compliance import parse_instant
    from qerberos.errors import ValidationError

    try:
        return parse_instant(value)
    except ValidationError as exc:
        raise fail(f"--{name}: {exc.message}: {value!r}") from exc


def run(
    framework: Annotated[str, typer.Option(help=FRAMEWORK_HELP)],
    start: Annotated[str, typer.Option(help="Period start, ISO 8601 (included), e.g. 2026-01-01.")],
    end: Annotated[str, typer.Option(help="Period end, ISO 8601 (excluded), e.g. 2026-02-01.")],
    organization: Annotated[str, typer.Option(help="Organisation named on the report.")] = "",
    retention_days: Annotated[
        int | None, typer.Option(min=1, help="Retention period of personal details (GDPR Art. 5(1)(e)).")
    ] = None,
) -> None:
    """Run one report: notebook, HTML, PDF, JSON and CSV under QERBEROS_HOME/reports/<id>/, its hash in the ledger.

    Exit code 1 when the report finds the ledger tampered with; 2 when it could not be produced.
    """
    from pipelines.reports import STEPS, ReportRequest, run_report

    request_start, request_end = _instant(start, "start"), _instant(end, "end")
    with reported_errors():
        request = ReportRequest(framework, request_start, request_end, organization, retention_days, source="cli")
        with _steps(len(STEPS)) as update:
            result = run_report(request, progress=update)
    manifest = result.manifest
    typer.echo(f"report {result.report_id}: {manifest['outcome']} (integrity {manifest['integrity']})")
    typer.echo(f"directory: {result.directory}")
    typer.echo(f"sha256: {result.sha256} (ledger seq {manifest['ledgerEvent']['seq']})")
    if "report.pdf" not in manifest["outputs"]:
        typer.echo(f"pdf: {manifest['pdf']}", err=True)
    if manifest["outcome"] == "integrity_failed":
        typer.echo("LEDGER INTEGRITY FAILED: see the report's integrity section", err=True)
        raise typer.Exit(EXIT_REFUSED)


def list_reports(
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifests as JSON.")] = False,
) -> None:
    """The reports under QERBEROS_HOME/reports, newest first."""
    from pipelines.reports import list_reports as manifests

    found = manifests()
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    if not found:
        typer.echo("no reports")
        return
    for manifest in found:
        period = manifest.get("period", {})
        typer.echo(
            f"{manifest['reportId']}  {manifest.get('framework', '?'):<8}  "
            f"{period.get('startDate', '?')} .. {period.get('endDate', '?')}  {manifest.get('outcome', '?'):<16}  "
            f"{(manifest.get('reportSha256') or '')[:16]}"
        )


def schedule(
    config: Annotated[Path | None, typer.Option(help="Schedule file [config/reports.toml].")] = None,
    once: Annotated[bool, typer.Option("--once", help="Run what is due now, then exit.")] = False,
) -> None:
    """Run the reports of the schedule file on their cron expressions (serves /metrics on
    QERBEROS_SCHEDULER_METRICS_PORT); a run missed during downtime is caught up once."""
    from pipelines.schedule import DEFAULT_CONFIG, Scheduler, load_schedule, serve_metrics
    from qerberos.logging import configure_logging
    from qerberos.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_dir)
    with reported_errors():
        entries = load_schedule(config or DEFAULT_CONFIG)
        scheduler = Scheduler(entries, settings)
        if once:
            for outcome in scheduler.tick():
                typer.echo(f"{outcome.name}: {outcome.outcome} {outcome.report_id or ''}".rstrip())
            return
        serve_metrics(settings)
        scheduler.run_forever()


class _steps:
    """A progress bar over the report's steps on a terminal; plain lines otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._progress: object | None = None

    def __enter__(self):  # type: ignore[no-untyped-def]
        if not sys.stderr.isatty():
            return lambda step, done, total: typer.echo(f"[{done}/{total}] {step}", err=True)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        progress.start()
        self._progress = progress
        task = progress.add_task("report", total=self.total)

        def update(step: str, done: int, total: int) -> None:
            progress.update(task, description=step, completed=done, total=total)

        return update

    def __exit__(self, *_exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()  # type: ignore[attr-defined]
