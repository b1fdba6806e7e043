"""A seeded generator of labelled feature frames (the feature pipeline's columns) with planted attacks.

Normal windows follow per-identity habits; attack windows shift the features each technique moves
(brute force: denials and fail-then-success; valid-account misuse: odd hours, new places; bulk reads:
volume, new refs, rate; permission probing: denials over many refs).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from analytics.detectors import FEATURE_COLUMNS

TECHNIQUES = ("T1110", "T1078", "T1530", "T1069")


def synthetic_features(rows: int = 2000, *, seed: int = 0, attack_share: float = 0.03) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    identities = max(rows // 20, 1)
    who = rng.integers(0, identities, rows)
    habit = rng.lognormal(1.5, 0.5, identities)[who]
    count = rng.poisson(habit) + 1
    features = {
        "event_count": count.astype(np.float64),
        "distinct_refs": np.minimum(count, rng.poisson(habit * 0.4) + 1).astype(np.float64),
        "distinct_layers": rng.integers(1, 4, rows).astype(np.float64),
        "deny_ratio": rng.beta(1, 40, rows),
        "warn_ratio": rng.beta(1, 60, rows),
        "off_hours_share": rng.beta(1, 12, rows),
        "new_ref_share": rng.beta(1, 15, rows),
        "rate_vs_baseline": rng.lognormal(0.0, 0.25, rows),
        "peer_deviation": np.abs(rng.normal(0, 1, rows)),
        "fail_then_success": rng.poisson(0.03, rows).astype(np.float64),
        "new_country_count": rng.poisson(0.01, rows).astype(np.float64),
        "new_ip_count": rng.poisson(0.05, rows).astype(np.float64),
    }
    attacked = rng.random(rows) < attack_share
    technique = np.where(attacked, rng.choice(TECHNIQUES, rows), None)
    for name in TECHNIQUES:
        at = technique == name
        n = int(at.sum())
        if name == "T1110":
            features["event_count"][at] *= rng.uniform(4, 10, n)
            features["deny_ratio"][at] = rng.uniform(0.6, 0.95, n)
            features["fail_then_success"][at] = rng.integers(1, 4, n)
        elif name == "T1078":
            features["off_hours_share"][at] = rng.uniform(0.7, 1.0, n)
            features["new_country_count"][at] = rng.integers(1, 3, n)
            features["new_ip_count"][at] = rng.integers(1, 4, n)
        elif name == "T1530":
            features["event_count"][at] *= rng.uniform(8, 20, n)
            features["distinct_refs"][at] *= rng.uniform(8, 20, n)
            features["new_ref_share"][at] = rng.uniform(0.6, 1.0, n)
            features["rate_vs_baseline"][at] = rng.uniform(8, 20, n)
        else:
            features["deny_ratio"][at] = rng.uniform(0.5, 0.9, n)
            features["distinct_refs"][at] *= rng.uniform(5, 10, n)
            features["peer_deviation"][at] = rng.uniform(4, 8, n)
    start = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    return pl.DataFrame(
        {
            "squid_id": [f"squid-{i:04d}" for i in who],
            "window_start": [start + dt.timedelta(hours=int(h)) for h in rng.integers(0, 24 * 28, rows)],
            "window": ["1h"] * rows,
            **{name: features[name] for name in FEATURE_COLUMNS},
            "label": attacked.astype(np.int8),
            "technique": list(technique),
        },
        schema_overrides={"window_start": pl.Datetime("ms", "UTC"), "technique": pl.Utf8, "label": pl.Int8},
    )
