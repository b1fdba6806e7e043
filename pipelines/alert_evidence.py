"""What an analyst looks at behind an alert (``notebooks/alert_investigation.ipynb``).

- The events behind it: the identity's events in the feature windows the alert covered (``explanation.windows``,
  else its ``window_start_ms``), read from the ledger (``models.reader.LedgerReader.between``).
- Each event's inclusion proof in the tree of the newest signed checkpoint, checked the way an outsider would:
  the checkpoint's signature against the log's verifier keys (``qerberos.verifier.verify_checkpoint``), then the
  proof from the event's leaf hash up to the checkpoint's root (``qerberos.verifier.verify_inclusion``).
- The identity's risk history (``models.risk_store.RiskStore.history``), oldest first.

``detect_backlog`` runs live detection over the events it has not processed yet, once, in the caller's process:
what gives a fresh home (simulated traffic ingested into its ledger) alerts to investigate.
"""

from __future__ import annotations

import logging

import polars as pl

from analytics.window_features import WINDOW_MS
from models.alerts import AlertStore, AlertView
from models.ledger import Ledger
from models.reader import LedgerReader
from models.risk_store import RiskStore
from pipelines.live_detection import LiveDetection
from pipelines.model_registry import ChampionWatcher
from qerberos import verifier
from qerberos.errors import NotFoundError

__all__ = ["alert_events", "alert_windows", "detect_backlog", "inclusion_checks", "pick_alert", "risk_history"]

logger = logging.getLogger(__name__)


def detect_backlog(ledger: Ledger, tracking_uri: str) -> int:
    """Run live detection (the champion, if there is one, and the rules) over every event it has not processed;
    how many events it read."""
    watcher = ChampionWatcher(tracking_uri)
    detection = LiveDetection(ledger, watcher, tracking_uri=tracking_uri)
    detection.refresh_model()
    read = 0
    try:
        while batch := detection.run_once():
            read += batch
    finally:
        detection.stop()
    logger.info("live detection read %d events (model %s)", read, "loaded" if detection.detector() else "none")
    return read


def pick_alert(store: AlertStore, alert_id: str | None = None) -> AlertView:
    """The alert ``alert_id``, else the active alert with the highest score (the newest among equals)."""
    if alert_id:
        return store.get(alert_id)
    active = store.list(status="active", limit=1000)
    if not active:
        raise NotFoundError("no active alert to investigate")
    return max(active, key=lambda alert: (alert.score, alert.created_at_ms))


def alert_windows(alert: AlertView) -> list[int]:
    """The starts (epoch ms) of the windows the alert covered, oldest first."""
    windows = [int(w) for w in alert.explanation.get("windows", [])]
    if not windows and alert.window_start_ms is not None:
        windows = [alert.window_start_ms]
    return sorted(set(windows))


def alert_events(reader: LedgerReader, alert: AlertView, window: str = "1h") -> pl.DataFrame:
    """The alert's identity's events in the windows it covered (``window`` long each), in ``seq`` order."""
    size = WINDOW_MS[window]
    frames = [reader.between(start, start + size) for start in alert_windows(alert)]
    if not frames:
        raise NotFoundError(f"alert {alert.id} names no window of evidence")
    return pl.concat(frames).filter(pl.col("squid_id") == alert.squid_id).unique("seq").sort("seq")


def inclusion_checks(ledger: Ledger, seqs: list[int]) -> pl.DataFrame:
    """One row per event: its inclusion proof in the newest checkpoint's tree, and whether it verified."""
    note = ledger.checkpoint(force=True)
    checkpoint = verifier.verify_checkpoint(note, ledger.verifier_keys(), ledger.origin)
    rows = []
    for seq in seqs:
        proof = ledger.inclusion_proof(seq, checkpoint.size)
        try:
            verifier.verify_inclusion(seq, checkpoint.size, proof.leaf_hash, proof.proof, checkpoint.root_hash)
            problem = None
        except verifier.VerificationError as exc:
            problem = exc.reason
        rows.append(
            {
                "seq": seq,
                "tree_size": checkpoint.size,
                "leaf_hash": proof.leaf_hash.hex(),
                "proof_hashes": len(proof.proof),
                "verified": problem is None,
                "problem": problem,
            }
        )
    schema = {"seq": pl.Int64, "tree_size": pl.Int64, "leaf_hash": pl.String, "proof_hashes": pl.Int64,
              "verified": pl.Boolean, "problem": pl.String}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def risk_history(store: RiskStore, identity: str, limit: int = 1000) -> pl.DataFrame:
    """The identity's risk assessments, oldest first: when, score, level, operation, the strongest factor."""
    records = list(reversed(store.history(identity, limit=limit)))
    return pl.DataFrame(
        {
            "computed_at": [r.computed_at_ms for r in records],
            "score": [r.score for r in records],
            "level": [r.level for r in records],
            "operation": [r.operation for r in records],
            "top_factor": [max(r.factors, key=lambda f: f[1] * f[2])[0] if r.factors else None for r in records],
        },
        schema={
            "computed_at": pl.Int64,
            "score": pl.Float64,
            "level": pl.String,
            "operation": pl.String,
            "top_factor": pl.String,
        },
    ).with_columns(pl.col("computed_at").cast(pl.Datetime("ms", "UTC")))
