"""Labelled attacks injected into the normal traffic, each tagged with its MITRE ATT&CK technique.

Technique choices (documented because several fit):

=========================  =========  ==================================================================
attack                     technique  why
=========================  =========  ==================================================================
brute_force                T1110      Brute Force (.001 password guessing): many DENY sign-ins on one account
slow_brute_force           T1110      the same, 20-50 tries 3-15 min apart over hours: at most 4 in any 10 min,
                                      below the brute_force rule (10 in 600 s)
password_spraying          T1110      Brute Force (.003 spraying): one address, one or two tries on each of 20-60
                                      accounts (fewer only when the population has fewer); the report's truth
                                      (``analytics.detection_report``) attributes it to the address too, read from
                                      the labelled events' ``details.ip``
valid_account_misuse       T1078      Valid Accounts: a working login at odd hours from a new country/device
privilege_escalation       T1098      Account Manipulation: a non-admin grants itself roles and permissions
                                      (T1068 would need an exploited vulnerability, which events cannot show)
permission_probing         T1069      Permission Groups Discovery: many DENY across others' resources to
                                      learn what the identity may reach (T1580 is for cloud infrastructure)
slow_permission_probing    T1069      the same, 40-100 probes 5-15 min apart: at most 12 in any hour, below the
                                      permission_probing rule (15 distinct refs denied in 3600 s)
bulk_download              T1530      Data from Cloud Storage: hundreds of qdrive downloads of other files
slow_bulk_download         T1530      the same, 120-300 downloads 1.5-4 min apart: at most 40 in any hour, below
                                      the bulk_download rule (60 in 3600 s)
exfiltration               T1537      Transfer Data to Cloud Account: files shared out, value transferred out
dormant_wakeup             T1078      Valid Accounts (.003-like): a long-silent account active from afar
api_abuse                  T1499      Endpoint Denial of Service (.003 application exhaustion flood)
=========================  =========  ==================================================================

Attacks start in the last 60 % of the period so every victim has a history before them; no newcomer is a
victim (``Identity.established``). An attack's events are named as its victim's module instances name them
(``catalog.CONVENTIONS``), so rules and features recognise them through the taxonomy alone. The slow variants'
rule thresholds are those of ``config/rules.toml``; ``tests/unit/analytics/test_simulate.py`` replays them
through the rules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from analytics.simulation.catalog import ATTACK_COUNTRIES, COUNTRIES, DEVICES, KIND_CODE
from analytics.simulation.population import Identity, Population
from analytics.simulation.traffic import ALLOW, DAY_MS, DENY, HOUR_MS, WARN, Batch, batch, concat, sizes


@dataclasses.dataclass(frozen=True, slots=True)
class Attack:
    attack_id: int
    name: str
    technique: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Context:
    rng: np.random.Generator
    population: Population
    days: int

    def when(self, who: Identity | None = None, *, odd_hours: bool = False) -> int:
        """A start time (ms from the period start) in the last 60 % of the period."""
        day = int(self.rng.integers(int(self.days * 0.4), self.days))
        if who is not None and odd_hours:
            hour = (who.hour_start + who.hour_span + int(self.rng.integers(3, 24 - who.hour_span - 1))) % 24
        elif who is not None:
            hour = (who.hour_start + int(self.rng.integers(0, who.hour_span))) % 24
        else:
            hour = int(self.rng.integers(0, 24))
        return day * DAY_MS + hour * HOUR_MS + int(self.rng.integers(0, HOUR_MS // 2))

    def outsider(self) -> tuple[int, int, int]:
        """A fresh address in an attack country: (ip, country, device) indices."""
        place = int(self.rng.integers(len(ATTACK_COUNTRIES)))
        a, b = self.rng.integers(1, 255, 2)
        ip = int(self.population.tables.add("ip", [f"{ATTACK_COUNTRIES[place][1]}.{a}.{b}"])[0])
        return ip, len(COUNTRIES) + place, len(DEVICES) + int(self.rng.integers(3))

    def others_refs(self, who: Identity, kind: str, count: int) -> np.ndarray:
        pools = [o.pools[kind] for o in self.population.identities if o.index != who.index]
        pool = np.concatenate(pools) if pools else who.pools[kind]
        return self.rng.choice(pool, size=count)

    def gaps(self, count: int, low_ms: int, high_ms: int) -> np.ndarray:
        return np.cumsum(self.rng.integers(low_ms, high_ms, count))


def _code(layer: str, kind: str) -> int:
    return KIND_CODE[layer, kind]


def _habitual(who: Identity) -> dict[str, int]:
    return {"squid": who.index, "ip": int(who.ips[0]), "country": who.home, "device": int(who.devices[0])}


def brute_force(c: _Context, who: Identity) -> Batch:
    return _guesses(c, who, int(c.rng.integers(30, 80)), 1_000, 8_000)


def slow_brute_force(c: _Context, who: Identity) -> Batch:
    return _guesses(c, who, int(c.rng.integers(20, 50)), 180_000, 900_000)


def _guesses(c: _Context, who: Identity, n: int, low_gap_ms: int, high_gap_ms: int) -> Batch:
    """``n`` sign-ins on ``who``'s account from an outsider, all denied but perhaps the last."""
    ip, country, device = c.outsider()
    verdict = np.full(n, DENY)
    verdict[-1] = ALLOW if c.rng.random() < 0.5 else DENY
    kind = np.where(c.rng.random(n) < 0.5, _code("squid", "authentication"), _code("squid", "login"))
    return batch(
        n,
        ts=c.when() + c.gaps(n, low_gap_ms, high_gap_ms),
        squid=who.index,
        kind=kind,
        verdict=verdict,
        ref=who.pools["identity"][0],
        ip=ip,
        country=country,
        device=device,
        size=sizes(c.rng, kind),
    )


