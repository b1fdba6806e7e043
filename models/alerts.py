"""Security alerts and detector scores (the alerts contract of TEAM.md), and their audit trail in the ledger.

Table ``alerts``: mutable status, at most one *active* alert per ``dedup_key`` (``<squid_id>:<pattern>``),
enforced by a partial unique index, so a repeat of the same pattern on the same identity updates the alert
instead of opening a second one, whichever process writes it. Two columns beyond the contract:
``window_start_ms`` (the feature window of the latest evidence) and ``occurrences`` (how often it repeated).
``explanation`` is JSON text: ``{"features": [{feature, value, baseline, deviation}], "windows": [ms, ...],
...}``; ``windows`` lists the windows the alert covered (what a dismissal turns into false-positive labels).

Table ``detector_scores``: the latest score of each (identity, window), newest per identity via
``AlertStore.latest_score``. Table ``detector_cursor``: the last ledger ``seq`` live detection processed.

The store writes these tables only: ``pipelines.alert_service.AlertService`` is the store whose every creation
and status change is also appended to the ledger.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import dataclasses
import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import polars as pl
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    Select,
    String,
    Text,
    and_,
    bindparam,
    desc,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Field, SQLModel

from models.database import connected, create_missing_tables, has_table, one_snapshot, read_frame
from models.reader import ReadSession
from qerberos.errors import ConflictError, LedgerError, NotFoundError, ValidationError

__all__ = [
    "SEVERITIES",
    "STATUSES",
    "ActiveAlert",
    "AlertCandidate",
    "AlertChange",
    "AlertRow",
    "AlertStore",
    "AlertTables",
    "AlertView",
    "DetectorCursor",
    "DetectorScore",
    "LatestScore",
    "ScoreRow",
    "create_alert_tables",
    "false_positive_labels",
]

Severity = Literal["low", "medium", "high", "critical"]
Status = Literal["active", "resolved", "dismissed"]
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
STATUSES: tuple[Status, ...] = ("active", "resolved", "dismissed")
_MAX_WINDOWS = 200


class AlertRow(SQLModel, table=True):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_status_created", "status", "created_at_ms"),
        Index("ix_alerts_squid_status_created", "squid_id", "status", "created_at_ms"),
        Index(
            "ux_alerts_active_dedup",
            "dedup_key",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: str = Field(sa_column=Column(String(36), primary_key=True))
    squid_id: str = Field(sa_column=Column(String(100), nullable=False))
    pattern: str = Field(sa_column=Column(String(100), nullable=False))
    technique: str | None = Field(default=None, sa_column=Column(String(20)))
    severity: str = Field(sa_column=Column(String(8), nullable=False))
    status: str = Field(sa_column=Column(String(10), nullable=False))
    score: float = Field(sa_column=Column(Float, nullable=False))
    description: str = Field(sa_column=Column(Text, nullable=False))
    explanation: str = Field(sa_column=Column(Text, nullable=False))
    created_at_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    reason: str | None = Field(default=None, sa_column=Column(Text))
    dedup_key: str = Field(sa_column=Column(String(220), nullable=False))
    window_start_ms: int | None = Field(default=None, sa_column=Column(BigInteger))
    occurrences: int = Field(default=1, sa_column=Column(Integer, nullable=False))


class DetectorScore(SQLModel, table=True):
    __tablename__ = "detector_scores"
    __table_args__ = (Index("ix_detector_scores_squid_window", "squid_id", "window_start_ms"),)

    squid_id: str = Field(sa_column=Column(String(100), primary_key=True))
    window_start_ms: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    score: float = Field(sa_column=Column(Float, nullable=False))
    model_version: str = Field(sa_column=Column(String(40), nullable=False))
    updated_at_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


class DetectorCursor(SQLModel, table=True):
    __tablename__ = "detector_cursor"

    name: str = Field(sa_column=Column(String(50), primary_key=True))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))


_alerts = AlertRow.__table__  # type: ignore[attr-defined]
_scores = DetectorScore.__table__  # type: ignore[attr-defined]
_REPORTED = ("id", "squid_id", "pattern", "technique", "severity", "status", "score", "created_at_ms",
             "updated_at_ms", "reason")  # fmt: skip
_cursor = DetectorCursor.__table__  # type: ignore[attr-defined]


def create_alert_tables(engine: Engine) -> None:
    """Create ``alerts``, ``detector_scores`` and ``detector_cursor``; safe to run again, beside other writers."""
    create_missing_tables(engine, [_alerts, _scores, _cursor])


@dataclasses.dataclass(frozen=True, slots=True)
class AlertView:
    """One alert as stored; ``explanation`` decoded."""

    id: str
    squid_id: str
    pattern: str
    technique: str | None
    severity: Severity
    status: Status
    score: float
    description: str
    explanation: Mapping[str, Any]
    created_at_ms: int
    updated_at_ms: int
    reason: str | None
    dedup_key: str
    window_start_ms: int | None
    occurrences: int


@dataclasses.dataclass(frozen=True, slots=True)
class AlertCandidate:
    """What a detector or a rule wants to raise; ``raise_alert`` creates or updates the active alert."""

    squid_id: str
    pattern: str
    technique: str | None
    severity: Severity
    score: float
    description: str
    explanation: Mapping[str, Any]
    window_start_ms: int | None = None
    # event time of the newest event behind it: the alert is created or updated at that time (never later than
    # the clock), so risk decays it in event time and a replay of last month dates its alerts last month
    occurred_at_ms: int | None = None

    @property
    def dedup_key(self) -> str:
        return f"{self.squid_id}:{self.pattern}"


@dataclasses.dataclass(frozen=True, slots=True)
class AlertChange:
    """The result of ``raise_alert``: ``kind`` is ``created``, ``escalated`` (severity rose) or ``repeated``."""

    alert: AlertView
    kind: Literal["created", "escalated", "repeated"]


@dataclasses.dataclass(frozen=True, slots=True)
class ScoreRow:
    squid_id: str
    window_start_ms: int
    score: float
    model_version: str


@contextlib.contextmanager
def _writing(engine: Engine, what: str) -> Iterator[Connection]:
    """A write transaction; on SQLite it takes the write lock up front (``BEGIN IMMEDIATE``, as the ledger's
    sequencer does), so it waits for a concurrent append instead of failing to upgrade a read lock."""
    try:
        if engine.dialect.name == "sqlite":
            options = {"qerberos_immediate": True}  # models.database's BEGIN IMMEDIATE switch
            with engine.connect().execution_options(**options) as connection, connection.begin():
                yield connection
        else:
            with engine.begin() as connection:
                yield connection
    except SAIntegrityError:
        raise
    except SQLAlchemyError as exc:
        raise LedgerError(f"could not write {what}: {exc.__class__.__name__}") from exc


def _now_ms() -> int:
    return int(time.time() * 1000)


def _view(row: Any) -> AlertView:
    return AlertView(
        id=row.id, squid_id=row.squid_id, pattern=row.pattern, technique=row.technique, severity=row.severity,
        status=row.status, score=float(row.score), description=row.description,
        explanation=json.loads(row.explanation), created_at_ms=int(row.created_at_ms),
        updated_at_ms=int(row.updated_at_ms), reason=row.reason, dedup_key=row.dedup_key,
        window_start_ms=row.window_start_ms, occurrences=int(row.occurrences),
    )  # fmt: skip


def _first_window(explanation: str | None, window_start_ms: int | None, created_at_ms: int) -> int:
    """The start of an alert's first detection window (see ``AlertStore.about_activity_between``)."""
    try:
        windows = [int(w) for w in json.loads(explanation or "{}").get("windows", [])]
    except (ValueError, TypeError, AttributeError):
        windows = []
    return min(windows) if windows else window_start_ms if window_start_ms is not None else created_at_ms


