"""The ledger service: append, read, search, checkpoint and prove.

Every append runs inside the one sequencer (``models.database.sequenced``): it reads the head (the last
chain hash and the Merkle frontier, O(log n) rows), gives each new event the next sequence number, its
canonical bytes, leaf hash and chain hash, and writes the events, their erasable details and the Merkle
nodes they complete in the same transaction. Nothing here updates or deletes a ledger row.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from models import merkle
from models.canonical import canonical_json, canonical_record, commit_canonical_details, from_epoch_ms, to_epoch_ms
from models.database import (
    Query,
    connected,
    create_ledger_engine,
    create_schema,
    database_errors,
    fetch_all,
    fetch_rows,
    insert_rows,
    is_sqlite,
    reading,
    refresh_statistics,
    refused_for_its_data,
    row_writer,
    sequenced,
)
from models.match_counts import Counted, MatchCounts
from models.records import (
    ERASURE_REF_PREFIX,
    ERASURE_TYPE,
    Actor,
    AppendResult,
    LedgerRecord,
    NewEvent,
    SearchPage,
    SearchQuery,
)
from models.signing import LogSigner
from models.tables import CheckpointRow, EventDetails, LedgerEntry, MerkleNode
from qerberos.errors import ConflictError, LedgerError, NotFoundError, ValidationError
from qerberos.json_input import unstorable_text
from qerberos.settings import Settings

logger = logging.getLogger(__name__)

GENESIS_CHAIN_HASH = bytes(32)
_SALT_BYTES = 16
_RANDOM_BYTES = _SALT_BYTES * 2  # an event's share of its batch's randomness: its salt, then its id's bits
_MIN_EPOCH_MS = 0
_MAX_EPOCH_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
MAX_SEQ = 2**63 - 1
"""The largest sequence number or tree size there can be: both backends store them as signed 64-bit integers
(BIGINT), and a larger Python int bound to a statement fails in the driver instead of matching nothing."""
_SEQ_TEXT = re.compile("[0-9]{1,19}")  # ASCII digits only: str.isdecimal() also takes "٣" (Arabic-Indic three)
_entries = LedgerEntry.__table__  # type: ignore[attr-defined]
_details = EventDetails.__table__  # type: ignore[attr-defined]
_nodes = MerkleNode.__table__  # type: ignore[attr-defined]
_checkpoints = CheckpointRow.__table__  # type: ignore[attr-defined]
_ENTRY_COLUMNS = tuple(column.name for column in _entries.columns)
_RECORD_COLUMNS = tuple(name for name in _ENTRY_COLUMNS if name != "canonical")
_SELECT_RECORDS = (
    f"SELECT {', '.join(f'e.{name}' for name in _RECORD_COLUMNS)}, d.details"
    " FROM ledger_entries e LEFT JOIN event_details d ON d.seq = e.seq"
)
_encode_json = msgspec.json.Encoder().encode
_decode_texts = msgspec.json.Decoder(list[str]).decode
_Condition = tuple[Any, ...]
"""A term of a WHERE clause with ``?`` placeholders, followed by their values."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclasses.dataclass(frozen=True, slots=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    proof: Sequence[bytes]
    checkpoint: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "leafIndex": self.leaf_index,
            "treeSize": self.tree_size,
            "leafHash": b64(self.leaf_hash),
            "proof": [b64(node) for node in self.proof],
            "checkpoint": self.checkpoint,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class ConsistencyProof:
    first: int
    second: int
    proof: Sequence[bytes]

    def to_json(self) -> dict[str, Any]:
        return {"first": self.first, "second": self.second, "proof": [b64(node) for node in self.proof]}


class _Prepared(msgspec.Struct, frozen=True):
    """A validated event with everything that does not depend on its position in the log."""

    event: NewEvent
    id: str
    uuid: uuid.UUID  # ``id`` as the record carries it, built once here rather than parsed back from text
    occurred_at_ms: int | None
    salt: bytes
    details_text: str  # the canonical (RFC 8785) details, stored so their commitment re-derives byte for byte
    commitment: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Head:
    """The end of the log: its size, last chain hash and Merkle frontier (``merkle.frontier_keys(size)``)."""

    size: int
    chain_hash: bytes
    frontier: dict[tuple[int, int], bytes]


