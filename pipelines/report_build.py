"""Build one compliance report's numbers from the stores: read the period's events and what the sections read
besides (``models.reader.LedgerReader``, the alert, risk and identity stores), check the ledger's integrity, ask
the MLflow registry for the detector in service and its promotions, fingerprint the configuration files, and
compute every section (``analytics.compliance``). Retention is evaluated at the generation time.

Integrity first: the whole ledger re-verified, the signed checkpoint it was checked against, and a consistency
proof from the previous report's checkpoint to this one (history was only appended). Signatures and proofs are
checked with the stand-alone auditor's verifier (``qerberos.verifier``), not with the code that produced them. A
ledger that does not verify gets no new checkpoint: signing over tampered history would lend it authority.

``build_report`` is what the notebook calls.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Mapping

import polars as pl

from analytics.compliance.activity import summarise_activity
from analytics.compliance.controls import FRAMEWORKS, evaluate
from analytics.compliance.evidence import FAILED, NO_EVIDENCE, PASSED, Check, Status
from analytics.compliance.gdpr import summarise_gdpr
from analytics.compliance.inputs import Evidence
from analytics.compliance.integrity import ConsistencyResult, IntegrityResult
from analytics.compliance.operations import PROMOTION_SCHEMA, summarise_operations
from analytics.compliance.period import Period
from analytics.compliance.report import ComplianceReport
from analytics.compliance.retention import RetentionPolicy, evaluate_retention
from analytics.compliance.security import summarise_security
from models.alerts import AlertStore
from models.identities import list_identities
from models.ledger import Ledger
from models.reader import LedgerReader
from models.risk_store import RiskStore
from models.verification import verify_ledger
from qerberos import verifier
from qerberos.errors import QerberosError, ValidationError
from qerberos.package_data import CONFIG_FILES, config_file

logger = logging.getLogger(__name__)
DETECTOR_MODEL = "qerberos-detector"


def build_report(
    ledger: Ledger,
    *,
    framework: str,
    start: str | dt.datetime,
    end: str | dt.datetime,
    organization: str = "",
    report_id: str = "",
    previous_checkpoint: str | None = None,
    retention: RetentionPolicy | None = None,
    tracking_uri: str = "",
    previous_report: str | None = None,
    previous_configuration: Mapping[str, str] | None = None,
) -> ComplianceReport:
    """``previous_report`` and ``previous_configuration``: the newest earlier report's id and the configuration
    fingerprints it recorded (what configuration changes are measured against)."""
    if framework not in FRAMEWORKS:
        raise ValidationError(f"unknown framework {framework!r}", details={"framework": ", ".join(FRAMEWORKS)})
    period = Period.parse(start, end)
    generated_at = dt.datetime.now(dt.UTC)
    integrity = check_integrity(ledger, previous_checkpoint)
    reader = LedgerReader(ledger.engine)
    events = reader.between(period.start_ms, period.end_ms)
    activity = summarise_activity(events, period)
    security = summarise_security(
        AlertStore(ledger.engine), RiskStore(ledger.engine), reader, events, period, generated_at
    )
    gdpr = summarise_gdpr(reader, events, period)
    kept = evaluate_retention(reader, retention or RetentionPolicy(None), generated_at)
    operations = summarise_operations(
        events,
        period,
        promotions=detector_promotions(tracking_uri),
        configuration=configuration_fingerprints(),
        previous_configuration=previous_configuration,
        previous_report=previous_report,
    )
    evidence = Evidence(
        period, generated_at, events, integrity, activity, security, gdpr, kept, operations,
        local_identities(ledger), detector_in_service(tracking_uri),
    )  # fmt: skip
    return ComplianceReport(
        report_id=report_id,
        framework=framework,
        organization=organization,
        period=period,
        generated_at=generated_at,
        integrity=integrity,
        activity=activity,
        security=security,
        gdpr=gdpr,
        retention=kept,
        operations=operations,
        controls=evaluate(framework, evidence),
    )


def configuration_fingerprints() -> dict[str, str]:
    """The SHA-256 of each configuration file in force (``QERBEROS_CONFIG_DIR``'s or the packaged default), by
    file name: what the report fingerprints for change management (CC8.1)."""
    return {name: hashlib.sha256(config_file(name).read_bytes()).hexdigest() for name in sorted(CONFIG_FILES)}


def local_identities(ledger: Ledger) -> pl.DataFrame | None:
    """qerberos's own callers (``models.identities``), without their credentials; None without the table."""
    try:
        found = list_identities(ledger.engine)
    except QerberosError:
        return None
    return pl.DataFrame(
        [(i.name, i.squid_id, i.permissions, i.created_at_ms, i.disabled) for i in found],
        schema={"name": pl.String(), "squid_id": pl.String(), "permissions": pl.String(),
                "created_at_ms": pl.Int64(), "disabled": pl.Boolean()},
        orient="row",
    ).with_columns(created_at=pl.col("created_at_ms").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")).drop(
        "created_at_ms"
    )  # fmt: skip


def detector_promotions(tracking_uri: str) -> pl.DataFrame | None:
    """Every champion promotion of the detector (``PROMOTION_SCHEMA``); None when the registry is not there."""
    if not tracking_uri:
        return None
    try:
        from pipelines.model_registry import MODEL_NAME, champion_history, client

        registry = client(tracking_uri)
        rows = []
        for version in dict.fromkeys(champion_history(tracking_uri)):
            tags = registry.get_model_version(MODEL_NAME, version).tags
            rows.append((version, tags.get("champion_since"), tags.get("promotion_reason"),
                         tags.get("promotion_forced") == "true", tags.get("previous_champion")))  # fmt: skip
    except Exception as exc:  # any registry failure: the evidence is missing
        logger.info("no detector promotions at %s: %s", tracking_uri, exc.__class__.__name__)
        return None
    return pl.DataFrame(rows, schema=PROMOTION_SCHEMA, orient="row")


def detector_in_service(tracking_uri: str) -> Check:
    """The anomaly detector's champion in the MLflow registry (no tracking URI: no evidence)."""
    name, evidence = "anomaly detector in service", f"MLflow registry: {DETECTOR_MODEL}@champion"
    criterion = "a champion detector version is registered and serves live detection"
    query = f"MLflow registry: get_model_version_by_alias({DETECTOR_MODEL!r}, 'champion')"
    if not tracking_uri:
        return Check(name, evidence, NO_EVIDENCE, "no MLflow tracking URI given to the report", criterion, query)
    try:
        from mlflow.tracking import MlflowClient

        version = MlflowClient(tracking_uri).get_model_version_by_alias(DETECTOR_MODEL, "champion")
    except Exception as exc:  # any registry failure: the evidence is missing
        logger.info("no detector champion at %s: %s", tracking_uri, exc.__class__.__name__)
        return Check(name, evidence, NO_EVIDENCE, "no champion detector registered", criterion, query)
    return Check(name, evidence, PASSED, f"version {version.version} in service", criterion, query)


def check_integrity(ledger: Ledger, previous_checkpoint: str | None = None) -> IntegrityResult:
    report = verify_ledger(ledger)
    keys = ledger.verifier_keys()
    if report.intact:
        note: str | None = ledger.checkpoint(force=True)
    else:
        logger.error("ledger does not verify at seq %s: %s", report.first_bad_seq, report.problem)
        notes = ledger.checkpoints()
        note = notes[-1] if notes else None
    checkpoint, checkpoint_status, checkpoint_detail = _check_checkpoint(note, keys, ledger.origin, report.size)
    if not report.intact and checkpoint_status == PASSED:
        checkpoint_detail += "; the newest stored checkpoint, no new one was signed over a ledger that fails"
    consistency = _check_consistency(ledger, keys, previous_checkpoint, checkpoint)
    return IntegrityResult(
        intact=report.intact,
        ledger_size=report.size,
        first_bad_seq=report.first_bad_seq,
        problem=report.problem,
        checkpoints_checked=report.checkpoints_checked,
        checkpoint_note=note,
        checkpoint_size=None if checkpoint is None else checkpoint.size,
        checkpoint_root=None if checkpoint is None else checkpoint.root_hash,
        checkpoint_status=checkpoint_status,
        checkpoint_detail=checkpoint_detail,
        consistency=consistency,
    )


def _check_checkpoint(
    note: str | None, keys: list[str], origin: str, verified_size: int
) -> tuple[verifier.Checkpoint | None, Status, str]:
    if note is None:
        return None, NO_EVIDENCE, "the ledger holds no signed checkpoint"
    try:
        checkpoint = verifier.verify_checkpoint(note, keys, origin)
    except verifier.VerificationError as exc:
        return None, FAILED, f"the checkpoint does not verify: {exc.reason}"
    detail = f"signed checkpoint of {origin} at size {checkpoint.size}, signature verified"
    if checkpoint.size > verified_size:
        detail += f" ({checkpoint.size - verified_size} events appended while the ledger was being verified)"
    return checkpoint, PASSED, detail


def _check_consistency(
    ledger: Ledger, keys: list[str], previous: str | None, current: verifier.Checkpoint | None
) -> ConsistencyResult:
    if not previous or not previous.strip():
        return ConsistencyResult(NO_EVIDENCE, None, None, "no previous report checkpoint: first report")
    try:
        before = verifier.verify_checkpoint(previous, keys, ledger.origin)
    except verifier.VerificationError as exc:
        return ConsistencyResult(FAILED, None, None, f"the previous report's checkpoint does not verify: {exc.reason}")
    if current is None:
        return ConsistencyResult(NO_EVIDENCE, before.size, None, "no verified checkpoint to prove consistency to")
    if before.size > current.size:
        return ConsistencyResult(
            FAILED, before.size, current.size, "the previous checkpoint is larger than the ledger: history was cut"
        )
    try:
        proof = ledger.consistency_proof(before.size, current.size)
        verifier.verify_consistency(before.size, current.size, before.root_hash, current.root_hash, proof.proof)
    except verifier.VerificationError as exc:
        return ConsistencyResult(FAILED, before.size, current.size, f"consistency proof fails: {exc.reason}")
    except QerberosError as exc:
        return ConsistencyResult(FAILED, before.size, current.size, f"no consistency proof: {exc.message}")
    return ConsistencyResult(
        PASSED,
        before.size,
        current.size,
        f"the ledger at {current.size} extends the previous report's ledger at {before.size}: only appended",
    )