def _merged_windows(old: Mapping[str, Any], window_start_ms: int | None) -> list[int]:
    windows = [int(w) for w in old.get("windows", [])]
    if window_start_ms is not None and window_start_ms not in windows:
        windows.append(window_start_ms)
    return windows[-_MAX_WINDOWS:]


def alert_cursor(alert: AlertView) -> str:
    """The opaque cursor after ``alert`` in the newest-first order of ``AlertStore.list``."""
    return base64.urlsafe_b64encode(f"alert:{alert.created_at_ms}:{alert.id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise _invalid_cursor() from exc
    prefix, _, rest = text.partition(":")
    created_text, _, alert_id = rest.partition(":")
    if prefix != "alert" or not (created_text.isascii() and created_text.isdigit()) or len(created_text) > 18:
        raise _invalid_cursor()
    return int(created_text), alert_id


def _invalid_cursor() -> ValidationError:
    return ValidationError("invalid cursor", details={"cursor": "not a cursor this service issued"})


class AlertStore:
    """Read and write alerts and detector scores."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine

    # -- reading -------------------------------------------------------------------------------------

    def list(
        self,
        *,
        severity: str | None = None,
        status: str | None = None,
        squid_id: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[AlertView]:
        """Newest first; ``after``: the cursor of the last alert of the previous page (``alert_cursor``)."""
        with connected(self._engine) as connection:
            return [_view(row) for row in connection.execute(self._listing(severity, status, squid_id, limit, after))]

    def _listing(
        self, severity: str | None, status: str | None, squid_id: str | None, limit: int, after: str | None
    ) -> Select[Any]:
        conditions = self._filters(severity, status, squid_id)
        if after is not None:
            created_at_ms, alert_id = _decode_cursor(after)
            created = _alerts.c.created_at_ms
            conditions.append(or_(created < created_at_ms, and_(created == created_at_ms, _alerts.c.id > alert_id)))
        statement = select(_alerts).where(*conditions)
        return statement.order_by(_alerts.c.created_at_ms.desc(), _alerts.c.id).limit(limit)

    def count(self, *, severity: str | None = None, status: str | None = None, squid_id: str | None = None) -> int:
        with connected(self._engine) as connection:
            return self._count(connection, severity, status, squid_id)

    def page(
        self, *, severity: str | None = None, status: str | None = None, limit: int = 100, after: str | None = None
    ) -> tuple[builtins.list[AlertView], int]:
        """``list`` and the ``count`` of every alert its filters match, read from one snapshot: the total never
        disagrees with the page while alerts are raised."""
        with one_snapshot(self._engine) as connection:
            listed = [_view(row) for row in connection.execute(self._listing(severity, status, None, limit, after))]
            return listed, self._count(connection, severity, status, None)

    def _count(self, connection: Connection, severity: str | None, status: str | None, squid_id: str | None) -> int:
        statement = select(func.count()).select_from(_alerts).where(*self._filters(severity, status, squid_id))
        return int(connection.execute(statement).scalar_one())

    @staticmethod
    def _filters(severity: str | None, status: str | None, squid_id: str | None) -> builtins.list[Any]:
        conditions = []
        if severity is not None:
            conditions.append(_alerts.c.severity == severity)
        if status is not None:
            conditions.append(_alerts.c.status == status)
        if squid_id is not None:
            conditions.append(_alerts.c.squid_id == squid_id)
        return conditions

    def get(self, alert_id: str) -> AlertView:
        with connected(self._engine) as connection:
            row = connection.execute(select(_alerts).where(_alerts.c.id == str(alert_id))).first()
        if row is None:
            raise NotFoundError(f"no alert with id {alert_id}")
        return _view(row)

    def active_for(self, squid_id: str) -> builtins.list[AlertView]:
        return self.list(status="active", squid_id=squid_id, limit=1000)

    def latest_score(self, squid_id: str) -> ScoreRow | None:
        statement = (
            select(_scores).where(_scores.c.squid_id == squid_id).order_by(_scores.c.window_start_ms.desc()).limit(1)
        )
        with connected(self._engine) as connection:
            row = connection.execute(statement).first()
        return (
            None
            if row is None
            else ScoreRow(row.squid_id, int(row.window_start_ms), float(row.score), row.model_version)
        )

    # -- what compliance reports read ----------------------------------------------------------------

    def about_activity_between(self, start_ms: int, end_ms: int) -> pl.DataFrame | None:
        """The alerts about activity in ``[start_ms, end_ms)``: their first detection window (the earliest of
        ``explanation.windows``, else ``window_start_ms``, else the raise time) starts in it, whenever they
        were raised. Columns: the contract's but the texts (``id``, ``squid_id``, ``pattern``, ``technique``,
        ``severity``, ``status``, ``score``, ``created_at_ms``, ``updated_at_ms``, ``reason``) and
        ``window_ms``, the first window's start; None when there is no ``alerts`` table.

        An alert is raised after the activity it is about, so only alerts raised since ``start_ms`` are read."""
        if not has_table(self._engine, "alerts"):
            return None
        columns = (*(_alerts.c[name] for name in _REPORTED), _alerts.c.window_start_ms, _alerts.c.explanation)
        statement = select(*columns).where(_alerts.c.created_at_ms >= start_ms)
        raised = read_frame(self._engine, statement, "the alerts")
        first_windows = [
            _first_window(explanation, window, created)
            for explanation, window, created in raised.select("explanation", "window_start_ms", "created_at_ms").rows()
        ]
        about = raised.drop("explanation", "window_start_ms").with_columns(
            window_ms=pl.Series(first_windows, dtype=pl.Int64)
        )
        return about.filter((pl.col("window_ms") >= start_ms) & (pl.col("window_ms") < end_ms))

    def highest_detector_scores(self, start_ms: int, end_ms: int, limit: int) -> pl.DataFrame | None:
        """``squid_id`` and ``risk``: each identity's highest score of a window starting in ``[start_ms,
        end_ms)``, the ``limit`` highest first; None when there is no ``detector_scores`` table."""
        if not has_table(self._engine, "detector_scores"):
            return None
        window = _scores.c.window_start_ms
        statement = (
            select(_scores.c.squid_id, func.max(_scores.c.score).label("risk"))
            .where(window >= start_ms, window < end_ms)
            .group_by(_scores.c.squid_id)
            .order_by(desc("risk"), _scores.c.squid_id)
            .limit(limit)
        )
        return read_frame(self._engine, statement, "the detector scores")

    # -- writing -------------------------------------------------------------------------------------

    def record_scores(self, rows: Sequence[ScoreRow]) -> None:
        """Upsert the score of each (identity, window): a window scored again keeps its latest score."""
        if not rows:
            return
        now = _now_ms()
        values = [
            {"squid_id": r.squid_id, "window_start_ms": r.window_start_ms, "score": r.score,
             "model_version": r.model_version, "updated_at_ms": now}
            for r in rows
        ]  # fmt: skip
        insert = sqlite_insert if self._engine.dialect.name == "sqlite" else pg_insert
        statement = insert(_scores).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["squid_id", "window_start_ms"],
            set_={k: statement.excluded[k] for k in ("score", "model_version", "updated_at_ms")},
        )
        with _writing(self._engine, "detector scores") as connection:
            connection.execute(statement)

    def raise_alert(self, candidate: AlertCandidate, *, now_ms: int | None = None) -> AlertChange:
        """Create the active alert of ``candidate.dedup_key``, or update it (severity and score only rise).

        Its time: ``now_ms``, else the candidate's event time (capped at the clock), else the clock."""
        clock = _now_ms()
        if now_ms is not None:
            now = now_ms
        else:
            now = clock if candidate.occurred_at_ms is None else min(candidate.occurred_at_ms, clock)
        for _attempt in range(3):
            try:
                change = self._raise_once(candidate, now)
                break
            except SAIntegrityError:
                continue  # another writer created the same active alert first: update that one
        else:
            raise ConflictError("could not store the alert", details={"dedup_key": candidate.dedup_key})
        return change

    def _raise_once(self, candidate: AlertCandidate, now: int) -> AlertChange:
        with _writing(self._engine, "an alert") as connection:
            row = connection.execute(
                select(_alerts).where(_alerts.c.dedup_key == candidate.dedup_key, _alerts.c.status == "active")
            ).first()
            if row is None:
                explanation = {**candidate.explanation, "windows": _merged_windows({}, candidate.window_start_ms)}
                values = {
                    "id": str(uuid.uuid4()), "squid_id": candidate.squid_id, "pattern": candidate.pattern,
                    "technique": candidate.technique, "severity": candidate.severity, "status": "active",
                    "score": float(candidate.score), "description": candidate.description,
                    "explanation": json.dumps(explanation), "created_at_ms": now, "updated_at_ms": now,
                    "reason": None, "dedup_key": candidate.dedup_key, "window_start_ms": candidate.window_start_ms,
                    "occurrences": 1,
                }  # fmt: skip
                connection.execute(_alerts.insert().values(values))
                return AlertChange(_view(_Row(values)), "created")
            old = _view(row)
            rank = SEVERITIES.index
            escalated = rank(candidate.severity) > rank(old.severity)
            stronger = escalated or candidate.score >= old.score
            explanation = dict(candidate.explanation) if stronger else dict(old.explanation)
            explanation["windows"] = _merged_windows(old.explanation, candidate.window_start_ms)
            updated = dataclasses.replace(
                old,
                severity=candidate.severity if escalated else old.severity,
                score=max(float(candidate.score), old.score),
                description=candidate.description if stronger else old.description,
                explanation=explanation,
                updated_at_ms=now,
                window_start_ms=candidate.window_start_ms or old.window_start_ms,
                occurrences=old.occurrences + 1,
            )
            values = {
                "severity": updated.severity,
                "score": updated.score,
                "description": updated.description,
                "explanation": json.dumps(explanation),
                "updated_at_ms": now,
                "window_start_ms": updated.window_start_ms,
                "occurrences": updated.occurrences,
            }
            connection.execute(_alerts.update().where(_alerts.c.id == old.id).values(values))
            return AlertChange(updated, "escalated" if escalated else "repeated")

    def set_status(self, alert_id: str, status: str, reason: str) -> AlertView:
        """Resolve or dismiss an active alert with a reason.

        A dismissal is a false-positive label for the next training (see ``false_positive_labels``).
        """
        problems = {}
        if status not in ("resolved", "dismissed"):
            problems["status"] = "must be resolved or dismissed"
        if not reason or not reason.strip():
            problems["reason"] = "a reason is required"
        elif len(reason) > 1000:
            problems["reason"] = "at most 1000 characters"
        if problems:
            raise ValidationError("invalid alert update", details=problems)
        now = _now_ms()
        with _writing(self._engine, "an alert") as connection:
            row = connection.execute(select(_alerts).where(_alerts.c.id == str(alert_id))).first()
            if row is None:
                raise NotFoundError(f"no alert with id {alert_id}")
            if row.status != "active":
                raise ConflictError(f"alert {alert_id} is already {row.status}", details={"status": row.status})
            connection.execute(
                _alerts.update().where(_alerts.c.id == str(alert_id))
                .values(status=status, reason=reason.strip(), updated_at_ms=now)
            )  # fmt: skip
        return dataclasses.replace(_view(row), status=status, reason=reason.strip(), updated_at_ms=now)  # type: ignore[arg-type]

    # -- live detection's cursor ---------------------------------------------------------------------

    def cursor(self, name: str = "live") -> int:
        """The last ledger ``seq`` processed (-1 before the first)."""
        with connected(self._engine) as connection:
            seq = connection.execute(select(_cursor.c.seq).where(_cursor.c.name == name)).scalar()
        return -1 if seq is None else int(seq)

    def save_cursor(self, seq: int, name: str = "live") -> None:
        insert = sqlite_insert if self._engine.dialect.name == "sqlite" else pg_insert
        statement = insert(_cursor).values(name=name, seq=seq)
        statement = statement.on_conflict_do_update(index_elements=["name"], set_={"seq": statement.excluded.seq})
        with _writing(self._engine, "the detector cursor") as connection:
            connection.execute(statement)


