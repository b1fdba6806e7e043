"""The ledger's tables. ``ledger_entries``, ``merkle_nodes``, ``checkpoints`` and ``checkpoint_cosignatures``
are append-only (database triggers refuse UPDATE and DELETE, see ``models/database.py``); ``event_details``
holds the erasable personal data that the entries only commit to."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, LargeBinary, SmallInteger, String, Text, text
from sqlmodel import Field, SQLModel


class LedgerEntry(SQLModel, table=True):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_type_seq", "type", "seq"),
        Index("ix_ledger_entries_actor_seq", "actor_squid_id", "seq"),
        Index("ix_ledger_entries_layer_seq", "layer", "seq"),
        Index("ix_ledger_entries_occurred", "occurred_at_ms"),
    )

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    id: str = Field(sa_column=Column(String(36), unique=True, nullable=False))
    type: str = Field(sa_column=Column(String(100), nullable=False))
    ref: str = Field(sa_column=Column(String(500), nullable=False))
    actor_squid_id: str = Field(sa_column=Column(String(100), nullable=False))
    actor_sub_id: str | None = Field(default=None, sa_column=Column(String(100)))
    actor_dao_id: str | None = Field(default=None, sa_column=Column(String(100)))
    layer: str = Field(sa_column=Column(String(100), nullable=False))
    verdict: str = Field(sa_column=Column(String(5), nullable=False))
    details_commitment: str = Field(sa_column=Column(String(71), nullable=False))
    cid: str | None = Field(default=None, sa_column=Column(String(100)))
    occurred_at_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    received_at_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    source: str = Field(sa_column=Column(String(200), nullable=False))
    canonical: str = Field(sa_column=Column(Text, nullable=False))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    chain_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class EventDetails(SQLModel, table=True):
    __tablename__ = "event_details"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    salt: bytes = Field(sa_column=Column(LargeBinary(16), nullable=False))
    details: str = Field(sa_column=Column(Text, nullable=False))


class MerkleNode(SQLModel, table=True):
    """The hash of the perfect subtree over leaves [idx * 2**level, (idx + 1) * 2**level)."""

    __tablename__ = "merkle_nodes"
    # the hashes of tiles of level >= 1 (Merkle levels 8, 16, ...), read 256 at a time: one index range each,
    # where the table scatters them among the other levels' nodes (one page each, at 10 M entries)
    __table_args__ = (
        Index(
            "ix_merkle_nodes_tile_levels",
            "level",
            "idx",
            "hash",
            sqlite_where=text("(level & 7) = 0"),
            postgresql_where=text("(level & 7) = 0"),
        ),
    )

    level: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class CheckpointRow(SQLModel, table=True):
    __tablename__ = "checkpoints"

    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))
    created_at_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


class CheckpointCosignature(SQLModel, table=True):
    """A witness's cosignature of the checkpoint of ``size`` (C2SP tlog-cosignature): its signature line as
    the witness returned it, verified before it was stored."""

    __tablename__ = "checkpoint_cosignatures"

    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    witness: str = Field(sa_column=Column(String(200), primary_key=True))
    key_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    cosigned_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    line: str = Field(sa_column=Column(Text, nullable=False))


LEDGER_TABLES = (LedgerEntry, EventDetails, MerkleNode, CheckpointRow, CheckpointCosignature)
APPEND_ONLY_TABLES = ("ledger_entries", "merkle_nodes", "checkpoints", "checkpoint_cosignatures")