class Ledger:
    """The append-only, hash-linked, Merkle-committed audit log."""

    def __init__(self, engine: Engine, signer: LogSigner, *, checkpoint_interval: float = 5.0) -> None:
        self._engine = engine
        self._signer = signer
        self._checkpoint_interval = checkpoint_interval
        self._match_counts = MatchCounts()
        self._last_head = _Head(0, GENESIS_CHAIN_HASH, {})  # as this instance last wrote it
        self._write_failure: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Ledger:
        engine = create_ledger_engine(settings.database_url)
        signer = LogSigner.load(settings.home, settings.log_origin, settings.key_passphrase)
        return cls(engine, signer, checkpoint_interval=settings.checkpoint_interval)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def origin(self) -> str:
        return self._signer.origin

    @property
    def write_failure(self) -> str | None:
        """Why this instance's last write (an append, an erasure, a checkpoint) failed in the database (a full
        disk, a lost server), ``None`` once a write succeeds: whether the ledger can take writes, as
        ``/health`` reports it. A write the database refused for its data is not counted."""
        return self._write_failure

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except LedgerError as exc:
            if not refused_for_its_data(exc.__cause__):
                self._write_failure = exc.message
            raise
        self._write_failure = None

    @property
    def checkpoint_interval(self) -> float:
        """Seconds between signed checkpoints while the log grows."""
        return self._checkpoint_interval

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- appending ---------------------------------------------------------------------------------

    def append(self, events: Sequence[NewEvent]) -> list[AppendResult]:
        """Append all events or none. A known id with the same content answers its original record."""
        prepared = _prepare_all(events)
        with self._writing(), sequenced(self._engine) as connection:
            return self._append_in(connection, prepared)

    def erase(self, squid_id: str, *, requested_by: str) -> int:
        """Delete an identity's personal details (GDPR Art. 17); every hash and proof still verifies.

        The erasure is itself appended as a ``gdpr.erasure`` audit event, before the details go: the
        database deletes a details row only when such an event of its identity follows its entry
        (``models.database``), and ``verify`` names every missing row that none covers. Returns how many
        events lost their details.
        """
        with self._writing(), sequenced(self._engine) as connection:
            owned = _details.c.seq.in_(select(_entries.c.seq).where(_entries.c.actor_squid_id == squid_id))
            held = connection.execute(select(func.count()).select_from(_details).where(owned)).scalar_one()
            erasure = NewEvent(
                type=ERASURE_TYPE,
                ref=f"{ERASURE_REF_PREFIX}{squid_id}",
                actor=Actor(squid_id),
                layer="qerberos",
                verdict="ALLOW",
                source=requested_by,
                details={"erasedEvents": held, "article": "GDPR Art. 17"},
            )
            (appended,) = self._append_in(connection, _prepare_all([erasure]))
            before = _details.c.seq < appended.record.seq  # the erasure's own details stay
            erased = connection.execute(_details.delete().where(owned, before)).rowcount
        logger.info("erased details of %d events", erased)
        return erased

    def _append_in(self, connection: Connection, prepared: Sequence[_Prepared]) -> list[AppendResult]:
        known = self._known(connection, {item.id for item in prepared if item.event.id is not None})
        head = self._head(connection)
        received_at_ms = to_epoch_ms(dt.datetime.now(dt.UTC))
        received_at = from_epoch_ms(received_at_ms)
        results: list[AppendResult] = []
        detail_rows: list[tuple[Any, ...]] = []
        leaf_hashes: list[bytes] = []
        chain_hash = head.chain_hash
        sha256 = hashlib.sha256
        # each entry is written as soon as it is hashed: PostgreSQL indexes it while the next one is hashed
        with row_writer(connection, "ledger_entries", _ENTRY_COLUMNS) as write_entry:
            for index, item in enumerate(prepared):
                if item.id in known:
                    results.append(AppendResult(_check_same(index, item, known[item.id]), created=False))
                    continue
                event, actor = item.event, item.event.actor
                seq = head.size + len(leaf_hashes)
                if item.occurred_at_ms is None:
                    occurred_at_ms, occurred_at = received_at_ms, received_at
                else:
                    occurred_at_ms, occurred_at = item.occurred_at_ms, from_epoch_ms(item.occurred_at_ms)
                canonical = canonical_record(
                    seq=seq, event_id=item.id, type=event.type, ref=event.ref, squid_id=actor.squid_id,
                    sub_id=actor.sub_id, dao_id=actor.dao_id, layer=event.layer, verdict=event.verdict,
                    details_commitment=item.commitment, cid=event.cid, occurred_at_ms=occurred_at_ms,
                    received_at_ms=received_at_ms, source=event.source,
                )  # fmt: skip
                leaf = sha256(b"\x00" + canonical).digest()
                chain_hash = sha256(chain_hash + leaf).digest()
                write_entry((
                    seq, item.id, event.type, event.ref, actor.squid_id, actor.sub_id, actor.dao_id, event.layer,
                    event.verdict, item.commitment, event.cid, occurred_at_ms, received_at_ms, event.source,
                    canonical.decode(), leaf, chain_hash,
                ))  # fmt: skip
                detail_rows.append((seq, item.salt, item.details_text))
                leaf_hashes.append(leaf)
                record = LedgerRecord(
                    seq=seq, id=item.uuid, type=event.type, ref=event.ref, actor=actor, layer=event.layer,
                    verdict=event.verdict, details=event.details, details_commitment=item.commitment,
                    cid=event.cid, occurred_at=occurred_at, received_at=received_at, source=event.source,
                    leaf_hash=leaf, chain_hash=chain_hash,
                )  # fmt: skip
                known[item.id] = record
                results.append(AppendResult(record, created=True))
        if leaf_hashes:
            new_nodes, frontier = merkle.append_batch(head.size, leaf_hashes, head.frontier)
            insert_rows(connection, "event_details", ("seq", "salt", "details"), detail_rows)
            if new_nodes:
                insert_rows(connection, "merkle_nodes", ("level", "idx", "hash"), new_nodes)
            self._last_head = _Head(head.size + len(leaf_hashes), chain_hash, frontier)
        return results

    def _known(self, connection: Connection, ids: set[str]) -> dict[str, LedgerRecord]:
        if not ids:
            return {}
        return {str(record.id): record for record in _select(connection, [(f"e.id IN ({_markers(ids)})", *ids)])}

    def _head(self, connection: Connection) -> _Head:
        """The head under the sequencer: the last entry, and the frontier read only if another writer moved it.

        The chain hash commits to every leaf, so the head this instance last wrote still holds when the
        last entry's size and chain hash match it (a rolled-back append leaves a head that does not match).
        """
        last = fetch_rows(connection, "SELECT seq, chain_hash FROM ledger_entries ORDER BY seq DESC LIMIT 1", ())
        if not last:
            return _Head(0, GENESIS_CHAIN_HASH, {})
        ((seq, chain_hash),) = last
        cached = self._last_head
        if (cached.size, cached.chain_hash) == (seq + 1, chain_hash):
            return cached
        return _Head(seq + 1, chain_hash, self._fetch_nodes(connection, merkle.frontier_keys(seq + 1)))

    # -- reading -----------------------------------------------------------------------------------

    def size(self) -> int:
        with connected(self._engine) as connection:
            return _size(connection)

    def get(self, event_id: uuid.UUID) -> LedgerRecord:
        with connected(self._engine) as connection:
            found = _select(connection, [("e.id = ?", str(event_id))])
        if not found:
            raise NotFoundError(f"no audit event with id {event_id}")
        return found[0]

    def get_by_seq(self, seq: int) -> LedgerRecord:
        with connected(self._engine) as connection:
            found = _select(connection, [("e.seq = ?", seq)])
        if not found:
            raise NotFoundError(f"no audit event at sequence number {seq}")
        return found[0]

    def records_after(self, seq: int, limit: int) -> list[LedgerRecord]:
        """Up to ``limit`` records with a sequence number above ``seq``, oldest first (what the event publisher
        reads past its cursor)."""
        with connected(self._engine) as connection:
            return _select(connection, [("e.seq > ?", seq)], limit=limit, oldest_first=True)

    def search(self, query: SearchQuery) -> SearchPage:
        """One page of the events matching ``query``, newest first, and how many match in all.

        Both statements go to the driver as plain SQL (see ``_select``); the count reads only the index of
        the filtered column (``(actor_squid_id, seq)`` for an actor), never the rows, and only the entries
        appended since the same filter was last counted (``_count``).
        """
        conditions = _search_conditions(query)
        page_conditions = list(conditions)
        if query.cursor is not None:
            page_conditions.append(("e.seq < ?", _decode_cursor(query.cursor)))
        with connected(self._engine) as connection:
            total = self._count(connection, conditions)
            records = _select(
                connection,
                page_conditions,
                limit=query.limit + 1,
                offset=0 if query.cursor is not None else query.offset,
            )
        has_more = len(records) > query.limit
        records = records[: query.limit]
        next_cursor = _encode_cursor(records[-1].seq) if has_more and records else None
        return SearchPage(records, total, has_more, next_cursor)

    def _count(self, connection: Connection, conditions: Sequence[_Condition]) -> int:
        """How many entries match ``conditions``: the count last made of them plus the matches appended since.

        Entries below a sequence number never change (``models.match_counts``). One statement reads the new
        matches and the ledger's size from one snapshot, and appends commit in sequence order, so that
        snapshot holds exactly the entries below its size: the count then stands for them.
        """
        where, parameters = _where(conditions)
        key = (where, *parameters)
        known = self._match_counts.get(key)
        since = [*conditions, ("e.seq >= ?", known.below)] if known.below else conditions
        new_where, new_parameters = _where(since)
        statement = (
            f"SELECT (SELECT count(*) FROM ledger_entries e{new_where}),"
            " (SELECT COALESCE(max(seq) + 1, 0) FROM ledger_entries)"
        )
        ((new_matches, size),) = fetch_rows(connection, statement, new_parameters)
        counted = Counted(known.matches + new_matches, size)
        self._match_counts.put(key, counted)
        return counted.matches

    # -- checkpoints and proofs --------------------------------------------------------------------

    def checkpoint(self, *, force: bool = False) -> str:
        """The latest signed checkpoint; a new one when the log grew and the interval passed (or force)."""
        with reading(self._engine) as connection:
            latest_rows, size_rows = fetch_all(connection, [(_LATEST_CHECKPOINT, ()), _SIZE])
        size = _size_of(size_rows)
        now_ms = int(time.time() * 1000)
        if latest_rows:
            ((latest_size, latest_note, latest_created_at_ms),) = latest_rows
            if latest_size >= size or (not force and now_ms - latest_created_at_ms < self._checkpoint_interval * 1000):
                return str(latest_note)
        if not latest_rows or size.bit_length() > latest_size.bit_length():
            with self._writing():
                refresh_statistics(self._engine)  # the log doubled since: the planner's picture is stale
        return self._make_checkpoint(size, now_ms)

    def _make_checkpoint(self, size: int, now_ms: int) -> str:
        root = self.root(size)
        note = self.sign_tree(size, root)
        row = {"size": size, "root_hash": root, "note": note, "created_at_ms": now_ms}
        dialect_insert = sqlite_insert if is_sqlite(self._engine) else pg_insert
        with self._writing(), database_errors("storing a checkpoint"), self._engine.begin() as connection:
            connection.execute(dialect_insert(_checkpoints).values(row).on_conflict_do_nothing())
        logger.info("checkpoint at size %d", size)
        return note

    def root(self, size: int) -> bytes:
        """The Merkle root of the first ``size`` entries, from the stored nodes (O(log n) rows)."""
        with reading(self._engine) as connection:
            return merkle.root(size, self._fetch_nodes(connection, merkle.root_keys(size)))

    def sign_tree(self, size: int, root: bytes) -> str:
        """A signed checkpoint of the tree of ``size`` leaves with ``root`` (not stored here), if the signer
        finds it consistent with the last tree it signed, by proofs from this ledger's nodes."""
        return self._signer.sign_checkpoint(size, root, self._prove)

    def _prove(self, first: int, second: int) -> Sequence[bytes]:
        return self.consistency_proof(first, second).proof

    def checkpoint_history(self) -> list[tuple[int, str]]:
        """``(size, note)`` of every checkpoint in the signer's history outside the database, smallest first."""
        return list(self._signer.history())

    def checkpoints(self) -> list[str]:
        with connected(self._engine) as connection:
            notes = connection.execute(select(_checkpoints.c.note).order_by(_checkpoints.c.size)).scalars()
            return [str(note) for note in notes]

    def checkpoint_age_seconds(self) -> float | None:
        with connected(self._engine) as connection:
            created = connection.execute(select(func.max(_checkpoints.c.created_at_ms))).scalar()
        return None if created is None else max(0.0, time.time() - created / 1000)

    def unsigned_age_seconds(self) -> float:
        """How long the oldest entry that no signed checkpoint covers has waited; 0 when the newest checkpoint
        covers the whole log (an idle log is not a stuck checkpointer)."""
        with connected(self._engine) as connection:
            covered = connection.execute(select(func.coalesce(func.max(_checkpoints.c.size), 0))).scalar_one()
            first_unsigned = select(_entries.c.received_at_ms).where(_entries.c.seq == covered)
            received_ms = connection.execute(first_unsigned).scalar()
        return 0.0 if received_ms is None else max(0.0, time.time() - received_ms / 1000)

    def verifier_key(self) -> str:
        return self._signer.verifier_key()

    def verifier_keys(self) -> list[str]:
        return self._signer.verifier_keys()

    def inclusion_proof(self, seq: int, tree_size: int | None = None) -> InclusionProof:
        """Proof that event ``seq`` is in the tree of ``tree_size`` (default: the latest checkpoint)."""
        if tree_size is None:
            tree_size = checkpoint_size(self.checkpoint(force=True))
        _check_leaf(seq, tree_size)
        keys = {*merkle.inclusion_proof_keys(seq, tree_size), (0, seq)}
        # one round trip, three index lookups (size, O(log n) nodes, the checkpoint): O(log n) at any size
        with reading(self._engine) as connection:
            size_rows, node_rows, note_rows = fetch_all(
                connection, [_SIZE, _nodes_query(keys), (_CHECKPOINT_AT, (tree_size,))]
            )
        _check_within(tree_size, _size_of(size_rows))
        nodes = _nodes_found(keys, node_rows)
        proof = merkle.inclusion_proof(seq, tree_size, nodes)
        return InclusionProof(seq, tree_size, nodes[(0, seq)], proof, str(note_rows[0][0]) if note_rows else None)

    def consistency_proof(self, first: int, second: int) -> ConsistencyProof:
        _check_sizes(first, second)
        keys = set(merkle.consistency_proof_keys(first, second))
        with reading(self._engine) as connection:
            size_rows, node_rows = fetch_all(connection, [_SIZE, _nodes_query(keys)])
        _check_within(second, _size_of(size_rows))
        return ConsistencyProof(first, second, merkle.consistency_proof(first, second, _nodes_found(keys, node_rows)))

    def _fetch_nodes(self, connection: Connection, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Read node hashes by (level, index): level 0 from the entries, the rest from merkle_nodes."""
        wanted = set(keys)
        return _nodes_found(wanted, fetch_rows(connection, *_nodes_query(wanted)))


def parse_seq(text: str) -> int | None:
    """The sequence number (or tree size) that ``text`` spells in ASCII digits, or ``None`` when it spells
    none: other characters, or a number beyond ``MAX_SEQ``."""
    if _SEQ_TEXT.fullmatch(text) is None:
        return None
    seq = int(text)
    return seq if seq <= MAX_SEQ else None


def checkpoint_size(note: str) -> int:
    """The tree size a signed checkpoint note commits to (its second line)."""
    return int(note.split("\n", 2)[1])


def initialise(settings: Settings) -> Ledger:
    """Prepare ``QERBEROS_HOME``: the schema and a signing key. Safe to run again."""
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)  # it holds the database and the keys
    LogSigner.ensure(settings.home, settings.log_origin, settings.key_passphrase)
    ledger = Ledger.from_settings(settings)
    with database_errors("creating the ledger schema"):
        create_schema(ledger.engine)
    return ledger


# -- helpers -----------------------------------------------------------------------------------------


def _nodes_query(keys: Iterable[tuple[int, int]]) -> Query:
    """One statement for node hashes by (level, index), as ``(level, index, hash)`` rows: level 0 from the
    entries, the rest from merkle_nodes.

    Plain SQL through the driver: building these O(log n)-term expressions in SQLAlchemy cost more than the
    lookups; every term is an equality on a primary key, so each is one index probe.
    """
    leaves = [index for level, index in keys if level == 0]
    interior = [part for level, index in keys if level > 0 for part in (level, index)]
    parts = []
    if leaves:
        parts.append(f"SELECT 0, seq, leaf_hash FROM ledger_entries WHERE seq IN ({_markers(leaves)})")
    if interior:
        terms = " OR ".join(["(level = ? AND idx = ?)"] * (len(interior) // 2))
        parts.append(f"SELECT level, idx, hash FROM merkle_nodes WHERE {terms}")
    # no keys: a statement that finds nothing, so that callers need no case of their own
    return " UNION ALL ".join(parts) or "SELECT 0, 0, NULL WHERE false", [*leaves, *interior]


def _nodes_found(wanted: set[tuple[int, int]], rows: Iterable[Sequence[Any]]) -> dict[tuple[int, int], bytes]:
    found = {(level, index): node for level, index, node in rows}
    missing = wanted - found.keys()
    if missing:
        raise LedgerError(f"ledger is missing Merkle nodes {sorted(missing)[:5]}")
    return found


_SIZE: Query = ("SELECT max(seq) FROM ledger_entries", ())  # the end of the primary key index
_CHECKPOINT_AT = "SELECT note FROM checkpoints WHERE size = ?"
_LATEST_CHECKPOINT = "SELECT size, note, created_at_ms FROM checkpoints ORDER BY size DESC LIMIT 1"


def _size_of(rows: Sequence[Sequence[Any]]) -> int:
    """The ledger's size from the rows of ``_SIZE``."""
    ((last,),) = rows
    return 0 if last is None else int(last) + 1


def _size(connection: Connection) -> int:
    return _size_of(fetch_rows(connection, *_SIZE))


def _prepare_all(events: Sequence[NewEvent]) -> list[_Prepared]:
    """Validate and hash what does not depend on position, outside the sequencer's lock."""
    randomness = os.urandom(_RANDOM_BYTES * len(events))
    shares = [randomness[offset : offset + _RANDOM_BYTES] for offset in range(0, len(randomness), _RANDOM_BYTES)]
    now_ms = time.time_ns() // 1_000_000  # the time of the batch's ids
    ids = [
        time_ordered_id(now_ms, share[_SALT_BYTES:]) if event.id is None else event.id
        for event, share in zip(events, shares, strict=True)
    ]
    prepared: list[_Prepared] = []
    errors: dict[str, Any] = {}
    for index, (event, share, event_id, id_text) in enumerate(zip(events, shares, ids, _uuid_texts(ids), strict=True)):
        try:
            prepared.append(_prepare(event, event_id, id_text, share[:_SALT_BYTES]))
        except ValidationError as exc:
            errors[str(index)] = exc.details or exc.message
    if errors:
        raise ValidationError(f"{len(errors)} of {len(events)} events are invalid", details=errors)
    return prepared


def _prepare(event: NewEvent, event_id: uuid.UUID, id_text: str, salt: bytes) -> _Prepared:
    occurred_at_ms = None if event.occurred_at is None else to_epoch_ms(event.occurred_at)
    if occurred_at_ms is not None and not _MIN_EPOCH_MS <= occurred_at_ms <= _MAX_EPOCH_MS:
        raise ValidationError("timestamp out of range", details={"timestamp": "must lie between 1970 and 9999"})
    _check_text_columns(event)
    details = canonical_json(None if event.details is None else dict(event.details))
    return _Prepared(
        event=event,
        id=id_text,
        uuid=event_id,
        occurred_at_ms=occurred_at_ms,
        salt=salt,
        details_text=details.decode(),
        commitment=commit_canonical_details(details, salt),
    )


def _check_text_columns(event: NewEvent) -> None:
    """Refuse a NUL character in a text column before the sequencer, alike on both backends: SQLite would store
    it, PostgreSQL's ``text`` refuses it, and there inside the append, failing every event appended with it.
    (A lone surrogate is refused when the record is canonicalised; decoded input has neither.)"""
    actor = event.actor
    texts = (event.type, event.ref, actor.squid_id, actor.sub_id, actor.dao_id, event.layer, event.cid, event.source)
    if "\x00" in "".join(text for text in texts if text is not None):
        names = ("type", "ref", "actor.squidId", "actor.subId", "actor.daoId", "layer", "cid", "source")
        problems = unstorable_text(dict(zip(names, texts, strict=True)))
        raise ValidationError("text that cannot be stored", details=problems)


def _uuid_texts(ids: list[uuid.UUID]) -> list[str]:
    """``str(i) for i in ids`` in two calls to msgspec (C), where ``UUID.__str__`` costs ~1 us of Python an id."""
    return _decode_texts(_encode_json(ids))


def time_ordered_id(now_ms: int, randomness: bytes) -> uuid.UUID:
    """The id of an event that came without one: an RFC 9562 version 7 UUID, the Unix time in milliseconds
    (``now_ms``, read once a batch) then 74 random bits taken from ``randomness`` (10 bytes; an append takes
    them from its batch's one ``os.urandom`` call). Ids made later sort later, so the unique index on ``id``
    grows at its end: random (version 4) ids each dirtied a page of their own somewhere in an index of
    millions, which an append wrote back for every event."""
    value = now_ms << 80 | int.from_bytes(randomness[:10], "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # the RFC 9562 variant
    return msgspec.convert(value.to_bytes(16), uuid.UUID)  # built in C: ``uuid.UUID(int=value)`` is Python


def _select(
    connection: Connection,
    conditions: Sequence[_Condition],
    *,
    limit: int | None = None,
    offset: int = 0,
    oldest_first: bool = False,
) -> list[LedgerRecord]:
    """Records with their details, newest first (or ``oldest_first``).

    Plain SQL through the driver (``fetch_rows``): SQLAlchemy's compiled statement and mapping rows cost
    more than the index lookups of a page of 100. The stored canonical text is not read: a record does not
    carry it.
    """
    where, parameters = _where(conditions)
    statement = f"{_SELECT_RECORDS}{where} ORDER BY e.seq {'ASC' if oldest_first else 'DESC'}"
    if limit is not None:
        statement += " LIMIT ? OFFSET ?"
        parameters.extend((limit, offset))
    return [_record_from_row(row) for row in fetch_rows(connection, statement, parameters)]


def _where(conditions: Iterable[_Condition]) -> tuple[str, list[Any]]:
    """`` WHERE a AND b`` (empty without conditions) and the values of its placeholders, in order."""
    terms: list[str] = []
    parameters: list[Any] = []
    for term, *values in conditions:
        terms.append(term)
        parameters.extend(values)
    return (" WHERE " + " AND ".join(terms) if terms else ""), parameters


def _markers(values: Sized) -> str:
    return ", ".join(["?"] * len(values))


def _record_from_row(row: Sequence[Any]) -> LedgerRecord:
    """A record from a row of ``_SELECT_RECORDS`` (its columns in that order)."""
    (
        seq, event_id, event_type, ref, squid_id, sub_id, dao_id, layer, verdict, details_commitment, cid,
        occurred_at_ms, received_at_ms, source, leaf_hash, chain_hash, details,
    ) = row  # fmt: skip
    return LedgerRecord(
        seq=seq,
        id=msgspec.convert(event_id, uuid.UUID),  # in C: uuid.UUID(text) parses it in Python
        type=event_type,
        ref=ref,
        actor=Actor(squid_id, sub_id, dao_id),
        layer=layer,
        verdict=verdict,
        details=None if details is None else msgspec.json.decode(details),
        details_commitment=details_commitment,
        cid=cid,
        occurred_at=from_epoch_ms(occurred_at_ms),
        received_at=from_epoch_ms(received_at_ms),
        source=source,
        leaf_hash=leaf_hash,
        chain_hash=chain_hash,
    )


def _check_same(index: int, item: _Prepared, stored: LedgerRecord) -> LedgerRecord:
    """An id seen before must be the same submitter's (``source``), with the same content, or it is a conflict.

    Only the submitter's own retry is answered with the stored record, or told which fields differ: for another
    submitter's event the conflict says nothing but that the id is taken (no fields, no coordinates), so that
    a caller who may only write cannot read or confirm other callers' events by guessing them.
    """
    event = item.event
    if stored.source != event.source:
        raise ConflictError(f"event id {item.id} is already taken", details={"index": index, "id": item.id})
    differs = [
        name
        for name, mine, theirs in (
            ("type", event.type, stored.type),
            ("ref", event.ref, stored.ref),
            ("actor", event.actor, stored.actor),
            ("layer", event.layer, stored.layer),
            ("verdict", event.verdict, stored.verdict),
            ("cid", event.cid, stored.cid),
            ("details", dict(event.details or {}), dict(stored.details or {})),
        )
        if mine != theirs
    ]
    if item.occurred_at_ms is not None and item.occurred_at_ms != to_epoch_ms(stored.occurred_at):
        differs.append("timestamp")
    if stored.details is None and event.details:
        differs.remove("details")  # erased since: the commitment alone cannot be compared without the salt
    if differs:
        raise ConflictError(
            f"event id {stored.id} was already used with other content",
            details={"index": index, "id": str(stored.id), "fields": differs},
        )
    return stored


def _search_conditions(query: SearchQuery) -> list[_Condition]:
    conditions: list[_Condition] = [
        (f"e.{column} = ?", value)
        for column, value in (
            ("type", query.type),
            ("actor_squid_id", query.actor),
            ("layer", query.layer),
            ("verdict", query.verdict),
        )
        if value is not None
    ]
    if query.start is not None:
        conditions.append(("e.occurred_at_ms >= ?", to_epoch_ms(query.start)))
    if query.end is not None:
        conditions.append(("e.occurred_at_ms <= ?", to_epoch_ms(query.end)))
    return conditions


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        prefix, _, text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise _invalid_cursor() from exc
    seq = parse_seq(text) if prefix == "seq" else None
    if seq is None:
        raise _invalid_cursor()
    return seq


def _invalid_cursor() -> ValidationError:
    return ValidationError("invalid cursor", details={"cursor": "not a cursor this service issued"})


def _check_sizes(first: int, second: int) -> None:
    if first < 0 or second < 0:
        raise ValidationError("tree sizes must not be negative", details={"first": first, "second": second})
    _check_fit_bigint(first=first, second=second)
    if first > second:
        raise ValidationError("first must not exceed second", details={"first": first, "second": second})


def _check_leaf(seq: int, tree_size: int) -> None:
    if seq < 0:
        raise ValidationError("a leaf index must not be negative", details={"leafIndex": seq})
    _check_fit_bigint(leafIndex=seq, treeSize=tree_size)
    if seq >= tree_size:
        raise ValidationError(
            "the leaf index must be below the tree size", details={"leafIndex": seq, "treeSize": tree_size}
        )


def _check_fit_bigint(**positions: int) -> None:
    """Sequence numbers and tree sizes up to ``MAX_SEQ``, checked before any of them reaches a statement."""
    beyond = {name: value for name, value in positions.items() if value > MAX_SEQ}
    if beyond:
        raise ValidationError(f"sequence numbers and tree sizes are at most {MAX_SEQ}", details=beyond)


def _check_within(larger: int, size: int) -> None:
    if larger > size:
        raise ValidationError("tree size exceeds the ledger", details={"treeSize": larger, "ledgerSize": size})
