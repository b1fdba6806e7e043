"""Risk objects beyond identities: an alert and a risk score belong to an *entity*, named by one string key.

An identity is its DID as it stands (``did:squid:...``); a source address is ``ip:<address>``. A password spray
from one address over many accounts is one alert of the address entity listing the accounts it touched,
not one alert per victim (Splunk's risk-based alerting likewise scores "risk objects" of several kinds).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["ADDRESS_PREFIX", "EntityKind", "address_entity", "entity_kind"]

ADDRESS_PREFIX = "ip:"
EntityKind = Literal["identity", "address"]


def address_entity(ip: str) -> str:
    """The entity key of a source address."""
    return f"{ADDRESS_PREFIX}{ip}"


def entity_kind(key: str) -> EntityKind:
    return "address" if key.startswith(ADDRESS_PREFIX) else "identity"