def password_spraying(c: _Context, who: Identity) -> Batch:
    victims = [o for o in c.population.identities if o.established]
    chosen = c.rng.choice(len(victims), size=min(len(victims), int(c.rng.integers(20, 60))), replace=False)
    ip, country, device = c.outsider()
    start, parts = c.when(), []
    for offset, v in zip(c.gaps(len(chosen), 5_000, 40_000), (victims[i] for i in chosen), strict=True):
        n = int(c.rng.integers(1, 3))
        parts.append(
            batch(
                n,
                ts=start + offset + np.arange(n) * 2_000,
                squid=v.index,
                kind=_code("squid", "login"),
                verdict=DENY,
                ref=v.pools["identity"][0],
                ip=ip,
                country=country,
                device=device,
                size=180,
            )
        )
    return concat(parts)


def valid_account_misuse(c: _Context, who: Identity) -> Batch:
    n = int(c.rng.integers(15, 40))
    ip, country, device = c.outsider()
    kind = c.rng.choice(
        [_code("qdrive", "download"), _code("qdrive", "access"), _code("qmail", "read"), _code("qwallet", "transfer")],
        size=n,
    )
    kind[0] = _code("squid", "login")
    ref = np.select(
        [kind == _code("qmail", "read"), kind == _code("qwallet", "transfer")],
        [c.rng.choice(who.pools["mail"], n), c.others_refs(who, "own_wallet", n)],
        c.rng.choice(who.pools["file"], n),
    )
    ref[0] = who.pools["identity"][0]
    return batch(
        n,
        ts=c.when(who, odd_hours=True) + c.gaps(n, 20_000, 180_000),
        squid=who.index,
        kind=kind,
        ref=ref,
        ip=ip,
        country=country,
        device=device,
        size=sizes(c.rng, kind),
    )