#: An active alert as risk reads it: ``(severity, score, status, created_at_ms, updated_at_ms, pattern, technique)``.
ActiveAlert = tuple[str, float, str, int, int, str, str | None]
#: An identity's newest detector score: ``(score, window_start_ms)``.
LatestScore = tuple[float, int]
_ACTIVE = (
    select(
        _alerts.c.severity, _alerts.c.score, _alerts.c.status, _alerts.c.created_at_ms, _alerts.c.updated_at_ms,
        _alerts.c.pattern, _alerts.c.technique,
    )
    .where(_alerts.c.status == "active", _alerts.c.squid_id == bindparam("identity"))
)  # fmt: skip
_LATEST_SCORE = (
    select(_scores.c.score, _scores.c.window_start_ms)
    .where(_scores.c.squid_id == bindparam("identity"))
    .order_by(_scores.c.window_start_ms.desc())
    .limit(1)
)


class AlertTables:
    """An identity's active alerts and newest detector score as the risk service reads them: on its read session
    (``models.reader.ReadSession``), inside the transaction that reads the ledger, with two prebuilt, indexed
    statements rather than two more connections through ``AlertStore``.

    They find what ``AlertStore.active_for`` and ``AlertStore.latest_score`` find, through the same indexes
    (``ix_alerts_squid_status_created``, ``ix_detector_scores_squid_window``). ``active_for`` also orders by
    creation and keeps the newest 1000; the risk factors do not depend on the order, and an identity has at most
    one active alert per pattern (``ux_alerts_active_dedup``), so the limit never cuts.
    """

    def active_alerts(self, session: ReadSession, identity: str) -> list[ActiveAlert]:
        try:
            rows = session.connection.execute(_ACTIVE, {"identity": identity}).all()
        except SQLAlchemyError as exc:
            raise LedgerError(f"could not read the alerts of an identity: {exc.__class__.__name__}") from exc
        return [
            (str(severity), float(score or 0.0), str(status), int(created), int(updated), str(pattern), technique)
            for severity, score, status, created, updated, pattern, technique in rows
        ]

    def latest_score(self, session: ReadSession, identity: str) -> LatestScore | None:
        try:
            row = session.connection.execute(_LATEST_SCORE, {"identity": identity}).first()
        except SQLAlchemyError as exc:
            raise LedgerError(f"could not read the detector score of an identity: {exc.__class__.__name__}") from exc
        return None if row is None else (float(row.score), int(row.window_start_ms))


