"""What an event is, whatever its module calls it: an OCSF class, activity and status (``Category``), derived
from the event's ``type``, ``layer``, ``verdict`` and ``details`` by the ordered rules of
``config/taxonomy.toml``. Rules, window features and risk read categories, never type names, so a module that
calls a sign-in ``user.signin`` meets the same brute-force rule as one that calls it ``login``.

A category is derived data, a pure function of the event and the taxonomy: ``Taxonomy.classify`` memoises it
per distinct (type, layer, verdict, the details members some rule reads), a few hundred keys in real traffic,
and ``category_expr`` computes it over a frame by classifying each batch's distinct keys. ``Taxonomy.digest``
names a taxonomy's content: the categories stored for SQL readers (``models.categories``) carry it, and
``qerberos taxonomy apply`` recomputes them when it changes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from analytics.config_file import config_path, read_toml
from analytics.live_events import detail_pattern
from qerberos.errors import ConfigurationError

__all__ = [
    "CATEGORY_COLUMNS",
    "OTHER_CLASS",
    "STATUS_IDS",
    "Category",
    "OcsfClass",
    "Taxonomy",
    "category_expr",
    "default_taxonomy",
    "load_taxonomy",
]

OTHER_CLASS = "other"
#: OCSF ``status_id`` of each status name.
STATUS_IDS: Mapping[str, int] = {"unknown": 0, "success": 1, "failure": 2, "other": 99}
#: The fields of ``category_expr``.
CATEGORY_COLUMNS: tuple[str, ...] = ("class_uid", "activity_id", "status_id")
_VERDICTS = ("ALLOW", "DENY", "WARN")
_MEMO_LIMIT = 100_000


@dataclasses.dataclass(frozen=True, slots=True)
class OcsfClass:
    """An OCSF class as the taxonomy names it (``key``, e.g. ``authentication``) with its activities."""

    key: str
    uid: int
    category_uid: int
    name: str
    activities: Mapping[str, int]

    def activity_name(self, activity_id: int) -> str:
        return next((name for name, uid in self.activities.items() if uid == activity_id), "other")


@dataclasses.dataclass(frozen=True, slots=True)
class Category:
    """An event's OCSF class (``class_key`` is the taxonomy's name of it), activity and status."""

    class_key: str
    class_uid: int
    activity: str
    activity_id: int
    status: str
    status_id: int

    def is_sign_in(self) -> bool:
        """A logon attempt (OCSF Authentication, activity Logon), whatever its outcome."""
        return self.class_key == "authentication" and self.activity == "logon"


class _Patterns:
    """Glob patterns (``*``, ``?``), case-insensitive; ``!pattern`` excludes. Empty: everything matches."""

    __slots__ = ("_exclude", "_include")

    def __init__(self, patterns: Iterable[str]) -> None:
        patterns = list(patterns)
        self._include = _glob_regex(p for p in patterns if not p.startswith("!"))
        self._exclude = _glob_regex(p[1:] for p in patterns if p.startswith("!"))

    def __call__(self, value: str | None) -> bool:
        if value is None:
            return self._include is None and self._exclude is None
        return (self._include is None or self._include.fullmatch(value) is not None) and (
            self._exclude is None or self._exclude.fullmatch(value) is None
        )


def _glob_regex(patterns: Iterable[str]) -> re.Pattern[str] | None:
    alternatives = ["".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in p) for p in patterns]
    return re.compile("|".join(alternatives), re.IGNORECASE | re.DOTALL) if alternatives else None


@dataclasses.dataclass(frozen=True, slots=True)
class _Rule:
    types: _Patterns
    layers: _Patterns
    verdicts: frozenset[str]
    details: tuple[tuple[str, _Patterns], ...]
    ocsf_class: OcsfClass
    activity: str
    status: str | None

    def matches(self, type_: str, layer: str, verdict: str, detail_values: Mapping[str, str | None]) -> bool:
        return (
            self.types(type_)
            and self.layers(layer)
            and (not self.verdicts or verdict in self.verdicts)
            and all(patterns(detail_values.get(key)) for key, patterns in self.details)
        )


class Taxonomy:
    """The ordered rules of a taxonomy file and the OCSF classes they name (see the module doc)."""

    def __init__(self, raw: Mapping[str, Any], source: str = "taxonomy") -> None:
        self.source = source
        self.digest = "sha256:" + hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()
        self.classes = {key: _ocsf_class(key, spec, source) for key, spec in raw.get("classes", {}).items()}
        if OTHER_CLASS not in self.classes:
            raise ConfigurationError(f"{source}: a class named {OTHER_CLASS!r} is required")
        self.by_uid = {c.uid: c for c in self.classes.values()}
        sign_in = self.classes.get("authentication")
        if sign_in is None or "logon" not in sign_in.activities:
            raise ConfigurationError(f"{source}: a class named 'authentication' with an activity 'logon' is required")
        #: ``(class_uid, activity_id)`` of a sign-in, as features read it from a frame.
        self.sign_in = (sign_in.uid, sign_in.activities["logon"])
        self._ocsf_prefix = str(raw.get("ocsf_prefix", ""))
        self._statuses = {verdict: str(raw.get("status", {}).get(verdict, "unknown")) for verdict in _VERDICTS}
        self._rules = tuple(self._rule(index, spec) for index, spec in enumerate(raw.get("rules", [])))
        self.detail_keys: tuple[str, ...] = tuple(sorted({key for rule in self._rules for key, _ in rule.details}))
        self._detail_patterns = {key: re.compile(detail_pattern(key)) for key in self.detail_keys}
        self._memo: dict[tuple[str | None, ...], Category] = {}
        self._check_statuses(self._statuses.values())

    def _rule(self, index: int, spec: Mapping[str, Any]) -> _Rule:
        where = f"{self.source}: rules[{index}]"
        known = {"types", "layers", "verdicts", "details", "class", "activity", "status"}
        if unknown := set(spec) - known:
            raise ConfigurationError(f"{where}: unknown keys {sorted(unknown)}")
        ocsf_class = self.classes.get(str(spec.get("class")))
        if ocsf_class is None:
            raise ConfigurationError(f"{where}: class must be one of {sorted(self.classes)}")
        activity = str(spec.get("activity", "other"))
        if activity not in ocsf_class.activities:
            raise ConfigurationError(f"{where}: {ocsf_class.key} has no activity {activity!r}")
        if bad := set(spec.get("verdicts", ())) - set(_VERDICTS):
            raise ConfigurationError(f"{where}: unknown verdicts {sorted(bad)}")
        status = spec.get("status")
        if status is not None:
            self._check_statuses([status])
        details = tuple((str(key), _Patterns(_strings(value))) for key, value in spec.get("details", {}).items())
        return _Rule(
            types=_Patterns(_strings(spec.get("types", ()))),
            layers=_Patterns(_strings(spec.get("layers", ()))),
            verdicts=frozenset(spec.get("verdicts", ())),
            details=details,
            ocsf_class=ocsf_class,
            activity=activity,
            status=status,
        )

    def _check_statuses(self, statuses: Iterable[str]) -> None:
        if bad := set(statuses) - set(STATUS_IDS):
            raise ConfigurationError(f"{self.source}: statuses must be among {sorted(STATUS_IDS)}, not {sorted(bad)}")

    def detail_values(self, details: Mapping[str, Any] | str | None) -> tuple[str | None, ...]:
        """The members of ``details`` (a decoded object or its JSON text) that some rule reads, in ``detail_keys``
        order."""
        if details is None:
            return tuple(None for _ in self.detail_keys)
        if isinstance(details, str):
            found = (self._detail_patterns[key].search(details) for key in self.detail_keys)
            return tuple(match.group(1) if match else None for match in found)
        return tuple(value if isinstance(value := details.get(key), str) else None for key in self.detail_keys)

    def classify(
        self, type_: str, layer: str, verdict: str, details: Mapping[str, Any] | str | None = None
    ) -> Category:
        """The category of an event (``details``: its decoded details or their JSON text, None once erased)."""
        values = self.detail_values(details) if self.detail_keys else ()
        key = (type_, layer, verdict, *values)
        category = self._memo.get(key)
        if category is None:
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            category = self._memo[key] = self._classify(
                type_, layer, verdict, dict(zip(self.detail_keys, values, strict=True))
            )
        return category

    def _classify(self, type_: str, layer: str, verdict: str, detail_values: Mapping[str, str | None]) -> Category:
        status = self._statuses.get(verdict, "unknown")
        classified = self._ocsf_typed(type_)
        if classified is not None:
            ocsf_class, activity = classified
        else:
            rule = next((r for r in self._rules if r.matches(type_, layer, verdict, detail_values)), None)
            ocsf_class = self.classes[OTHER_CLASS] if rule is None else rule.ocsf_class
            activity = "other" if rule is None else rule.activity
            status = (rule.status if rule is not None else None) or status
        return Category(
            class_key=ocsf_class.key,
            class_uid=ocsf_class.uid,
            activity=activity,
            activity_id=ocsf_class.activities.get(activity, 99),
            status=status,
            status_id=STATUS_IDS[status],
        )

    def _ocsf_typed(self, type_: str) -> tuple[OcsfClass, str] | None:
        """The class and activity a type ``<ocsf_prefix><class_uid>.<activity_id>`` names, if this taxonomy has
        them (an event its source classified already)."""
        if not self._ocsf_prefix or not type_.startswith(self._ocsf_prefix):
            return None
        class_part, _, activity_part = type_[len(self._ocsf_prefix) :].partition(".")
        if not (class_part.isdigit() and activity_part.isdigit()):
            return None
        ocsf_class = self.by_uid.get(int(class_part))
        if ocsf_class is None or int(activity_part) not in ocsf_class.activities.values():
            return None
        return ocsf_class, ocsf_class.activity_name(int(activity_part))

    def class_key(self, class_uid: int) -> str:
        """The taxonomy's name of an OCSF class uid (``other`` for one it does not know)."""
        known = self.by_uid.get(class_uid)
        return OTHER_CLASS if known is None else known.key


