"""Data gates (great-expectations, GX Core 1.x): a batch that fails its suite stops the run.

Two suites: ``raw_events`` for event frames (TEAM.md) and ``features`` for feature frames
(``analytics.window_features``). GX runs in an ephemeral context on ``frame.to_pandas()`` (GX has no Polars
datasource); its progress bars are switched off.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from analytics.window_features import COUNT_COLUMNS, FEATURE_COLUMNS, RATIO_COLUMNS
from qerberos.errors import QerberosError

logger = logging.getLogger(__name__)

RAW_EVENTS = "raw_events"
FEATURES = "features"
#: Events must have happened in this range (the Q ecosystem did not exist before; nothing comes from the future).
EARLIEST_EVENT = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
FUTURE_TOLERANCE = dt.timedelta(days=1)


class GateFailedError(QerberosError):
    """A batch did not meet its expectation suite; the message names each failing expectation and column."""


@dataclasses.dataclass(frozen=True, slots=True)
class GateResult:
    suite: str
    success: bool
    failing: tuple[str, ...]  # "ExpectationType(column)" for each failed expectation
    result_json: dict[str, Any]

    def raise_for_failure(self) -> None:
        if not self.success:
            raise GateFailedError(
                f"data gate {self.suite!r} failed: {', '.join(self.failing)}", details={"failing": list(self.failing)}
            )


def _gx() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    with warnings.catch_warnings():  # GX 1.24 imports the deprecated sre_constants
        warnings.simplefilter("ignore", DeprecationWarning)
        import great_expectations as gx

    return gx


def _raw_events_suite(gx: Any) -> list[Any]:
    e = gx.expectations
    now = dt.datetime.now(dt.UTC) + FUTURE_TOLERANCE
    return [
        *(
            e.ExpectColumnValuesToNotBeNull(column=c)
            for c in ("seq", "id", "type", "ref", "squid_id", "layer", "verdict", "occurred_at")
        ),
        e.ExpectColumnValuesToBeUnique(column="id"),
        e.ExpectColumnValuesToBeUnique(column="seq"),
        e.ExpectColumnValuesToBeIncreasing(column="seq", strictly=True),
        e.ExpectColumnValuesToBeInSet(column="verdict", value_set=["ALLOW", "DENY", "WARN"]),
        e.ExpectColumnValuesToBeBetween(column="occurred_at", min_value=EARLIEST_EVENT, max_value=now),
        e.ExpectColumnValuesToBeBetween(column="seq", min_value=0),
    ]


def _features_suite(gx: Any) -> list[Any]:
    e = gx.expectations
    return [
        *(e.ExpectColumnValuesToNotBeNull(column=c) for c in ("squid_id", "window_start", "window", *FEATURE_COLUMNS)),
        *(e.ExpectColumnValuesToBeBetween(column=c, min_value=0.0, max_value=1.0) for c in RATIO_COLUMNS),
        *(e.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in COUNT_COLUMNS),
        e.ExpectColumnValuesToBeBetween(column="event_count", min_value=1),
        # finite: NaN (made +inf before the check) and +-inf are not between finite bounds
        e.ExpectColumnValuesToBeBetween(column="rate_vs_baseline", min_value=0.0, max_value=1e12),
        e.ExpectColumnValuesToBeBetween(column="peer_deviation", min_value=-1e6, max_value=1e6),
    ]


SUITES: dict[str, Callable[[Any], list[Any]]] = {RAW_EVENTS: _raw_events_suite, FEATURES: _features_suite}


def _describe(result: dict[str, Any]) -> str:
    config = result.get("expectation_config", {})
    name = config.get("type", "unknown_expectation")
    column = config.get("kwargs", {}).get("column")
    return f"{name}({column})" if column else name


def run_gate(frame: pl.DataFrame | pl.LazyFrame, suite_name: str) -> GateResult:
    """Validate ``frame`` against the suite ``suite_name`` (``raw_events`` or ``features``)."""
    if suite_name not in SUITES:
        raise ValueError(f"unknown suite {suite_name!r}; known: {sorted(SUITES)}")
    data = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    floats = [c for c, t in data.schema.items() if t.is_float()]
    # pandas turns NaN into "missing": keep it visible to the bounds expectations as +inf
    data = data.with_columns(pl.col(c).fill_nan(float("inf")) for c in floats)
    gx = _gx()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    name = f"{suite_name}-{uuid.uuid4().hex[:8]}"
    batch_definition = (
        context.data_sources.add_pandas(name=name)
        .add_dataframe_asset(name=suite_name)
        .add_batch_definition_whole_dataframe(suite_name)
    )
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
    for expectation in SUITES[suite_name](gx):
        suite.add_expectation(expectation)
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
    )
    result = validation.run(batch_parameters={"dataframe": data.to_pandas()}, result_format="SUMMARY")
    result_json = json.loads(json.dumps(result.to_json_dict(), default=str))
    failing = tuple(_describe(r) for r in result_json.get("results", []) if not r.get("success", False))
    logger.info("gate %s: %s", suite_name, "passed" if result.success else f"failed {failing}")
    return GateResult(suite=suite_name, success=bool(result.success), failing=failing, result_json=result_json)


def save_result(result: GateResult, directory: Path) -> Path:
    """Write the validation result JSON as ``gate-<suite>.json`` in ``directory`` (beside a run)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"gate-{result.suite}.json"
    payload = {
        "suite": result.suite,
        "success": result.success,
        "failing": list(result.failing),
        "validation": result.result_json,
    }
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return path