class _Row:
    """Attribute access over a dict of column values (to build a view of a row just inserted)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)


def false_positive_labels(engine: Engine) -> pl.DataFrame:
    """Dismissed alerts as training labels: ``squid_id``, ``window_start`` (Datetime ms UTC), ``label`` = 0.

    One row per window a dismissed alert covered (its ``explanation.windows``), deduplicated. An identity
    whose alert was dismissed was judged normal in those windows, whatever the detector said.
    """
    with connected(engine) as connection:
        rows = connection.execute(
            select(_alerts.c.squid_id, _alerts.c.explanation, _alerts.c.window_start_ms).where(
                _alerts.c.status == "dismissed"
            )
        ).all()
    squids: list[str] = []
    starts: list[int] = []
    for squid_id, explanation, window_start_ms in rows:
        windows = json.loads(explanation).get("windows") or ([window_start_ms] if window_start_ms is not None else [])
        for window in windows:
            squids.append(squid_id)
            starts.append(int(window))
    frame = pl.DataFrame(
        {"squid_id": squids, "window_start": starts, "label": [0] * len(squids)},
        schema={"squid_id": pl.String, "window_start": pl.Int64, "label": pl.Int8},
    )
    return (
        frame.with_columns(pl.col("window_start").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"))
        .unique(["squid_id", "window_start"])
        .sort(["squid_id", "window_start"])
    )
