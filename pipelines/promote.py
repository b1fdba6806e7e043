"""Promotion and rollback of ``qerberos-detector`` through MLflow 3 aliases (no stages).

The gate: a candidate replaces the champion only when, measured on the same evaluation data, it is not
worse on PR-AUC nor on ROC-AUC and strictly better on at least one of them. "The same data" means the
runs' ``eval_data_sha256`` tags are equal, or both versions are re-scored here on a table the caller gives.
A candidate with no champion to beat is promoted if it has evaluation metrics. ``force`` skips the gate
and needs a reason; the reason, the metrics and who was replaced are kept as tags on the version.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping

import polars as pl

from analytics.evaluation import evaluate_scores
from pipelines.model_registry import (
    CHALLENGER,
    MODEL_NAME,
    champion_history,
    champion_version,
    client,
    load_version,
    set_champion,
)
from qerberos.errors import NotFoundError, ValidationError

__all__ = ["GATE_METRICS", "PromotionDecision", "VersionSummary", "beats", "list_versions", "promote", "rollback"]

logger = logging.getLogger(__name__)

GATE_METRICS = ("pr_auc", "roc_auc")


@dataclasses.dataclass(frozen=True, slots=True)
class PromotionDecision:
    version: str
    previous: str | None
    promoted: bool
    reason: str
    candidate: Mapping[str, float]
    champion: Mapping[str, float]


@dataclasses.dataclass(frozen=True, slots=True)
class VersionSummary:
    version: str
    aliases: tuple[str, ...]
    run_id: str
    metrics: Mapping[str, float]
    eval_data_sha256: str | None


def beats(candidate: Mapping[str, float], champion: Mapping[str, float]) -> tuple[bool, str]:
    """The gate: not worse on any of ``GATE_METRICS`` and strictly better on at least one."""
    missing = [m for m in GATE_METRICS if m not in candidate or m not in champion]
    if missing:
        return False, f"metrics missing: {', '.join(missing)}"
    worse = [m for m in GATE_METRICS if candidate[m] < champion[m]]
    if worse:
        return False, "worse on " + ", ".join(f"{m} ({candidate[m]:.4f} < {champion[m]:.4f})" for m in worse)
    better = [m for m in GATE_METRICS if candidate[m] > champion[m]]
    if not better:
        return False, "no better than the champion on " + ", ".join(GATE_METRICS)
    return True, "better on " + ", ".join(f"{m} ({candidate[m]:.4f} > {champion[m]:.4f})" for m in better)


def _summary(tracking_uri: str, version: str) -> VersionSummary:
    registry = client(tracking_uri)
    try:
        model_version = registry.get_model_version(MODEL_NAME, version)
    except Exception as exc:  # MlflowException, wrapped at the boundary
        raise NotFoundError(f"no version {version} of {MODEL_NAME}") from exc
    run_id = model_version.run_id
    if run_id is None:  # registered from a path rather than a run: no metrics to compare
        raise NotFoundError(f"version {version} of {MODEL_NAME} has no training run")
    run = registry.get_run(run_id)
    return VersionSummary(
        version=str(version),
        aliases=tuple(model_version.aliases),
        run_id=run_id,
        metrics=dict(run.data.metrics),
        eval_data_sha256=run.data.tags.get("eval_data_sha256"),
    )


def list_versions(tracking_uri: str) -> list[VersionSummary]:
    """Every registered version, newest first, with its aliases and evaluation metrics."""
    versions = client(tracking_uri).search_model_versions(f"name = '{MODEL_NAME}'")
    numbers = sorted((str(v.version) for v in versions), key=int, reverse=True)
    return [_summary(tracking_uri, v) for v in numbers]


def _candidate(tracking_uri: str, version: str | None) -> str:
    if version is not None:
        return version
    registry = client(tracking_uri)
    try:
        return str(registry.get_model_version_by_alias(MODEL_NAME, CHALLENGER).version)
    except Exception:
        versions = list_versions(tracking_uri)
        if not versions:
            raise NotFoundError(f"no registered versions of {MODEL_NAME}") from None
        return versions[0].version


def _rescore(tracking_uri: str, version: str, evaluation: pl.DataFrame, label: str) -> dict[str, float]:
    detector = load_version(tracking_uri, version)
    report = evaluate_scores(detector.score(evaluation), evaluation[label].fill_null(0).to_numpy())
    return {"roc_auc": report.roc_auc, "pr_auc": report.pr_auc}


def promote(
    tracking_uri: str,
    version: str | None = None,
    *,
    force: bool = False,
    reason: str | None = None,
    evaluation: pl.DataFrame | None = None,
    label: str = "label",
) -> PromotionDecision:
    """Move ``champion`` to ``version`` (default: the ``challenger``, else the newest) if it passes the gate."""
    if force and not (reason and reason.strip()):
        raise ValidationError("--force needs a --reason")
    candidate = _summary(tracking_uri, _candidate(tracking_uri, version))
    current = champion_version(tracking_uri)
    champion = _summary(tracking_uri, current) if current is not None else None
    if champion is not None and champion.version == candidate.version:
        return PromotionDecision(
            candidate.version, current, False, "already champion", candidate.metrics, champion.metrics
        )
    candidate_metrics = dict(candidate.metrics)
    champion_metrics = dict(champion.metrics) if champion else {}
    if evaluation is not None:
        candidate_metrics = _rescore(tracking_uri, candidate.version, evaluation, label)
        if champion is not None:
            champion_metrics = _rescore(tracking_uri, champion.version, evaluation, label)
    if force:
        ok, why = True, f"forced: {reason}"
    else:
        ok, why = _gate(candidate, champion, candidate_metrics, champion_metrics, rescored=evaluation is not None)
    decision = PromotionDecision(candidate.version, current, ok, why, candidate_metrics, champion_metrics)
    if not ok:
        logger.info("version %s not promoted: %s", candidate.version, why)
        return decision
    tags = {
        "promotion_reason": why[:4000],
        "promotion_forced": str(force).lower(),
        "previous_champion": current or "",
        "promotion_metrics": json.dumps({k: candidate_metrics.get(k) for k in GATE_METRICS}),
    }
    set_champion(tracking_uri, candidate.version, tags=tags)
    return decision


def _gate(
    candidate: VersionSummary,
    champion: VersionSummary | None,
    candidate_metrics: dict[str, float],
    champion_metrics: dict[str, float],
    *,
    rescored: bool,
) -> tuple[bool, str]:
    """Whether the candidate may replace the champion (none yet: whether it was evaluated), and why."""
    if champion is None:
        ok = all(m in candidate_metrics for m in GATE_METRICS)
        return ok, "first champion" if ok else "candidate has no evaluation metrics"
    if not rescored and candidate.eval_data_sha256 != champion.eval_data_sha256:
        return False, "candidate and champion were evaluated on different data: pass an evaluation table"
    return beats(candidate_metrics, champion_metrics)


def rollback(tracking_uri: str, *, reason: str = "rollback") -> str:
    """Return ``champion`` to the previous champion in the history; the version it now points at."""
    history = champion_history(tracking_uri)
    current = champion_version(tracking_uri)
    if current is None:
        raise NotFoundError("nothing to roll back to: no version is champion yet")
    if len(history) < 2:
        raise NotFoundError(f"nothing to roll back to: version {current} is the oldest champion on record")
    previous = history[-2]
    client(tracking_uri).set_model_version_tag(MODEL_NAME, current, "rolled_back", reason[:4000])
    set_champion(tracking_uri, previous, tags={"restored_by_rollback_from": current}, rollback=True)
    logger.info("rolled back %s from version %s to %s", MODEL_NAME, current, previous)
    return previous