def privilege_escalation(c: _Context, who: Identity) -> Batch:
    n = int(c.rng.integers(6, 16))
    admin_refs = np.concatenate(c.population.dao_pools["dao_admin"])
    kind = np.where(np.arange(n) % 2 == 0, _code("dao", "admin_operation"), _code("qonsent", "permission_grant"))
    ref = np.where(
        kind == _code("dao", "admin_operation"), c.rng.choice(admin_refs, n), c.others_refs(who, "consent", n)
    )
    verdict = np.where(np.arange(n) < n // 2, DENY, c.rng.choice([ALLOW, WARN], n))
    return batch(
        n,
        ts=c.when(who) + c.gaps(n, 10_000, 90_000),
        kind=kind,
        ref=ref,
        verdict=verdict,
        dao=max(who.dao, 0),
        size=sizes(c.rng, kind),
        **_habitual(who),
    )


def permission_probing(c: _Context, who: Identity) -> Batch:
    return _probes(c, who, int(c.rng.integers(40, 120)), 3_000, 20_000)


def slow_permission_probing(c: _Context, who: Identity) -> Batch:
    return _probes(c, who, int(c.rng.integers(40, 100)), 300_000, 900_000)


def _probes(c: _Context, who: Identity, n: int, low_gap_ms: int, high_gap_ms: int) -> Batch:
    """``n`` attempts on others' files, consents, wallets and DAO settings, mostly denied."""
    kind = c.rng.choice(
        [
            _code("qdrive", "access"),
            _code("qonsent", "permission_check"),
            _code("dao", "admin_operation"),
            _code("qwallet", "balance_check"),
        ],
        size=n,
    )
    ref = np.select(
        [
            kind == _code("qdrive", "access"),
            kind == _code("qonsent", "permission_check"),
            kind == _code("qwallet", "balance_check"),
        ],
        [c.others_refs(who, "file", n), c.others_refs(who, "consent", n), c.others_refs(who, "own_wallet", n)],
        c.rng.choice(np.concatenate(c.population.dao_pools["dao_admin"]), n),
    )
    verdict = np.where(c.rng.random(n) < 0.85, DENY, ALLOW)
    return batch(
        n,
        ts=c.when(who) + c.gaps(n, low_gap_ms, high_gap_ms),
        kind=kind,
        ref=ref,
        verdict=verdict,
        size=sizes(c.rng, kind),
        **_habitual(who),
    )


def bulk_download(c: _Context, who: Identity) -> Batch:
    return _downloads(c, who, int(c.rng.integers(150, 500)), 500, 8_000)


def slow_bulk_download(c: _Context, who: Identity) -> Batch:
    return _downloads(c, who, int(c.rng.integers(120, 300)), 90_000, 240_000)


def _downloads(c: _Context, who: Identity, n: int, low_gap_ms: int, high_gap_ms: int) -> Batch:
    """``n`` qdrive downloads, mostly of others' files, from ``who``'s usual address and device."""
    ref = np.concatenate([c.others_refs(who, "file", n - len(who.pools["file"])), who.pools["file"]])[:n]
    kind = np.full(n, _code("qdrive", "download"))
    return batch(
        n,
        ts=c.when(who) + c.gaps(n, low_gap_ms, high_gap_ms),
        kind=kind,
        ref=c.rng.permutation(ref),
        size=sizes(c.rng, kind, 3.0),
        **_habitual(who),
    )


def exfiltration(c: _Context, who: Identity) -> Batch:
    n = int(c.rng.integers(40, 150))
    ip, country, device = c.outsider()
    kind = np.where(c.rng.random(n) < 0.8, _code("qdrive", "share"), _code("qwallet", "transfer"))
    ref = np.where(kind == _code("qdrive", "share"), c.others_refs(who, "file", n), c.others_refs(who, "own_wallet", n))
    return batch(
        n,
        ts=c.when(who, odd_hours=True) + c.gaps(n, 2_000, 30_000),
        squid=who.index,
        kind=kind,
        ref=ref,
        ip=ip,
        country=country,
        device=device,
        size=sizes(c.rng, kind, 50.0),
    )


def dormant_wakeup(c: _Context, who: Identity) -> Batch:
    n = int(c.rng.integers(20, 60))
    ip, country, device = c.outsider()
    kind = c.rng.choice(
        [
            _code("qdrive", "download"),
            _code("qwallet", "transfer"),
            _code("qonsent", "permission_grant"),
            _code("qmail", "send"),
        ],
        size=n,
    )
    kind[0] = _code("squid", "login")
    ref = np.select(
        [
            kind == _code("qdrive", "download"),
            kind == _code("qwallet", "transfer"),
            kind == _code("qonsent", "permission_grant"),
        ],
        [
            c.rng.choice(who.pools["file"], n),
            c.others_refs(who, "own_wallet", n),
            c.rng.choice(who.pools["consent"], n),
        ],
        c.rng.choice(who.pools["mail"], n),
    )
    ref[0] = who.pools["identity"][0]
    day = int(c.rng.integers(int(c.days * 0.7), c.days))
    return batch(
        n,
        ts=day * DAY_MS + int(c.rng.integers(0, DAY_MS - HOUR_MS)) + c.gaps(n, 5_000, 60_000),
        squid=who.index,
        kind=kind,
        ref=ref,
        ip=ip,
        country=country,
        device=device,
        size=sizes(c.rng, kind),
    )


def api_abuse(c: _Context, who: Identity) -> Batch:
    n = int(c.rng.integers(300, 1200))
    kind = np.where(c.rng.random(n) < 0.7, _code("qmarket", "listing_view"), _code("qchat", "message"))
    ref = np.where(
        kind == _code("qmarket", "listing_view"), c.others_refs(who, "listing", n), c.rng.choice(who.pools["room"], n)
    )
    verdict = np.where(np.arange(n) > n // 3, c.rng.choice([WARN, DENY, ALLOW], n, p=[0.6, 0.2, 0.2]), ALLOW)
    return batch(
        n,
        ts=c.when(who) + c.gaps(n, 100, 1_000),
        kind=kind,
        ref=ref,
        verdict=verdict,
        size=sizes(c.rng, kind),
        **{**_habitual(who), "device": len(DEVICES) + 1},
    )


#: name -> (technique, generator, who may be the victim)
ATTACKS: dict[str, tuple[str, Callable[[_Context, Identity], Batch], Callable[[Identity], bool]]] = {
    "brute_force": ("T1110", brute_force, lambda who: who.established),
    "slow_brute_force": ("T1110", slow_brute_force, lambda who: who.established),
    "password_spraying": ("T1110", password_spraying, lambda who: True),
    "valid_account_misuse": ("T1078", valid_account_misuse, lambda who: who.established),
    "privilege_escalation": ("T1098", privilege_escalation, lambda who: not who.is_admin and who.established),
    "permission_probing": ("T1069", permission_probing, lambda who: not who.is_admin and who.established),
    "slow_permission_probing": ("T1069", slow_permission_probing, lambda who: not who.is_admin and who.established),
    "bulk_download": ("T1530", bulk_download, lambda who: who.established),
    "slow_bulk_download": ("T1530", slow_bulk_download, lambda who: who.established),
    "exfiltration": ("T1537", exfiltration, lambda who: who.established),
    "dormant_wakeup": ("T1078", dormant_wakeup, lambda who: who.dormant),
    "api_abuse": ("T1499", api_abuse, lambda who: who.established),
}


def inject(rng: np.random.Generator, population: Population, days: int, per_kind: int) -> tuple[Batch, list[Attack]]:
    """``per_kind`` attacks of every kind on distinct victims; the events carry their attack id."""
    context = _Context(rng, population, days)
    used: set[int] = set()
    parts: list[Batch] = []
    attacks: list[Attack] = []
    for name, (technique, generate, eligible) in ATTACKS.items():
        for _ in range(per_kind):
            candidates = [w for w in population.identities if eligible(w) and w.index not in used]
            if not candidates:
                candidates = [w for w in population.identities if eligible(w)]
            if not candidates:
                continue
            who = candidates[int(rng.integers(len(candidates)))]
            used.add(who.index)
            events = generate(context, who)
            events["attack"][:] = len(attacks)
            parts.append(events)
            attacks.append(Attack(len(attacks), name, technique))
    return concat(parts), attacks
