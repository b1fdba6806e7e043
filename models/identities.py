"""Local-mode callers (``QERBEROS_AUTH_MODE=local``): identities, their permissions and credentials, kept in
the ledger's own database (table ``identities``).

A token is 32 random bytes, URL-safe base64 with the prefix ``qrb_``; only its SHA-256 is stored, so a
lost token cannot be recovered, only replaced by a new identity. An identity may also hold an Ed25519
public key (raw 32 bytes, base64) for the signed-header scheme.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy import BigInteger, Boolean, Column, ColumnElement, Engine, String, Text, select
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Field, Session, SQLModel, col

from models.database import create_missing_tables, database_errors
from qerberos.errors import ConflictError, LedgerError, NotFoundError, ValidationError

PERMISSIONS: tuple[str, ...] = (
    "qerberos:audit:write",
    "audit:read",
    "risk:read",
    "risk:calculate",
    "anomaly:detect",
    "alerts:read",
    "alerts:manage",
    "compliance:read",
    "compliance:generate",
    "admin",
)
"""The permission vocabulary of the upstream policies; ``admin`` implies every other one."""

ADMIN_NAME = "admin"
TOKEN_PREFIX = "qrb_"


class Identity(SQLModel, table=True):
    __tablename__ = "identities"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(100), unique=True, nullable=False))
    squid_id: str = Field(sa_column=Column(String(100), unique=True, nullable=False))
    permissions: str = Field(sa_column=Column(Text, nullable=False))  # JSON array of permission names
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))  # hex SHA-256
    public_key: str | None = Field(default=None, sa_column=Column(String(64)))  # base64 raw Ed25519 key
    created_at_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    disabled: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, default=False))

    @property
    def permission_set(self) -> frozenset[str]:
        return frozenset(json.loads(self.permissions))


def create_identity_tables(engine: Engine) -> None:
    """Create the ``identities`` table if missing (``qerberos init`` calls this)."""
    create_missing_tables(engine, [Identity.__table__])  # type: ignore[attr-defined]  # SQLModel declares no __table__


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_permissions(permissions: Iterable[str]) -> list[str]:
    chosen = sorted(set(permissions))
    unknown = [name for name in chosen if name not in PERMISSIONS]
    if unknown:
        message = f"unknown: {', '.join(unknown)}; known: {', '.join(PERMISSIONS)}"
        raise ValidationError("unknown permission", details={"permission": message})
    return chosen


def decode_public_key(text: str) -> bytes:
    """A raw 32-byte Ed25519 public key from base64 (standard or URL-safe, padding optional)."""
    try:
        raw = base64.b64decode(_pad(text.replace("-", "+").replace("_", "/")), validate=True)
    except ValueError as exc:
        raise ValidationError("bad public key", details={"publicKey": "not base64"}) from exc
    if len(raw) != 32:
        raise ValidationError("bad public key", details={"publicKey": "an Ed25519 public key is 32 bytes"})
    return raw


def _pad(text: str) -> str:
    return text + "=" * (-len(text) % 4)


def create_identity(
    engine: Engine,
    name: str,
    permissions: Sequence[str],
    *,
    squid_id: str | None = None,
    public_key: str | None = None,
) -> tuple[Identity, str]:
    """Store a new identity; returns it and its token (the only time the token exists in clear)."""
    if not name or len(name) > 100:
        raise ValidationError("bad name", details={"name": "1 to 100 characters"})
    chosen = check_permissions(permissions)
    if public_key is not None:
        public_key = base64.b64encode(decode_public_key(public_key)).decode()
    token = new_token()
    identity = Identity(
        name=name,
        squid_id=squid_id or name,
        permissions=json.dumps(chosen),
        token_hash=hash_token(token),
        public_key=public_key,
        created_at_ms=int(time.time() * 1000),
        disabled=False,
    )
    try:
        with Session(engine) as session:
            session.add(identity)
            session.commit()
            session.refresh(identity)
    except SQLIntegrityError as exc:
        raise ConflictError("an identity with this name or squid id exists", details={"name": name}) from exc
    except SQLAlchemyError as exc:
        raise LedgerError(f"could not store the identity: {exc.__class__.__name__}") from exc
    return identity, token


def list_identities(engine: Engine) -> list[Identity]:
    with database_errors("reading identities"), Session(engine) as session:
        return list(session.execute(select(Identity).order_by(Identity.name)).scalars())


def find_by_token_hash(engine: Engine, token_hash: str) -> Identity | None:
    return _one(engine, col(Identity.token_hash) == token_hash)


def find_by_squid_id(engine: Engine, squid_id: str) -> Identity | None:
    return _one(engine, col(Identity.squid_id) == squid_id)


def _one(engine: Engine, condition: ColumnElement[bool]) -> Identity | None:
    try:
        with Session(engine) as session:
            return session.execute(select(Identity).where(condition)).scalars().first()
    except SQLAlchemyError as exc:
        raise LedgerError(f"could not read identities: {exc.__class__.__name__}") from exc


def set_disabled(engine: Engine, name: str, disabled: bool = True) -> None:
    with database_errors("changing an identity"), Session(engine) as session:
        identity = session.execute(select(Identity).where(col(Identity.name) == name)).scalars().first()
        if identity is None:
            raise NotFoundError("no such identity", details={"name": name})
        identity.disabled = disabled
        session.add(identity)
        session.commit()


def ensure_admin(engine: Engine) -> str | None:
    """Create the ``admin`` identity on first start; its new token, or ``None`` when it already exists."""
    create_identity_tables(engine)
    if _one(engine, col(Identity.name) == ADMIN_NAME) is not None:
        return None
    try:
        _, token = create_identity(engine, ADMIN_NAME, ["admin"])
    except ConflictError:  # another worker won the race
        return None
    return token


ADMIN_TOKEN_FILE = "admin.token"


def ensure_admin_token_file(engine: Engine, home: Path) -> Path | None:
    """First start in local mode: create the ``admin`` identity and leave its token in
    ``home/admin.token``, readable by the owner only (never on a terminal or in a log).

    Returns the file's path when the identity was created now, ``None`` when it already existed.
    """
    token = ensure_admin(engine)
    if token is None:
        return None
    path = home / ADMIN_TOKEN_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as output:
        output.write(f"{token}\n")
    return path
