"""GDPR: access to personal data by identity, erasure requests carried out (Art. 17, from the ledger's
``gdpr.erasure`` events, each checked to have really removed the details), and the records of processing
(Art. 30) with the retention status of the personal details still held."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import polars as pl
import sqlalchemy as sa

from analytics.compliance.period import Period, query
from models.records import ERASURE_TYPE

#: ``layer.type`` of events that read or disclose personal data (files, mail, wallet balances, identities,
#: exports); any type naming personal data or an export counts too.
PERSONAL_DATA_PATTERN = (
    r"^(qdrive\.(access|download|share)|qmail\.read|qwallet\.balance_check|squid\.identity_update)$"
    r"|personal|export|profile"
)
_DETAIL_SAMPLE = 2000


@dataclasses.dataclass(frozen=True, slots=True)
class Gdpr:
    personal_access: pl.DataFrame  # squid_id, accesses, resources, denied
    personal_access_count: int
    erasures: pl.DataFrame  # seq, occurred_at, squid_id, erased_events, article, source, details_left
    erased_events: int
    erasures_incomplete: int
    processing: pl.DataFrame  # Art. 30: layer, types, data_subjects, events, data_categories, erased
    retention_days: int | None
    oldest_details_days: float | None
    details_past_retention: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "personalDataAccesses": self.personal_access_count,
            "identitiesAccessingPersonalData": self.personal_access.height,
            "erasureRequests": self.erasures.height,
            "erasedEvents": self.erased_events,
            "erasuresIncomplete": self.erasures_incomplete,
            "processingActivities": self.processing.height,
            "retentionDays": self.retention_days,
            "oldestDetailsDays": None if self.oldest_details_days is None else round(self.oldest_details_days, 2),
            "detailsPastRetention": self.details_past_retention,
        }


def summarise_gdpr(engine: sa.Engine, events: pl.DataFrame, period: Period, retention_days: int | None) -> Gdpr:
    personal = events.filter(personal_data_expr())
    personal_access = (
        personal.group_by("squid_id")
        .agg(
            accesses=pl.len(),
            resources=pl.col("ref").n_unique(),
            denied=(pl.col("verdict") == "DENY").sum().cast(pl.Int64),
        )
        .sort(["accesses", "squid_id"], descending=[True, False])
    )
    erasures = _erasures(engine, period)
    oldest, past = _retention(engine, period, retention_days)
    return Gdpr(
        personal_access=personal_access,
        personal_access_count=personal.height,
        erasures=erasures,
        erased_events=int(erasures["erased_events"].sum()) if erasures.height else 0,
        erasures_incomplete=int((erasures["details_left"] > 0).sum()) if erasures.height else 0,
        processing=_processing(engine, events),
        retention_days=retention_days,
        oldest_details_days=oldest,
        details_past_retention=past,
    )


def personal_data_expr() -> pl.Expr:
    return pl.concat_str(pl.col("layer"), pl.lit("."), pl.col("type")).str.contains(PERSONAL_DATA_PATTERN)


def _erasures(engine: sa.Engine, period: Period) -> pl.DataFrame:
    """Each erasure and how many of the identity's earlier events still hold details (must be 0)."""
    rows = query(
        engine,
        "SELECT e.seq, e.occurred_at_ms, e.actor_squid_id, e.source, d.details, "
        "(SELECT COUNT(*) FROM ledger_entries o JOIN event_details od ON od.seq = o.seq "
        " WHERE o.actor_squid_id = e.actor_squid_id AND o.seq < e.seq AND o.type <> :kind) AS details_left "
        "FROM ledger_entries e LEFT JOIN event_details d ON d.seq = e.seq "
        "WHERE e.type = :kind AND e.occurred_at_ms >= :start AND e.occurred_at_ms < :end ORDER BY e.seq",
        kind=ERASURE_TYPE,
        start=period.start_ms,
        end=period.end_ms,
    )
    records = []
    for seq, occurred_ms, squid_id, source, details, left in rows:
        body = json.loads(details) if details else {}
        records.append(
            (seq, occurred_ms, squid_id, int(body.get("erasedEvents", 0)), str(body.get("article", "")), source, left)
        )
    schema = {
        "seq": pl.Int64(),
        "occurred_ms": pl.Int64(),
        "squid_id": pl.String(),
        "erased_events": pl.Int64(),
        "article": pl.String(),
        "source": pl.String(),
        "details_left": pl.Int64(),
    }
    frame = pl.DataFrame(records, schema=schema, orient="row")
    return frame.select(
        "seq",
        pl.col("occurred_ms").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC").alias("occurred_at"),
        *[name for name in schema if name not in ("seq", "occurred_ms")],
    )


def _processing(engine: sa.Engine, events: pl.DataFrame) -> pl.DataFrame:
    """Art. 30 records of processing per module: what is done, to how many data subjects, which data."""
    per_layer = (
        events.filter(pl.col("type") != ERASURE_TYPE)
        .group_by("layer")
        .agg(
            types=pl.col("type").unique().sort().str.join(", "),
            data_subjects=pl.col("squid_id").n_unique(),
            events=pl.len(),
            erased=(~pl.col("has_details")).sum().cast(pl.Int64),
            sample=pl.col("seq").filter(pl.col("has_details")).head(_DETAIL_SAMPLE // 10),
        )
        .sort("layer")
    )
    categories: dict[str, str] = {}
    for layer, sample in per_layer.select("layer", "sample").iter_rows():
        categories[layer] = ", ".join(_detail_keys(engine, list(sample)))
    return per_layer.drop("sample").with_columns(data_categories=pl.col("layer").replace_strict(categories, default=""))


def _detail_keys(engine: sa.Engine, seqs: list[int]) -> list[str]:
    if not seqs:
        return []
    placeholders = ", ".join(str(int(seq)) for seq in seqs)
    keys: set[str] = set()
    for (details,) in query(engine, f"SELECT details FROM event_details WHERE seq IN ({placeholders})"):
        try:
            body = json.loads(details)
        except ValueError:
            continue
        if isinstance(body, dict):
            keys.update(body)
    return sorted(keys)


def _retention(engine: sa.Engine, period: Period, retention_days: int | None) -> tuple[float | None, int | None]:
    """Age at the period's end of the oldest personal details still held, and how many are past retention."""
    oldest = query(
        engine,
        "SELECT MIN(e.occurred_at_ms) FROM ledger_entries e JOIN event_details d ON d.seq = e.seq "
        "WHERE e.occurred_at_ms < :end",
        end=period.end_ms,
    )[0][0]
    age = None if oldest is None else (period.end_ms - int(oldest)) / 86_400_000
    if retention_days is None:
        return age, None
    cutoff = period.end_ms - retention_days * 86_400_000
    past = query(
        engine,
        "SELECT COUNT(*) FROM ledger_entries e JOIN event_details d ON d.seq = e.seq WHERE e.occurred_at_ms < :cutoff",
        cutoff=cutoff,
    )[0][0]
    return age, int(past)
