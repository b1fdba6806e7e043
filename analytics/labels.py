"""Ground truth on feature windows: which (identity, window) rows hold attack events."""

from __future__ import annotations

from typing import TypeVar

import polars as pl

from analytics.window_features import WINDOWS

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


def window_truth(ground_truth: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """Per (squid_id, window_start, window) holding attack events: the technique with the most events there
    (ties: the smallest technique id). ``ground_truth`` needs ``squid_id``, ``technique``, ``occurred_at``."""
    truth = ground_truth.lazy().select("squid_id", "technique", pl.col("occurred_at").cast(pl.Datetime("ms", "UTC")))
    per_window = [
        truth.with_columns(window_start=pl.col("occurred_at").dt.truncate(w), window=pl.lit(w, dtype=pl.String))
        for w in WINDOWS
    ]
    return (
        pl.concat(per_window)
        .group_by("squid_id", "window_start", "window", "technique")
        .agg(n=pl.len())
        .sort(["squid_id", "window_start", "window", "n", "technique"], descending=[False, False, False, True, False])
        .group_by("squid_id", "window_start", "window")
        .agg(pl.col("technique").first())
    )


def label_windows(features: FrameT, ground_truth: pl.DataFrame | pl.LazyFrame) -> FrameT:
    """``features`` plus ``label`` (Int8: 1 when the window contains any attack event of that identity) and
    ``technique`` (Utf8, null on negative windows). Row order is kept."""
    truth = window_truth(ground_truth)
    labelled = (
        features.lazy()
        .join(truth, on=["squid_id", "window_start", "window"], how="left", maintain_order="left")
        .with_columns(label=pl.col("technique").is_not_null().cast(pl.Int8))
    )
    columns = [*features.collect_schema().names(), "label", "technique"]
    labelled = labelled.select(columns)
    return labelled.collect() if isinstance(features, pl.DataFrame) else labelled
