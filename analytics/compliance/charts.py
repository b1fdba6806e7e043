"""The report's charts as PNG bytes (matplotlib, Agg: no display needed, same output everywhere)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import polars as pl
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure

from analytics.compliance.period import Period

VERDICT_COLOURS = {"ALLOW": "#2e7d32", "DENY": "#c62828", "WARN": "#f9a825"}
SEVERITY_COLOURS = {"critical": "#7b1fa2", "high": "#c62828", "medium": "#ef6c00", "low": "#1565c0"}
_DPI = 110
_UNIT = {"1h": "hour", "1d": "day", "1w": "week", "1mo": "month"}


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")  # the legend beside the axes included
    plt.close(figure)
    return buffer.getvalue()


def _legend_beside(axes: Axes) -> None:
    """The legend right of the plot, where it cannot hide a bar or a line (inside, it covered the tallest)."""
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize="small")


def _empty(title: str) -> bytes:
    figure, axes = plt.subplots(figsize=(8, 1.4))
    axes.text(0.5, 0.5, f"{title}: no data in the period", ha="center", va="center")
    axes.axis("off")
    return _png(figure)


def verdicts_over_time(over_time: pl.DataFrame, bucket: str, period: Period) -> bytes:
    """Stacked events per bucket, one colour per verdict, each bar over its own bucket of the whole period."""
    if over_time.is_empty():
        return _empty("Events over time")
    wide = over_time.pivot(on="verdict", index="bucket", values="events").sort("bucket").fill_null(0)
    figure, axes = plt.subplots(figsize=(9, 3.2))
    bottom = [0] * wide.height
    for verdict, colour in VERDICT_COLOURS.items():
        if verdict in wide.columns:
            values = wide[verdict].to_list()
            axes.bar(
                wide["bucket"].to_list(), values, bottom=bottom, color=colour, label=verdict, width=_width(bucket),
                align="edge",
            )  # fmt: skip
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_title(f"Events per {_UNIT[bucket]} by verdict")
    axes.set_ylabel("events")
    _legend_beside(axes)
    _over_the_period(axes, period)
    return _png(figure)


def deny_trend(deny_by_layer: pl.DataFrame, bucket: str, period: Period, top: int = 6) -> bytes:
    """DENY rate per bucket for the modules with the most refusals, over the whole period."""
    if deny_by_layer.is_empty() or deny_by_layer["deny"].sum() == 0:
        return _empty("DENY trend")
    layers = (
        deny_by_layer.group_by("layer").agg(pl.col("deny").sum()).sort(["deny", "layer"], descending=[True, False])
    )["layer"].head(top)
    figure, axes = plt.subplots(figsize=(9, 3.2))
    for layer in layers:
        series = deny_by_layer.filter(pl.col("layer") == layer).sort("bucket")
        axes.plot(series["bucket"].to_list(), (series["deny_rate"] * 100).to_list(), marker=".", label=layer)
    axes.set_title(f"DENY rate per {_UNIT[bucket]}, by module (%)")
    axes.set_ylabel("% refused")
    _legend_beside(axes)
    _over_the_period(axes, period)
    return _png(figure)


def _over_the_period(axes: Axes, period: Period) -> None:
    """The time axis spans the report's period, not just the buckets that have events: a single busy day
    shows where in the month it fell."""
    # matplotlib.dates is not annotated: hence the ignores
    axes.set_xlim(date2num(period.start), date2num(period.end))  # type: ignore[no-untyped-call]
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def events_by_layer(by_layer_type: pl.DataFrame) -> bytes:
    if by_layer_type.is_empty():
        return _empty("Events by module")
    per_layer = (
        by_layer_type.group_by("layer").agg(pl.col("ALLOW", "DENY", "WARN").sum()).sort("layer", descending=True)
    )
    figure, axes = plt.subplots(figsize=(9, 0.4 * per_layer.height + 1.2))
    left = [0] * per_layer.height
    for verdict, colour in VERDICT_COLOURS.items():
        values = per_layer[verdict].to_list()
        if sum(values):  # a verdict that never occurs gets no bar and no legend entry
            axes.barh(per_layer["layer"].to_list(), values, left=left, color=colour, label=verdict)
            left = [a + b for a, b in zip(left, values, strict=True)]
    axes.set_title("Events by module and verdict")
    axes.set_xlabel("events")
    _legend_beside(axes)
    return _png(figure)


def hour_of_day(hours: pl.DataFrame) -> bytes:
    if hours.is_empty():
        return _empty("Activity by hour")
    totals = hours.group_by("hour").agg(pl.col("events").sum()).sort("hour")
    figure, axes = plt.subplots(figsize=(9, 2.6))
    axes.bar(totals["hour"].to_list(), totals["events"].to_list(), color="#455a64")
    axes.set_title("Events by hour of day (UTC)")
    axes.set_xticks(range(0, 24, 2))
    return _png(figure)


def alerts_by_severity(by_severity: dict[str, int], by_status: dict[str, int]) -> bytes:
    if not by_severity or sum(by_severity.values()) == 0:
        return _empty("Alerts")
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 2.8))
    left.bar(list(by_severity), list(by_severity.values()),
             color=[SEVERITY_COLOURS.get(s, "#607d8b") for s in by_severity])  # fmt: skip
    left.set_title("Alerts by severity")
    right.bar(list(by_status), list(by_status.values()), color="#546e7a")
    right.set_title("Alerts by status")
    return _png(figure)


def top_bars(frame: pl.DataFrame, label: str, value: str, title: str, top: int = 15) -> bytes:
    if frame.is_empty():
        return _empty(title)
    shown = frame.head(top).reverse()
    figure, axes = plt.subplots(figsize=(9, 0.32 * shown.height + 1.2))
    axes.barh([str(v) for v in shown[label].to_list()], shown[value].to_list(), color="#37474f")
    axes.set_title(title)
    return _png(figure)


def _width(bucket: str) -> float:
    """A bar's width in days (matplotlib's date unit), from the start of its bucket, leaving a small gap."""
    return {"1h": 0.9 / 24, "1d": 0.9, "1w": 6.3, "1mo": 27.0}.get(bucket, 0.9)
