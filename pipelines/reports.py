"""Run one compliance report: execute the notebook, render it, hash it, record the hash in the ledger.

Everything goes to ``QERBEROS_HOME/reports/<report id>/``:

- ``report.ipynb`` (the executed notebook), ``report.html`` (no code cells), ``report.pdf`` (headless
  Chromium, on A4 or Letter paper), ``summary.json`` and ``summary.csv``, and ``evidence/*.csv``: every table
  of the report, whole (``analytics.compliance.evidence_index``);
- ``evidence-manifest.json``: the RFC 8785 JSON of ``{"reportId", "framework", "period": {"startDate",
  "endDate"}, "outputs": {file: hex SHA-256}}`` (``hashed_content``), every output's hash;
- ``manifest.json``, written last: the outputs with their SHA-256, the report hash, the checkpoint the
  ledger was verified against, the configuration fingerprints and the ledger event that records the report.

The report hash is the SHA-256 of ``evidence-manifest.json``: one hash over every output, so none can be
changed afterwards. It is appended to the ledger as a ``compliance.report.generated`` event (layer
``qerberos``) whose ``ref`` is ``sha256:<report hash>`` (the ref is never erased; the details also carry
every output's hash). A failing cell, or a PDF that could not be printed (no Chromium, unless the request
says ``pdf=False``), keeps what was made, writes a manifest with outcome ``error`` and raises
``ReportError``; nothing is recorded in the ledger for a report that does not exist.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rfc8785
from prometheus_client import Counter, Gauge

from analytics.compliance import FRAMEWORKS, SUMMARY_CSV, SUMMARY_JSON, Period, RetentionPolicy, iso
from analytics.compliance.evidence_index import EVIDENCE_DIR
from analytics.config_file import read_toml
from models.ledger import Ledger
from models.records import Actor, LedgerRecord, NewEvent
from pipelines.scheduled_verification import VERIFICATION_FAILURES
from qerberos.errors import NotFoundError, QerberosError, ValidationError
from qerberos.package_data import config_file, notebook
from qerberos.settings import Settings, get_settings

logger = logging.getLogger(__name__)

NOTEBOOK = "compliance_report.ipynb"
EVENT_TYPE = "compliance.report.generated"
MANIFEST = "manifest.json"
EVIDENCE_MANIFEST = "evidence-manifest.json"
PAPERS = ("A4", "Letter")
OUTPUTS = {
    "ipynb": "report.ipynb",
    "html": "report.html",
    "pdf": "report.pdf",
    "json": SUMMARY_JSON,
    "csv": SUMMARY_CSV,
}
MEDIA_TYPES = {
    "ipynb": "application/x-ipynb+json",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
}
STEPS = ("execute notebook", "render HTML", "print PDF", "hash and record")
KERNEL = "python3"
PDF_TIMEOUT_SECONDS = 180
_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_EXTERNAL_SCRIPT = re.compile(
    r"<script[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>|<script type=\"module\">(?:(?!</script>).)*?"
    r"https?://(?:(?!</script>).)*?</script>",
    re.IGNORECASE | re.DOTALL,
)

Progress = Callable[[str, int, int], None]

REPORT_RUNS = Counter(
    "qerberos_report_runs_total",
    "Compliance report runs by framework and outcome (success, integrity_failed, error, skipped).",
    ["framework", "outcome"],
)
LAST_SUCCESS = Gauge(
    "qerberos_report_last_success_timestamp_seconds",
    "When a report of this framework last completed (Unix time).",
    ["framework"],
    multiprocess_mode="max",
)


class ReportError(QerberosError):
    """A report could not be produced; ``details`` names the report and where its notebook was kept."""


@dataclasses.dataclass(frozen=True, slots=True)
class ReportRequest:
    framework: str
    start: dt.datetime
    end: dt.datetime
    organization: str = ""
    retention_days: int | None = None  # overrides the configured default retention (``[retention]``)
    source: str = "cli"  # who asked, as the ledger spells it: ``cli``, ``local:<name>``, ``squid:<id>``
    actor: str = "qerberos"  # the sQuid identity recorded as the report's author
    paper: str | None = None  # A4 or Letter; None: ``QERBEROS_REPORT_PAPER``
    pdf: bool = True  # False: no PDF (and no failure for want of Chromium)

    def __post_init__(self) -> None:
        if self.framework not in FRAMEWORKS:
            raise ValidationError(f"unknown framework {self.framework!r}", details={"framework": list(FRAMEWORKS)})
        if self.paper is not None and self.paper not in PAPERS:
            raise ValidationError(f"unknown paper size {self.paper!r}", details={"paper": list(PAPERS)})
        Period(self.start, self.end)  # validates the bounds

    @property
    def period(self) -> Period:
        return Period(self.start, self.end)


@dataclasses.dataclass(frozen=True, slots=True)
class ReportResult:
    report_id: str
    directory: Path
    manifest: dict[str, Any]

    @property
    def sha256(self) -> str:
        return str(self.manifest["reportSha256"])

    @property
    def outcome(self) -> str:
        return str(self.manifest["outcome"])


def reports_dir(settings: Settings) -> Path:
    return settings.home / "reports"


def new_report_id(framework: str, now: dt.datetime | None = None) -> str:
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"{framework}-{moment:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def hashed_content(manifest: dict[str, Any]) -> bytes:
    """The bytes the report hash covers (see the module's docstring)."""
    content = {
        "reportId": manifest["reportId"],
        "framework": manifest["framework"],
        "period": manifest["period"],
        "outputs": {name: entry["sha256"] for name, entry in manifest["outputs"].items()},
    }
    return rfc8785.dumps(content)


def report_hash(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(hashed_content(manifest)).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_report(
    request: ReportRequest,
    settings: Settings | None = None,
    *,
    ledger: Ledger | None = None,
    progress: Progress | None = None,
    report_id: str | None = None,
    tracking_uri: str | None = None,
) -> ReportResult:
    """Produce one report (see the module's docstring); raises ``ReportError`` when a cell fails."""
    settings = settings or get_settings()
    report_id = report_id or new_report_id(request.framework)
    directory = reports_dir(settings) / report_id
    directory.mkdir(parents=True, exist_ok=False)
    notify = progress or (lambda _step, _done, _total: None)
    previous_manifest = latest_report(settings)
    previous = None if previous_manifest is None else previous_manifest["checkpoint"]["note"]
    manifest: dict[str, Any] = {
        "reportId": report_id,
        "framework": request.framework,
        "organization": request.organization,
        "period": request.period.to_json(),
        "requestedBy": request.source,
        "startedAt": iso(dt.datetime.now(dt.UTC)),
        "previousCheckpointSize": None if previous is None else int(previous.split("\n")[1]),
    }
    began = time.monotonic()
    try:
        if request.pdf and chromium() is None:  # said before the work, not after it
            raise ReportError(
                f"report {report_id} cannot print its PDF: no Chromium installed (make system-deps), or ask for "
                "no PDF (--no-pdf)",
                details={"reportId": report_id, "pdf": "not produced: no Chromium installed"},
            )
        notify(STEPS[0], 0, len(STEPS))
        _execute(request, settings, directory, report_id, previous_manifest, tracking_uri)
        notify(STEPS[1], 1, len(STEPS))
        summary = json.loads((directory / SUMMARY_JSON).read_text())
        _render_html(directory, summary["title"])
        notify(STEPS[2], 2, len(STEPS))
        pdf_note = _print_pdf(directory) if request.pdf else "not produced: not requested (--no-pdf)"
        if request.pdf and not (directory / OUTPUTS["pdf"]).exists():
            raise ReportError(
                f"report {report_id} has no PDF: {pdf_note}", details={"reportId": report_id, "pdf": pdf_note}
            )
    except ReportError as exc:
        manifest |= {"outcome": "error", "error": exc.details, "durationSeconds": round(time.monotonic() - began, 3)}
        _write_manifest(directory, manifest)
        REPORT_RUNS.labels(request.framework, "error").inc()
        raise
    notify(STEPS[3], 3, len(STEPS))
    integrity = summary["integrity"]
    manifest |= {
        "title": summary["title"],
        "verdict": summary["summary"]["verdict"],
        "outputs": _outputs(directory),
        "pdf": pdf_note,
        "paper": _paper(request, settings),
        "integrity": integrity["status"],
        "checkpoint": {"size": integrity["checkpoint"]["size"], "note": integrity["checkpoint"]["note"]},
        "configuration": summary["operations"]["configuration"],
        "evidenceManifest": EVIDENCE_MANIFEST,
        "hashAlgorithm": f"sha256 of {EVIDENCE_MANIFEST}: RFC 8785 JSON of {{reportId, framework, period, outputs: "
        "{file: sha256}}",
    }
    (directory / EVIDENCE_MANIFEST).write_bytes(hashed_content(manifest))
    manifest["reportSha256"] = sha256_file(directory / EVIDENCE_MANIFEST)
    record = _record(request, manifest, settings, ledger)
    outcome = "integrity_failed" if integrity["status"] == "failed" else "success"
    manifest |= {
        "outcome": outcome,
        "ledgerEvent": {"id": str(record.id), "seq": record.seq, "type": EVENT_TYPE},
        "generatedAt": summary["generatedAt"],
        "durationSeconds": round(time.monotonic() - began, 3),
    }
    _write_manifest(directory, manifest)
    REPORT_RUNS.labels(request.framework, outcome).inc()
    if outcome == "integrity_failed":
        VERIFICATION_FAILURES.inc()
    LAST_SUCCESS.labels(request.framework).set(time.time())
    notify("done", len(STEPS), len(STEPS))
    logger.info("report %s: %s, sha256 %s, ledger seq %d", report_id, outcome, manifest["reportSha256"], record.seq)
    return ReportResult(report_id, directory, manifest)


def _outputs(directory: Path) -> dict[str, dict[str, Any]]:
    """Every output (the formats, then the evidence files) with its format, SHA-256 and size."""
    files = [(OUTPUTS[fmt], fmt) for fmt in OUTPUTS if (directory / OUTPUTS[fmt]).exists()]
    files += [
        (path.relative_to(directory).as_posix(), "csv") for path in sorted((directory / EVIDENCE_DIR).glob("*.csv"))
    ]
    return {
        name: {"format": fmt, "sha256": sha256_file(directory / name), "bytes": (directory / name).stat().st_size}
        for name, fmt in files
    }


def _paper(request: ReportRequest, settings: Settings) -> str:
    return request.paper or settings.report_paper


def retention_policy(retention_days: int | None, config: Path | None = None) -> RetentionPolicy:
    """The ``[retention]`` table of the reports' configuration (``default_days``, ``[retention.modules]``:
    days per module), with ``retention_days`` in place of its default when given."""
    table = read_toml(config or config_file("reports.toml"), "reports").get("retention", {})
    try:
        default = table.get("default_days") if retention_days is None else retention_days
        modules = {str(module): int(days) for module, days in table.get("modules", {}).items()}
        return RetentionPolicy(None if default is None else int(default), modules)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValidationError(f"bad [retention] in the reports' configuration: {exc}") from exc


def _execute(
    request: ReportRequest,
    settings: Settings,
    directory: Path,
    report_id: str,
    previous: dict[str, Any] | None,
    tracking_uri: str | None,
) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    policy = retention_policy(request.retention_days)
    parameters = {
        "framework": request.framework,
        "start": iso(request.start),
        "end": iso(request.end),
        "database_url": settings.database_url,
        "tracking_uri": settings.mlflow_tracking_uri if tracking_uri is None else tracking_uri,
        "organization": request.organization,
        "output_dir": str(directory),
        "previous_checkpoint": "" if previous is None else previous["checkpoint"]["note"],
        "previous_report": "" if previous is None else previous["reportId"],
        "previous_configuration": json.dumps(previous["configuration"])
        if previous and "configuration" in previous
        else "",
        "report_id": report_id,
        "qerberos_home": str(settings.home),
        "retention": json.dumps(policy.to_json()) if policy.configured else "",
        "paper": _paper(request, settings),
    }
    try:
        papermill.execute_notebook(
            str(notebook(NOTEBOOK)),
            str(directory / OUTPUTS["ipynb"]),
            parameters=parameters,
            kernel_name=KERNEL,
            progress_bar=False,
            cwd=str(directory),
        )
    except PapermillExecutionError as exc:
        logger.error("report %s: cell %s failed: %s: %s", report_id, exc.exec_count, exc.ename, exc.evalue)
        raise ReportError(
            f"report {report_id} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}",
            details={"reportId": report_id, "notebook": str(directory / OUTPUTS["ipynb"]), "cell": exc.exec_count,
                     "ename": exc.ename, "evalue": exc.evalue},
        ) from exc  # fmt: skip
    except Exception as exc:  # the kernel could not start, the notebook could not be read or written
        raise ReportError(
            f"report {report_id} could not run: {exc.__class__.__name__}: {exc}",
            details={"reportId": report_id, "notebook": str(directory / OUTPUTS["ipynb"])},
        ) from exc
    if not (directory / SUMMARY_JSON).exists():
        raise ReportError(f"report {report_id} wrote no summary", details={"reportId": report_id})


def _render_html(directory: Path, title: str) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    # nbconvert's exporter constructor and nbformat.read carry no type hints.
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)  # type: ignore[no-untyped-call]
    notebook = nbformat.read(directory / OUTPUTS["ipynb"], as_version=4)  # type: ignore[no-untyped-call]
    notebook.metadata["title"] = title  # the HTML's <title>, which Chromium makes the PDF's title
    for cell in notebook.cells:  # library warnings on stderr belong in the executed notebook, not the report
        cell["outputs"] = [out for out in cell.get("outputs", []) if out.get("name") != "stderr"]
    body, _ = exporter.from_notebook_node(notebook)
    # The report reads offline: no script from a CDN (nothing in it needs one; Chromium would wait for it).
    (directory / OUTPUTS["html"]).write_text(_EXTERNAL_SCRIPT.sub("", body), encoding="utf-8")


def chromium() -> str | None:
    return next((found for name in _CHROMIUM_NAMES if (found := shutil.which(name))), None)


def _print_pdf(directory: Path) -> str:
    """Print the HTML with headless Chromium; returns how (or why not)."""
    browser = chromium()
    if browser is None:
        logger.warning("no Chromium found: the report has no PDF")
        return "not produced: no Chromium installed"
    target = directory / OUTPUTS["pdf"]
    with tempfile.TemporaryDirectory(prefix="qerberos-chromium-") as profile:
        command = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--no-pdf-header-footer", f"--user-data-dir={profile}",
            f"--print-to-pdf={target}", (directory / OUTPUTS["html"]).resolve().as_uri(),
        ]  # fmt: skip
        try:
            completed = subprocess.run(
                command, capture_output=True, timeout=PDF_TIMEOUT_SECONDS, check=False,
                env={**os.environ, "HOME": profile}, cwd=profile,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            logger.error("Chromium did not print the report within %d s", PDF_TIMEOUT_SECONDS)
            target.unlink(missing_ok=True)
            return f"not produced: Chromium timed out after {PDF_TIMEOUT_SECONDS} s"
    if completed.returncode != 0 or not target.exists() or target.stat().st_size == 0:
        logger.error("Chromium failed (%d): %s", completed.returncode, completed.stderr.decode(errors="replace")[-500:])
        target.unlink(missing_ok=True)
        return f"not produced: Chromium exited with {completed.returncode}"
    return f"printed by {Path(browser).name} headless"


def _record(
    request: ReportRequest, manifest: dict[str, Any], settings: Settings, ledger: Ledger | None
) -> LedgerRecord:
    """Append the report's event to ``ledger`` (none: one opened from ``settings``); the appended record."""
    owned = ledger is None
    ledger = ledger or Ledger.from_settings(settings)
    try:
        return ledger.append([_report_event(request, manifest)])[0].record
    finally:
        if owned:  # a command, not the service: no checkpointer will sign the report's event
            with contextlib.closing(ledger):
                ledger.checkpoint(force=True)


def _report_event(request: ReportRequest, manifest: dict[str, Any]) -> NewEvent:
    return NewEvent(
        type=EVENT_TYPE,
        ref=f"sha256:{manifest['reportSha256']}",
        actor=Actor(request.actor),
        layer="qerberos",
        verdict="WARN" if manifest["integrity"] == "failed" else "ALLOW",
        source=request.source,
        details={
            "reportId": manifest["reportId"],
            "framework": manifest["framework"],
            "period": manifest["period"],
            "sha256": manifest["reportSha256"],
            "outputs": {name: entry["sha256"] for name, entry in manifest["outputs"].items()},
            "integrity": manifest["integrity"],
            "checkpointSize": manifest["checkpoint"]["size"],
        },
    )


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    temporary = directory / f".{MANIFEST}.tmp"
    temporary.write_text(json.dumps(manifest, indent=2) + "\n")
    temporary.replace(directory / MANIFEST)


# -- the reports on disk -----------------------------------------------------------------------------


def list_reports(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every report's manifest, newest first (a report without a manifest is still running)."""
    root = reports_dir(settings or get_settings())
    manifests = []
    for path in root.glob(f"*/{MANIFEST}"):
        try:
            manifests.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            logger.warning("unreadable manifest %s", path)
    return sorted(manifests, key=lambda m: (m.get("startedAt", ""), m.get("reportId", "")), reverse=True)


def load_manifest(report_id: str, settings: Settings | None = None) -> dict[str, Any]:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", report_id) or report_id.startswith("."):
        raise NotFoundError(f"no report {report_id!r}")
    path = reports_dir(settings or get_settings()) / report_id / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise NotFoundError(f"no report {report_id!r}") from exc
    return manifest


def output_path(report_id: str, fmt: str, settings: Settings | None = None) -> Path:
    """The file of one format of a finished report (``NotFoundError`` when it has none)."""
    settings = settings or get_settings()
    manifest = load_manifest(report_id, settings)
    name = OUTPUTS.get(fmt)
    if name is None or name not in manifest.get("outputs", {}):
        raise NotFoundError(f"report {report_id} has no {fmt} output", details={"format": fmt})
    return reports_dir(settings) / report_id / name


def find_report(framework: str, period: Period, settings: Settings | None = None) -> dict[str, Any] | None:
    """The newest finished report of this framework and exact period, if any."""
    wanted = period.to_json()
    for manifest in list_reports(settings):
        if (
            manifest.get("framework") == framework
            and manifest.get("period") == wanted
            and manifest.get("outcome") in ("success", "integrity_failed")
        ):
            return manifest
    return None


def latest_report(settings: Settings | None = None) -> dict[str, Any] | None:
    """The manifest of the newest finished report: the next report proves consistency from its checkpoint and
    compares the configuration with its fingerprints."""
    for manifest in list_reports(settings):
        if (manifest.get("checkpoint") or {}).get("note"):
            return manifest
    return None
