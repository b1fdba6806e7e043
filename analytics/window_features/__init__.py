"""Per-identity, per-window behaviour features: one definition (``definition.py``), computed over a whole event
frame (``batch.py``) or kept up to date event by event for live detection (``incremental.py``)."""

from analytics.window_features.batch import HashCollisionError, compute_features, features_to_parquet
from analytics.window_features.definition import (
    COUNT_COLUMNS,
    FEATURE_COLUMNS,
    FEATURE_SCHEMA,
    MIN_HISTORY_EVENTS,
    RATIO_COLUMNS,
    USUAL_HOUR_MIN_SHARE,
    WINDOW_MS,
    WINDOWS,
)
from analytics.window_features.incremental import FeatureRow, IncrementalFeatures, rows_from_events

__all__ = [
    "COUNT_COLUMNS",
    "FEATURE_COLUMNS",
    "FEATURE_SCHEMA",
    "MIN_HISTORY_EVENTS",
    "RATIO_COLUMNS",
    "USUAL_HOUR_MIN_SHARE",
    "WINDOWS",
    "WINDOW_MS",
    "FeatureRow",
    "HashCollisionError",
    "IncrementalFeatures",
    "compute_features",
    "features_to_parquet",
    "rows_from_events",
]
