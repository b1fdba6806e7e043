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
    group.command("subject")(subject)
    group.command("verify-subject")(verify_subject)
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
        int | None,
        typer.Option(min=1, help="Default retention of personal details in days, in place of config/reports.toml's."),
    ] = None,
    paper: Annotated[str | None, typer.Option(help="A4 or Letter [QERBEROS_REPORT_PAPER, A4].")] = None,
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="Print the PDF (needs Chromium).")] = True,
) -> None:
    """Run one report: notebook, HTML, PDF, JSON, CSV and every table's evidence CSV under
    QERBEROS_HOME/reports/<id>/, its hash in the ledger.

    Exit code 1 when the report finds the ledger tampered with; 2 when it could not be produced (a PDF that
    could not be printed included: no Chromium, unless --no-pdf).
    """
    from pipelines.reports import STEPS, ReportRequest, run_report

    request_start, request_end = _instant(start, "start"), _instant(end, "end")
    with reported_errors():
        _check_database()  # before a kernel starts: an unreachable database is one line, not a failed cell
        request = ReportRequest(
            framework, request_start, request_end, organization, retention_days, source="cli", paper=paper, pdf=pdf
        )
        with _steps(len(STEPS)) as update:
            result = run_report(request, progress=update)
    manifest = result.manifest
    typer.echo(f"report {result.report_id}: {manifest['outcome']} (integrity {manifest['integrity']})")
    typer.echo(f"directory: {result.directory}")
    typer.echo(f"verdict: {manifest['verdict']}")
    typer.echo(f"sha256: {result.sha256} (ledger seq {manifest['ledgerEvent']['seq']})")
    if "report.pdf" not in manifest["outputs"]:
        typer.echo(f"pdf: {manifest['pdf']}", err=True)
    if manifest["outcome"] == "integrity_failed":
        typer.echo("LEDGER INTEGRITY FAILED: see the report's integrity section", err=True)
        raise typer.Exit(EXIT_REFUSED)


def subject(
    did: Annotated[str, typer.Argument(help="The data subject's sQuid DID.")],
    out: Annotated[Path, typer.Option(help="Where to write the bundle: a new or empty directory.")],
) -> None:
    """GDPR Art. 15: every event of one data subject, with inclusion proofs to a signed checkpoint, as a bundle
    the subject can verify (`qerberos report verify-subject`, or qerberos.verifier alone); the export is recorded
    in the ledger as gdpr.subject.exported."""
    from models.export import export_subject
    from models.ledger import Ledger
    from qerberos.settings import get_settings

    with reported_errors(), Ledger.from_settings(get_settings()) as ledger:
        events = export_subject(ledger, did, out, requested_by="cli")
        ledger.checkpoint(force=True)
    typer.echo(f"exported {events} events of {did} to {out}")


def verify_subject(
    bundle: Annotated[Path, typer.Argument(help="A bundle written by `qerberos report subject`.")],
    key: Annotated[
        list[str] | None, typer.Option(help="The log's verifier key you trust (repeatable); default: the bundle's.")
    ] = None,
) -> None:
    """Check a data subject's bundle with the stand-alone verifier. Exit 0 verified, 1 not, 2 unreadable."""
    from qerberos import verifier

    try:
        result = verifier.verify_subject_bundle(bundle, key or ())
    except verifier.VerificationError as exc:
        typer.echo(f"NOT VERIFIED: {exc}")
        raise typer.Exit(EXIT_REFUSED) from exc
    except OSError as exc:
        raise fail(f"cannot read bundle: {exc}") from exc
    typer.echo(f"verified: {result.events} events of {result.subject} in the tree of {result.tree_size}")


def _check_database() -> None:
    from models.ledger import Ledger
    from qerberos.settings import get_settings

    ledger = Ledger.from_settings(get_settings())
    try:
        ledger.size()
    finally:
        ledger.close()


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
    config: Annotated[Path | None, typer.Option(help="Schedule file [the reports.toml in force].")] = None,
    once: Annotated[bool, typer.Option("--once", help="Run what is due now, then exit.")] = False,
) -> None:
    """Run the reports of the schedule file on their cron expressions (serves /metrics on
    QERBEROS_SCHEDULER_METRICS_PORT); a run missed during downtime is caught up once."""
    from pipelines.schedule import Scheduler, load_schedule, serve_metrics
    from qerberos.logging import configure_logging
    from qerberos.package_data import config_file
    from qerberos.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_dir)
    with reported_errors():
        entries = load_schedule(config or config_file("reports.toml", settings))
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
