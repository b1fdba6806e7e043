"""Risk levels of the upstream contract: low (< 0.3), medium (< 0.6), high (< 0.8), critical."""

from __future__ import annotations

from typing import Literal

Level = Literal["low", "medium", "high", "critical"]
LEVELS: tuple[Level, ...] = ("low", "medium", "high", "critical")
#: Lower bound (inclusive) of each level above ``low``.
THRESHOLDS: tuple[tuple[float, Level], ...] = ((0.8, "critical"), (0.6, "high"), (0.3, "medium"))


def level_for(score: float) -> Level:
    """The level of a score in 0..1; a boundary belongs to the level above it (0.3 is medium)."""
    for bound, level in THRESHOLDS:
        if score >= bound:
            return level
    return "low"


def rank(level: str) -> int:
    """0 for low .. 3 for critical (for "at least this level" filters and rising/falling changes)."""
    return list[str](LEVELS).index(level)


def level_floor(level: str) -> float:
    """The lowest score of ``level`` (0 for low and for names that are not a level)."""
    return next((bound for bound, name in THRESHOLDS if name == level), 0.0)
