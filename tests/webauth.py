"""A fixed user for tests of the web that are not about who is asking (the callbacks API's
store behaviour, its input checks): every request is that user's."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from call_monitor.config import default_directory
from call_monitor.directory import Directory
from call_monitor.store import create_engine, upgrade
from call_monitor.store.accounts import (
    User,
    add_user,
    create_token,
    find_user,
    hash_password,
)
from call_monitor.web.auth import Access, Rules

ADMIN = User(id=1, login="admin-test", display_name="Admin", role="admin")


@dataclass(frozen=True)
class FixedGate:
    who: User

    async def user(self, request: Request) -> User:
        return self.who


def access_as(user: User = ADMIN, directory: Directory | None = None) -> Access:
    return Access(FixedGate(user), Rules(directory or Directory(default_directory())))


async def admin_token(url: str) -> str:
    """An admin account in the store at ``url`` (migrated first) and an API token of it."""
    await upgrade(url)
    engine = create_engine(url)
    try:
        found = await find_user(engine, ADMIN.login)
        if found is None:
            await add_user(
                engine,
                login=ADMIN.login,
                display_name="Admin",
                role="admin",
                password_hash=hash_password("admin-password"),
            )
        return await create_token(engine, ADMIN.login)
    finally:
        await engine.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
