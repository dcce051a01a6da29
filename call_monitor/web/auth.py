"""Who is asking, and what their role lets them see and change.

A request is a user's by its session cookie (signed, set at login) or by an API token
(``Authorization: Bearer``, for integrations and ``call-monitor memo``). The user is read from
the store on each request, so a disabled account stops working at once.

Roles:

- **staff**: their own callbacks (owner = their extension) and calls (answered, placed or
  checked by their extension); memos for colleagues of their own department;
- **supervisor**: everything of their departments; memos and cancels there;
- **auditor**: reads everything, changes nothing;
- **admin**: everything, and the admin page.

Caller numbers are shown whole to those who call back (staff on their own callbacks,
supervisors, admins) and masked (``010-****-5678``) to auditors and on the calls pages to
staff: an auditor checks the handling, not whom to ring.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from fastapi import HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from call_monitor.charter.obligations import Obligation
from call_monitor.directory import Directory
from call_monitor.store.accounts import User, audit, find_user, get_user, user_for_token

SESSION_USER = "uid"


class Gate(Protocol):
    """Who a request is from (``None``: nobody known)."""

    async def user(self, request: Request) -> User | None: ...


@dataclass(frozen=True)
class Accounts:
    """The store's users: by session cookie or by API token; or, when configured, by the login
    name a trusted reverse proxy puts in ``trusted_header`` (single sign-on)."""

    engine: AsyncEngine
    trusted_header: str | None = None
    trusted_proxies: frozenset[str] = frozenset()

    async def user(self, request: Request) -> User | None:
        authorization = request.headers.get("authorization", "")
        if authorization.startswith("Bearer "):
            return await user_for_token(self.engine, authorization[7:].strip())
        proxied = await self._proxied(request)
        if proxied is not None:
            return proxied
        user_id = request.session.get(SESSION_USER) if "session" in request.scope else None
        if not isinstance(user_id, int):
            return None
        user = await get_user(self.engine, user_id)
        return None if user is None or user.disabled else user

    async def _proxied(self, request: Request) -> User | None:
        """The proxy's user: only from a trusted proxy's address (anyone else could send the
        header), and only an enabled account of the store (the role is ours, not the proxy's)."""
        if self.trusted_header is None or request.client is None:
            return None
        login = request.headers.get(self.trusted_header)
        if not login or request.client.host not in self.trusted_proxies:
            return None
        found = await find_user(self.engine, login)
        return None if found is None or found[0].disabled else found[0]


async def required(gate: Gate, request: Request) -> User:
    """The user, or 401."""
    user = await gate.user(request)
    if user is None:
        raise HTTPException(401, "login or API token required")
    return user


@dataclass(frozen=True)
class Rules:
    """The role rules, with the directory that says which department an extension is in."""

    directory: Directory

    def departments(self, user: User) -> tuple[str, ...] | None:
        """The departments a user sees whole; ``None``: all of them."""
        if user.role in ("admin", "auditor"):
            return None
        if user.role == "supervisor":
            return user.departments
        return ()

    def own_department(self, user: User) -> str | None:
        return self.directory.department_of(user.extension)

    def sees_obligation(self, user: User, obligation: Obligation) -> bool:
        seen = self.departments(user)
        if seen is None:
            return True
        if user.role == "staff":
            return obligation.owner_kind == "staff" and obligation.owner == user.extension
        return obligation.owner_department in seen

    def may_memo(self, user: User, owner: str) -> bool:
        """A memo for ``owner`` (an extension or a department)."""
        department = owner if owner in self.directory.settings.departments else None
        department = department or self.directory.department_of(owner)
        if user.role == "admin":
            return True
        if user.role == "supervisor":
            return department in user.departments
        if user.role == "staff":
            return department is not None and department == self.own_department(user)
        return False

    def may_cancel(self, user: User, obligation: Obligation) -> bool:
        if user.role == "admin":
            return True
        return user.role == "supervisor" and obligation.owner_department in user.departments

    def sees_call(self, user: User, department: str | None, extensions: Iterable[str]) -> bool:
        seen = self.departments(user)
        if seen is None:
            return True
        if user.role == "staff":
            return user.extension in set(extensions)
        return department in seen

    def sees_numbers(self, user: User) -> bool:
        return user.role in ("supervisor", "admin")


def mask(number: str) -> str:
    """``010-1234-5678`` -> ``010-****-5678``: enough to recognise, not enough to dial."""
    digits = "".join(c for c in number if c.isdigit())
    if len(digits) >= 9:
        return f"{digits[:3]}-****-{digits[-4:]}"
    if len(digits) >= 5:
        return "*" * (len(digits) - 2) + digits[-2:]
    return "*" * len(digits)


@dataclass(frozen=True)
class Access:
    """The gate, the rules, and where the audit log is written (``None``: nowhere, tests)."""

    gate: Gate
    rules: Rules
    engine: AsyncEngine | None = None

    async def authenticate(self, request: Request) -> User:
        """A route's dependency: the user (also ``request.state.user``), or 401."""
        user = await required(self.gate, request)
        request.state.user = user
        return user

    async def audit(
        self, action: str, user: User | None, target: str | None = None, **details: object
    ) -> None:
        if self.engine is not None:
            await audit(
                self.engine,
                action,
                actor=None if user is None else user.login,
                target=target,
                details=details,
            )
