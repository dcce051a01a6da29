"""Accounts of the web (issue 10): users and their roles, API tokens, and the audit log.

- ``users``: one row per login name: display name, role (``staff | supervisor | auditor |
  admin``), the staff member's extension (staff), the departments a supervisor answers for
  (a JSON list), the argon2 hash of the password (argon2-cffi's encoded form, parameters
  included, so a later change of parameters still verifies old hashes), ``disabled``.
- ``api_tokens``: per user; only the SHA-256 of the token is stored. A token is 32 random
  bytes (URL-safe), shown once when made: a fast hash is enough for a secret that long
  (nothing to brute-force), and it lets a request find its token by an index lookup.
- ``audit_log``: who did what to what, and when: logins (ok and refused), memos, cancels (and
  the checklist's submits, revisions and disputes). Written, never updated.

Hashing a password costs tens of milliseconds of CPU: the web calls :func:`verify_password`
in a worker thread, never on the event loop.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Boolean, ForeignKey, Index, Integer, Table, Text, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from call_monitor.store.models import Base, UtcDateTime

Role = Literal["staff", "supervisor", "auditor", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
MIN_PASSWORD = 8
TOKEN_PREFIX = "cm_"

_hasher = PasswordHasher()  # argon2id, the library's current defaults


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(Text, unique=True)
    display_name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    extension: Mapped[str | None] = mapped_column(Text)  # staff: their phone
    departments: Mapped[str] = mapped_column(Text)  # JSON list: a supervisor's departments
    password_hash: Mapped[str] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id", ondelete="CASCADE"))
    token_sha256: Mapped[str] = mapped_column(Text, unique=True)
    label: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str | None] = mapped_column(Text)  # a login name (None: unknown)
    action: Mapped[str] = mapped_column(Text)  # login_ok, login_refused, memo, cancel, ...
    target: Mapped[str | None] = mapped_column(Text)  # an obligation id, a linkedid, ...
    details: Mapped[str] = mapped_column(Text)  # JSON object

    __table_args__ = (Index("ix_audit_log_at", "at"),)


users_table: Table = Base.metadata.tables["users"]
api_tokens_table: Table = Base.metadata.tables["api_tokens"]
audit_table: Table = Base.metadata.tables["audit_log"]


@dataclass(frozen=True, slots=True)
class User:
    """A user as the web sees one (never the hash)."""

    id: int
    login: str
    display_name: str
    role: Role
    extension: str | None = None
    departments: tuple[str, ...] = ()
    disabled: bool = False


class AccountError(ValueError):
    """A refused account change; the message says why, in one line."""


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password: at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches; CPU-bound (call it in a worker thread on a loop)."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# A hash to verify against when the login is unknown, so that an unknown login costs the same
# time as a wrong password (no telling which logins exist by the answer's delay).
DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def _now() -> datetime:
    return datetime.now(UTC)


def _user(row: Any) -> User:
    return User(
        id=row.id,
        login=row.login,
        display_name=row.display_name,
        role=row.role,
        extension=row.extension,
        departments=tuple(json.loads(row.departments)),
        disabled=bool(row.disabled),
    )


def check_account(role: str, extension: str | None, departments: Sequence[str]) -> None:
    """What each role needs: staff an extension, a supervisor at least one department."""
    if role not in ROLES:
        raise AccountError(f"role: one of {', '.join(ROLES)}")
    if role == "staff" and not extension:
        raise AccountError("extension: a staff account needs the staff member's extension")
    if role == "supervisor" and not departments:
        raise AccountError("departments: a supervisor account needs at least one department")


async def add_user(
    engine: AsyncEngine,
    *,
    login: str,
    display_name: str,
    role: str,
    password_hash: str,
    extension: str | None = None,
    departments: Sequence[str] = (),
) -> User:
    check_account(role, extension, departments)
    now = _now()
    async with engine.begin() as conn:
        taken = await conn.execute(select(users_table.c.id).where(users_table.c.login == login))
        if taken.first() is not None:
            raise AccountError(f"login {login!r} exists already")
        await conn.execute(
            insert(users_table).values(
                login=login,
                display_name=display_name or login,
                role=role,
                extension=extension or None,
                departments=json.dumps(list(departments), ensure_ascii=False),
                password_hash=password_hash,
                disabled=False,
                created_at=now,
                updated_at=now,
            )
        )
    found = await find_user(engine, login)
    assert found is not None
    return found[0]


async def find_user(engine: AsyncEngine, login: str) -> tuple[User, str] | None:
    """The user by login name, with the password hash (for logging in), or ``None``."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(users_table).where(users_table.c.login == login))).first()
    return None if row is None else (_user(row), row.password_hash)


async def get_user(engine: AsyncEngine, user_id: int) -> User | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(users_table).where(users_table.c.id == user_id))).first()
    return None if row is None else _user(row)


async def list_users(engine: AsyncEngine) -> list[User]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(users_table).order_by(users_table.c.login))
        return [_user(row) for row in rows]


async def _update_user(engine: AsyncEngine, login: str, **values: Any) -> None:
    async with engine.begin() as conn:
        result = await conn.execute(
            update(users_table)
            .where(users_table.c.login == login)
            .values(updated_at=_now(), **values)
        )
    if result.rowcount == 0:
        raise AccountError(f"no user {login!r}")


async def set_password(engine: AsyncEngine, login: str, password_hash: str) -> None:
    await _update_user(engine, login, password_hash=password_hash)


async def set_disabled(engine: AsyncEngine, login: str, disabled: bool = True) -> None:
    await _update_user(engine, login, disabled=disabled)


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def create_token(engine: AsyncEngine, login: str, label: str = "") -> str:
    """A new API token for ``login``: returned once, stored only as its hash."""
    found = await find_user(engine, login)
    if found is None:
        raise AccountError(f"no user {login!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with engine.begin() as conn:
        await conn.execute(
            insert(api_tokens_table).values(
                user_id=found[0].id,
                token_sha256=_token_digest(token),
                label=label,
                created_at=_now(),
            )
        )
    return token


async def user_for_token(engine: AsyncEngine, token: str) -> User | None:
    """The enabled user a token belongs to, or ``None``."""
    query = (
        select(users_table)
        .join(api_tokens_table, api_tokens_table.c.user_id == users_table.c.id)
        .where(api_tokens_table.c.token_sha256 == _token_digest(token))
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None or row.disabled:
        return None
    return _user(row)


async def audit(
    engine: AsyncEngine,
    action: str,
    *,
    actor: str | None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """One audit log row."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(audit_table).values(
                at=_now(),
                actor=actor,
                action=action,
                target=target,
                details=json.dumps(details or {}, ensure_ascii=False),
            )
        )


async def audit_entries(engine: AsyncEngine, limit: int = 100) -> list[dict[str, Any]]:
    """The newest audit rows, newest first."""
    query = select(audit_table).order_by(audit_table.c.id.desc()).limit(limit)
    async with engine.connect() as conn:
        rows = await conn.execute(query)
        return [dict(row._mapping) | {"details": json.loads(row.details)} for row in rows]
