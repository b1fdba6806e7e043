"""The simulated people: sQuid identities, their sub-identities, DAOs, roles and habits.

Strings (refs, addresses, ids) live once in ``Tables``; events refer to them by index, so ten million
events cost integers, not ten million Python strings.

Besides a few admins and soon-dormant accounts, ordinary people do what makes detection hard:

==============  =====  ==========================================================================================
habit           share  what the traffic shows
==============  =====  ==========================================================================================
newcomer        10 %   no history before ``joined_day`` (between a third and two thirds of the period)
traveller        8 %   2 to 5 days in another country (``Trip``), from new addresses, at its waking hours;
                       newcomers stay home
new device      10 %   from ``DeviceChange.day`` on, mostly a device never used before
naming          all    each module instance names its events in one of ``catalog.CONVENTIONS``
==============  =====  ==========================================================================================

None of them is labelled: they are benign, and no attack picks a newcomer for its victim.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from analytics.simulation.catalog import CONVENTIONS, COUNTRIES, DEVICES, LAYER_NAMES

_BASE58 = np.frombuffer(b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", dtype=np.uint8)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_LAYER_BASE_WEIGHT = np.array([3.0, 2.0, 2.5, 1.5, 3.0, 2.0, 1.0, 1.0, 1.5])  # order of LAYER_NAMES
DORMANT_SHARE = 0.04
ADMIN_SHARE = 0.03
NEWCOMER_SHARE = 0.10
TRAVELLER_SHARE = 0.08
NEW_DEVICE_SHARE = 0.10


class Tables:
    """Append-only string tables; ``add`` returns the indices of the added strings."""

    def __init__(self) -> None:
        self.strings: dict[str, list[str]] = {"ref": [], "ip": [], "squid": [], "sub": [], "dao": []}

    def add(self, table: str, values: list[str]) -> np.ndarray:
        column = self.strings[table]
        start = len(column)
        column.extend(values)
        return np.arange(start, start + len(values), dtype=np.int32)


def random_text(rng: np.random.Generator, count: int, length: int, alphabet: np.ndarray = _HEX) -> list[str]:
    """``count`` random strings of ``length`` characters from ``alphabet`` (vectorised)."""
    codes = alphabet[rng.integers(0, len(alphabet), size=(count, length))]
    return [row.tobytes().decode("ascii") for row in codes]


def cids(rng: np.random.Generator, count: int) -> list[str]:
    """IPFS CIDv0-shaped strings (``Qm`` + 44 base58 characters)."""
    return ["Qm" + text for text in random_text(rng, count, 44, _BASE58)]


@dataclasses.dataclass(frozen=True, slots=True)
class Trip:
    """Days ``first_day`` to ``last_day`` (inclusive) spent in ``country`` (index into COUNTRIES) from ``ips``."""

    first_day: int
    last_day: int
    country: int
    ips: np.ndarray


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceChange:
    """From ``day`` on, most events come from ``device`` (index into DEVICES), which the identity never used."""

    day: int
    device: int


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """One sQuid identity and its habits; every array indexes ``Tables``."""

    index: int
    is_admin: bool
    dormant: bool
    rate: float  # mean events per weekday
    home: int  # index into COUNTRIES
    hour_start: int  # first usual hour (UTC)
    hour_span: int  # number of usual hours
    layer_p: np.ndarray  # probability of each layer
    ips: np.ndarray
    devices: np.ndarray  # indices into DEVICES
    subs: np.ndarray  # indices into the sub table (may be empty)
    dao: int  # index into the dao table, -1 when in none
    pools: dict[str, np.ndarray]  # ref kind -> indices into the ref table
    naming: np.ndarray  # per layer: the index into CONVENTIONS of the module instance serving the identity
    joined_day: int = 0  # first day with events (> 0: a newcomer)
    trip: Trip | None = None
    device_change: DeviceChange | None = None

    @property
    def established(self) -> bool:
        """Active with a history from the period's start: an attack's victim must be."""
        return not self.dormant and self.joined_day == 0


@dataclasses.dataclass(frozen=True, slots=True)
class Population:
    identities: tuple[Identity, ...]
    tables: Tables
    dao_pools: dict[str, list[np.ndarray]]  # per dao: its proposals, its admin refs, its room


def build_population(rng: np.random.Generator, count: int, events_per_day: float, days: int) -> Population:
    """``count`` identities in ``max(1, count // 25)`` DAOs over ``days`` days: a few admins, a few soon-dormant
    accounts, newcomers, travellers and new devices (see the module doc)."""
    tables = Tables()
    squids = tables.add("squid", ["did:squid:" + text for text in random_text(rng, count, 24)])
    dao_count = max(1, count // 25)
    daos = tables.add("dao", ["dao:" + text for text in random_text(rng, dao_count, 12)])
    dao_pools = _dao_pools(tables, daos)
    shared = _SharedRefs(
        listings=tables.add("ref", ["listing:" + t for t in random_text(rng, max(50, count * 2), 10)]),
        posts=tables.add("ref", ["post:" + t for t in random_text(rng, max(50, count * 3), 12)]),
        rooms=tables.add("ref", ["room:" + t for t in random_text(rng, max(10, count // 5), 8)]),
        wallets=tables.add("ref", ["wallet:0x" + t for t in random_text(rng, count, 40)]),
    )
    identities = tuple(
        _habits(rng, tables, _identity(rng, tables, i, squids[i], dao_count, dao_pools, shared, events_per_day), days)
        for i in range(count)
    )
    return Population(identities, tables, dao_pools)


@dataclasses.dataclass(frozen=True, slots=True)
class _SharedRefs:
    """Refs that identities share: market listings, posts, chat rooms and wallets (one per identity)."""

    listings: np.ndarray
    posts: np.ndarray
    rooms: np.ndarray
    wallets: np.ndarray


def _dao_pools(tables: Tables, daos: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Per DAO: its proposals, its admin refs and its room."""
    dao_pools: dict[str, list[np.ndarray]] = {"proposal": [], "dao_admin": [], "room": []}
    for dao in daos:
        name = tables.strings["dao"][dao]
        proposals = [f"{name}/proposal:{n}" for n in range(20)]
        dao_pools["proposal"].append(tables.add("ref", proposals))
        dao_pools["dao_admin"].append(tables.add("ref", [f"{name}/roles", f"{name}/treasury", f"{name}/settings"]))
        dao_pools["room"].append(tables.add("ref", [f"room:{name}"]))
    return dao_pools


def _identity(
    rng: np.random.Generator,
    tables: Tables,
    i: int,
    squid: int,
    dao_count: int,
    dao_pools: dict[str, list[np.ndarray]],
    shared: _SharedRefs,
    events_per_day: float,
) -> Identity:
    """Identity ``i``: its home, addresses, sub-identities, DAO, refs and habits."""
    home = int(rng.integers(len(COUNTRIES)))
    _, offset, prefix = COUNTRIES[home]
    octets = rng.integers(1, 255, size=(int(rng.integers(1, 4)), 2))
    ips = tables.add("ip", [f"{prefix}.{a}.{b}" for a, b in octets])
    subs = tables.add("sub", [f"did:squid:{t}" for t in random_text(rng, int(rng.integers(0, 3)), 24)])
    dao = int(rng.integers(dao_count)) if rng.random() < 0.85 else -1
    pools = _pools(rng, tables, i, tables.strings["squid"][squid], shared)
    if dao >= 0:
        for kind, per_dao in dao_pools.items():
            pools[kind] = per_dao[dao] if kind != "room" else np.concatenate([pools["room"], per_dao[dao]])
    else:
        pools["proposal"] = pools["dao_admin"] = pools["room"][:1]
    alpha = _LAYER_BASE_WEIGHT * rng.uniform(0.05, 1.0, size=len(LAYER_NAMES))
    alpha[LAYER_NAMES.index("squid")] = 1.5  # everyone signs in
    return Identity(
        index=i,
        is_admin=bool(rng.random() < ADMIN_SHARE) or i == 0,
        dormant=bool(rng.random() < DORMANT_SHARE) or i == 1,
        rate=float(events_per_day * rng.lognormal(0.0, 0.5)),
        home=home,
        hour_start=int((8 - offset + rng.integers(-1, 3)) % 24),
        hour_span=int(rng.integers(7, 12)),
        layer_p=rng.dirichlet(alpha * 4),
        ips=ips,
        devices=rng.choice(len(DEVICES), size=int(rng.integers(1, 3)), replace=False).astype(np.int16),
        subs=subs,
        dao=dao,
        pools=pools,
        naming=rng.integers(0, len(CONVENTIONS), size=len(LAYER_NAMES)).astype(np.int8),
    )


def _habits(rng: np.random.Generator, tables: Tables, who: Identity, days: int) -> Identity:
    """``who`` as a newcomer, traveller or new device's owner, as it happens (the first three identities, the
    admin, the dormant one and an ordinary one of tiny populations, are never newcomers)."""
    if who.dormant:
        return who
    joined_day = 0
    if who.index >= 3 and rng.random() < NEWCOMER_SHARE:
        joined_day = int(rng.integers(days // 3, max(days // 3 + 1, 2 * days // 3)))
    trip = None
    if rng.random() < TRAVELLER_SHARE and joined_day == 0:
        length = int(rng.integers(2, 6))
        first = int(rng.integers(max(1, days // 5), max(1, days // 5, days - length) + 1))
        country = int(rng.choice([c for c in range(len(COUNTRIES)) if c != who.home]))
        octets = rng.integers(1, 255, size=(int(rng.integers(1, 3)), 2))
        ips = tables.add("ip", [f"{COUNTRIES[country][2]}.{a}.{b}" for a, b in octets])
        trip = Trip(first, min(days - 1, first + length - 1), country, ips)
    device_change = None
    unused = [d for d in range(len(DEVICES)) if d not in who.devices]
    if rng.random() < NEW_DEVICE_SHARE and unused:
        day = int(rng.integers(max(joined_day + 1, days // 5), max(joined_day + 2, days // 5 + 1, days)))
        device_change = DeviceChange(day, int(rng.choice(unused)))
    return dataclasses.replace(who, joined_day=joined_day, trip=trip, device_change=device_change)


def _pools(rng: np.random.Generator, tables: Tables, i: int, own: str, shared: _SharedRefs) -> dict[str, np.ndarray]:
    """Identity ``i``'s refs by kind, before its DAO's are added."""
    return {
        "file": tables.add("ref", ["file:" + c for c in cids(rng, int(rng.integers(15, 60)))]),
        "own_wallet": shared.wallets[i : i + 1],
        "wallet": rng.choice(shared.wallets, size=int(rng.integers(3, 12))).astype(np.int32),
        "mail": tables.add("ref", [f"mail:{t}" for t in random_text(rng, int(rng.integers(5, 25)), 12)]),
        "listing": rng.choice(shared.listings, size=int(rng.integers(5, 30))).astype(np.int32),
        "post": rng.choice(shared.posts, size=int(rng.integers(5, 30))).astype(np.int32),
        "consent": tables.add("ref", [f"consent:{own}/{scope}" for scope in ("drive", "wallet", "mail", "profile")]),
        "identity": tables.add("ref", [f"identity:{own}"]),
        "room": rng.choice(shared.rooms, size=3).astype(np.int32),
    }
