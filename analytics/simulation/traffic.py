"""Normal traffic: each identity's events follow its habits, a daily and a weekly rhythm.

Events are built as columns of integers (``Batch``); strings are resolved once, in ``frame.py``.
"""

from __future__ import annotations

import numpy as np

from analytics.simulation.catalog import COUNTRIES, KIND_CODE, KINDS, LAYER_NAMES, LAYERS
from analytics.simulation.population import Identity

Batch = dict[str, np.ndarray]
COLUMNS = ("ts", "squid", "sub", "dao", "kind", "verdict", "ref", "ip", "country", "device", "size", "attack")
ALLOW, DENY, WARN = 0, 1, 2
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
WEEKEND_FACTOR = 0.35
OFF_HOURS_SHARE = 0.06
NEW_DEVICE_USE = 0.7  # share of the events from a new device once the identity has it
AUTH_KINDS = np.array([KIND_CODE["squid", "authentication"], KIND_CODE["squid", "login"]])
_KIND_SIZE = np.array([kind.size_mean for _, kind in KINDS])


def batch(count: int, **columns: np.ndarray | int) -> Batch:
    """A batch of ``count`` events; scalars broadcast, unspecified optional columns are -1/0."""
    defaults: dict[str, int] = {"sub": -1, "dao": -1, "verdict": ALLOW, "attack": -1, "size": 0}
    out: Batch = {}
    for name in COLUMNS:
        value = columns.get(name, defaults.get(name))
        if value is None:
            raise ValueError(f"column {name} missing")
        out[name] = np.broadcast_to(np.asarray(value, dtype=np.int64), (count,)).copy()
    return out


def concat(batches: list[Batch]) -> Batch:
    return {name: np.concatenate([b[name] for b in batches]) for name in COLUMNS}


def sizes(rng: np.random.Generator, kinds: np.ndarray, scale: float = 1.0) -> np.ndarray:
    drawn: np.ndarray = rng.lognormal(np.log(_KIND_SIZE[kinds] * scale), 0.8)
    return drawn.astype(np.int64)


def skewed(rng: np.random.Generator, pool: np.ndarray, count: int) -> np.ndarray:
    """Refs from ``pool`` with a few favourites (index ~ u**2)."""
    picks = (len(pool) * rng.random(count) ** 2).astype(np.int64)
    return pool[np.minimum(picks, len(pool) - 1)]


def _whereabouts(rng: np.random.Generator, who: Identity, day: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each event's UTC hour, address and country: at home, or on a trip at the waking hours of the place."""
    count = len(day)
    usual = (who.hour_start + rng.integers(0, who.hour_span, count)) % 24
    hour = np.where(rng.random(count) < OFF_HOURS_SHARE, rng.integers(0, 24, count), usual)
    ip = who.ips[np.minimum((len(who.ips) * rng.random(count) ** 2).astype(np.int64), len(who.ips) - 1)]
    country = np.full(count, who.home)
    if who.trip is not None:
        away = (day >= who.trip.first_day) & (day <= who.trip.last_day)
        shift = COUNTRIES[who.home][1] - COUNTRIES[who.trip.country][1]
        hour = np.where(away, (hour + shift) % 24, hour)
        ip = np.where(away, who.trip.ips[rng.integers(0, len(who.trip.ips), count)], ip)
        country[away] = who.trip.country
    return hour, ip, country


def _devices(rng: np.random.Generator, who: Identity, day: np.ndarray) -> np.ndarray:
    """Each event's device: one of the identity's, mostly the new one once it has it."""
    device = who.devices[rng.integers(0, len(who.devices), len(day))]
    if who.device_change is None:
        return device
    switched = (day >= who.device_change.day) & (rng.random(len(day)) < NEW_DEVICE_USE)
    return np.where(switched, who.device_change.device, device)


def normal_traffic(rng: np.random.Generator, who: Identity, days: int, start_weekday: int) -> Batch:
    """The identity's ordinary events over ``days`` days (dormant ones stop after the first fifth, newcomers
    begin on their ``joined_day``)."""
    active_days = np.arange(who.joined_day, max(1, days // 5) if who.dormant else days)
    weekend = ((active_days + start_weekday) % 7) >= 5
    per_day = rng.poisson(who.rate * np.where(weekend, WEEKEND_FACTOR, 1.0))
    day = np.repeat(active_days, per_day)
    count = len(day)
    hour, ip, country = _whereabouts(rng, who, day)
    ts = day * DAY_MS + hour * HOUR_MS + rng.integers(0, HOUR_MS, count)
    layer = rng.choice(len(LAYER_NAMES), size=count, p=who.layer_p)
    kind = np.empty(count, dtype=np.int64)
    ref = np.empty(count, dtype=np.int64)
    for index, name in enumerate(LAYER_NAMES):
        mask = layer == index
        if not mask.any():
            continue
        options = [k for k in LAYERS[name] if who.is_admin or not k.admin_only]
        weights = np.array([k.weight for k in options])
        chosen = rng.choice(len(options), size=int(mask.sum()), p=weights / weights.sum())
        kind[mask] = [KIND_CODE[name, options[c].type] for c in chosen]
        refs = np.empty(int(mask.sum()), dtype=np.int64)
        for option_index, option in enumerate(options):
            sub_mask = chosen == option_index
            refs[sub_mask] = skewed(rng, who.pools[option.ref_kind], int(sub_mask.sum()))
        ref[mask] = refs
    is_auth = np.isin(kind, AUTH_KINDS)
    draw = rng.random(count)
    verdict = np.where(draw < np.where(is_auth, 0.04, 0.015), DENY, np.where(draw > 0.98, WARN, ALLOW))
    events = batch(
        count,
        ts=ts,
        squid=who.index,
        kind=kind,
        verdict=verdict,
        ref=ref,
        ip=ip,
        country=country,
        device=_devices(rng, who, day),
        size=sizes(rng, kind),
    )
    if len(who.subs):
        events["sub"] = np.where(rng.random(count) < 0.3, who.subs[rng.integers(0, len(who.subs), count)], -1)
    if who.dao >= 0:
        in_dao = (layer == LAYER_NAMES.index("dao")) | (rng.random(count) < 0.3)
        events["dao"] = np.where(in_dao, who.dao, -1)
    # A failed sign-in is usually a typo: the same person succeeds a few seconds later.
    retry = np.flatnonzero(is_auth & (verdict == DENY))
    if len(retry):
        again = {name: column[retry].copy() for name, column in events.items()}
        again["ts"] += rng.integers(3_000, 30_000, len(retry))
        again["verdict"][:] = ALLOW
        events = concat([events, again])
    return events