def _strings(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(item) for item in value]


def _ocsf_class(key: str, spec: Mapping[str, Any], source: str) -> OcsfClass:
    try:
        activities = {str(name): int(uid) for name, uid in spec.get("activities", {}).items()}
        return OcsfClass(key, int(spec["uid"]), int(spec.get("category_uid", 0)), str(spec["name"]), activities)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"{source}: class {key} needs uid, name and activities ({exc})") from exc


def load_taxonomy(path: Path | str | None = None) -> Taxonomy:
    """Read a taxonomy file (the ``taxonomy.toml`` in force by default); an invalid one is a ``ConfigurationError``."""
    path = config_path(path, "taxonomy.toml")
    return Taxonomy(read_toml(path, "taxonomy"), str(path))


@functools.cache
def default_taxonomy() -> Taxonomy:
    """The taxonomy of the ``taxonomy.toml`` in force, read once per process."""
    return load_taxonomy()


def category_expr(taxonomy: Taxonomy) -> pl.Expr:
    """The category of each event of a frame (``type``, ``layer``, ``verdict`` and ``details`` columns) as a
    struct of ``CATEGORY_COLUMNS``: each batch's distinct keys are classified once (``Taxonomy.classify``), so
    it streams, and a frame's categories are exactly those of its events one by one."""
    detail_keys = taxonomy.detail_keys
    inputs = ["type", "layer", "verdict", *(["details"] if detail_keys else [])]
    dtype = pl.Struct({name: pl.Int32() for name in CATEGORY_COLUMNS})

    def classify(batch: pl.Series) -> pl.Series:
        frame = batch.struct.unnest().select(
            pl.col("type", "layer", "verdict").fill_null(""),  # the engine may probe the function with nulls
            *(pl.col("details").str.extract(detail_pattern(key), 1).alias(f"_d_{key}") for key in detail_keys),
        )
        rows = []
        for type_, layer, verdict, *values in frame.unique().iter_rows():
            category = taxonomy.classify(type_, layer, verdict, dict(zip(detail_keys, values, strict=True)))
            rows.append((type_, layer, verdict, *values, category.class_uid, category.activity_id, category.status_id))
        table = pl.DataFrame(rows, schema={**frame.schema, **dtype.to_schema()}, orient="row")
        joined = frame.join(table, on=frame.columns, how="left", nulls_equal=True, maintain_order="left")
        return joined.select(pl.struct(CATEGORY_COLUMNS)).to_series()

    return pl.struct(inputs).map_batches(classify, return_dtype=dtype, is_elementwise=True).alias("category")
