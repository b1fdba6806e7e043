"""GDPR: access to personal data by identity, erasure requests carried out (Art. 17, from the ledger's
``gdpr.erasure`` events, each checked to have really removed the details), and the records of processing
(Art. 30), and the data subjects' access requests answered (Art. 15: ``gdpr.subject.exported`` events, which
``qerberos report subject`` records). Retention (Art. 5(1)(e)) is ``analytics.compliance.retention``.

What it reads of the ledger besides the period's events, it asks of a ``GdprSource`` (``models.reader.LedgerReader``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any, Protocol

import polars as pl

from analytics.compliance.period import Period
from models.records import ERASURE_TYPE

#: ``layer.type`` of events that read or disclose personal data (files, mail, wallet balances, identities,
#: exports); any type naming personal data or an export counts too.
PERSONAL_DATA_PATTERN = (
    r"^(qdrive\.(access|download|share)|qmail\.read|qwallet\.balance_check|squid\.identity_update)$"
    r"|personal|export|profile"
)
_DETAIL_SAMPLE = 2000
#: The ledger event ``qerberos report subject`` records for each export of one data subject's events.
SUBJECT_EXPORT_TYPE = "gdpr.subject.exported"


class GdprSource(Protocol):
    """What the GDPR section reads of the ledger (``models.reader.LedgerReader`` says what each returns)."""

    def erasures(self, start_ms: int, end_ms: int, erasure_type: str) -> pl.DataFrame: ...

    def details_texts(self, seqs: Iterable[int]) -> list[str]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Gdpr:
    personal_access: pl.DataFrame  # squid_id, accesses, resources, denied
    personal_access_count: int
    erasures: pl.DataFrame  # seq, occurred_at, squid_id, erased_events, article, source, details_left
    erased_events: int
    erasures_incomplete: int
    processing: pl.DataFrame  # Art. 30: layer, types, data_subjects, events, data_categories, erased
    subject_exports: pl.DataFrame  # Art. 15: occurred_at, squid_id (the subject), requested_by, ref, seq

    def to_json(self) -> dict[str, Any]:
        return {
            "personalDataAccesses": self.personal_access_count,
            "identitiesAccessingPersonalData": self.personal_access.height,
            "erasureRequests": self.erasures.height,
            "erasedEvents": self.erased_events,
            "erasuresIncomplete": self.erasures_incomplete,
            "processingActivities": self.processing.height,
            "subjectAccessExports": self.subject_exports.height,
        }


def summarise_gdpr(ledger: GdprSource, events: pl.DataFrame, period: Period) -> Gdpr:
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
    erasures = _erasures(ledger, period)
    return Gdpr(
        personal_access=personal_access,
        personal_access_count=personal.height,
        erasures=erasures,
        erased_events=int(erasures["erased_events"].sum()) if erasures.height else 0,
        erasures_incomplete=int((erasures["details_left"] > 0).sum()) if erasures.height else 0,
        processing=_processing(ledger, events),
        subject_exports=events.filter(pl.col("type") == SUBJECT_EXPORT_TYPE)
        .select(
            "occurred_at",
            subject=pl.col("ref").str.strip_prefix("identity:"),
            requested_by=pl.col("squid_id"),
            seq=pl.col("seq"),
        )
        .sort("occurred_at", "seq"),
    )


def personal_data_expr() -> pl.Expr:
    return pl.concat_str(pl.col("layer"), pl.lit("."), pl.col("type")).str.contains(PERSONAL_DATA_PATTERN)


def _erasures(ledger: GdprSource, period: Period) -> pl.DataFrame:
    """Each erasure and how many of the identity's earlier events still hold details (must be 0)."""
    stored = ledger.erasures(period.start_ms, period.end_ms, ERASURE_TYPE)
    records = []
    for seq, occurred_ms, squid_id, source, details, left in stored.iter_rows():
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


def _processing(ledger: GdprSource, events: pl.DataFrame) -> pl.DataFrame:
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
        categories[layer] = ", ".join(_detail_keys(ledger, list(sample)))
    return per_layer.drop("sample").with_columns(data_categories=pl.col("layer").replace_strict(categories, default=""))


def _detail_keys(ledger: GdprSource, seqs: list[int]) -> list[str]:
    if not seqs:
        return []
    keys: set[str] = set()
    for details in ledger.details_texts(seqs):
        try:
            body = json.loads(details)
        except ValueError:
            continue
        if isinstance(body, dict):
            keys.update(body)
    return sorted(keys)
