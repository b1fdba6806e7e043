"""What an anomaly alert shows an analyst: the ATT&CK technique its driving features point to, the values
behind them (the new country, the new address, the resources) and the ledger events behind it.

The technique comes from ``[anomaly.techniques]`` of ``config/rules.toml`` (feature -> technique): the driver
of largest deviation that has one names it. The events are linked by ledger sequence number (the newest
``MAX_LISTED``, with their count), so an inclusion proof can be requested for each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MAX_LISTED", "WindowEvidence", "technique_of"]

MAX_LISTED = 50


def technique_of(drivers: Iterable[str], techniques: Mapping[str, str]) -> str | None:
    """The technique of the first driver (largest deviation first) that the mapping names; None without one."""
    return next((techniques[name] for name in drivers if name in techniques), None)


def _listed(values: Iterable[str]) -> list[str]:
    return sorted(values)[:MAX_LISTED]


@dataclasses.dataclass(frozen=True, slots=True)
class WindowEvidence:
    """A window's events and what in them its identity had not shown before."""

    seqs: tuple[int, ...]
    addresses: frozenset[str]
    new_countries: frozenset[str]
    new_addresses: frozenset[str]
    new_resources: frozenset[str]
    denied_resources: frozenset[str]
    prior_events: int  # the identity's events before the window (0: a newcomer)

    def to_json(self) -> dict[str, Any]:
        seqs = sorted(self.seqs)
        return {
            "sequenceNumbers": seqs[-MAX_LISTED:],
            "eventCount": len(seqs),
            "addresses": _listed(self.addresses),
            "newCountries": _listed(self.new_countries),
            "newAddresses": _listed(self.new_addresses),
            "newResources": _listed(self.new_resources),
            "newResourceCount": len(self.new_resources),
            "deniedResources": _listed(self.denied_resources),
            "priorEvents": self.prior_events,
        }
