"""What keeps a browser from being used against the web: Host and Origin checks, CSRF tokens,
signed session cookies, login rate limits, and the secret that signs the cookies.

Binding to loopback protects nothing from a browser: a page of ``evil.example`` whose name
resolves to 127.0.0.1 (DNS rebinding) reaches the port with ``Host: evil.example``. So every
request but the open probes (``/metrics``, ``/healthz``, ``/readyz``, which Prometheus and
container health checks reach by whatever name they use) must name a configured host
(``web.allowed_hosts``), and every state-changing request that comes from a browser must come
from the same origin: its ``Origin`` (or, without one, its ``Referer``) names the host it was
sent to. A request with neither header and no session cookie is no browser's (``curl``, the
CLI with an API token) and passes on to authentication.

CSRF: asgi-csrf (double-submit: a signed token in a cookie, the same token in each form's
hidden field or htmx's ``X-CSRFToken`` header); a request that carries cookies and no matching
token is refused with 403. Requests with ``Authorization: Bearer`` skip it (a browser never
adds that header cross-site without a CORS preflight, which this app never grants).
"""

from __future__ import annotations

import os
import secrets
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs
from asgi_csrf import asgi_csrf_decorator
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from call_monitor.config import WebSettings
from call_monitor.store.engine import sqlite_file

OPEN_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECRET_FILE = "web-secret"

CSRF_COOKIE = "csrftoken"
CSRF_FIELD = "csrftoken"
CSRF_HEADER = "x-csrftoken"


def _host_name(netloc: str) -> str:
    """``Example.org:8089`` -> ``example.org``; ``[::1]:8089`` -> ``::1``."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1 : netloc.find("]")] if "]" in netloc else netloc
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


class HostAndOrigin:
    """Refuses a request to a Host not configured (400), and a state-changing browser
    request whose Origin (or Referer) is not the host it was sent to (403)."""

    def __init__(
        self, app: ASGIApp, hosts: set[str], session_cookie: str, user_header: str | None = None
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.session_cookie = f"{session_cookie}="
        # A request that a single sign-on proxy vouches for is a browser's too.
        self.user_header = None if user_header is None else user_header.lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if _host_name(host) not in self.hosts:
            await PlainTextResponse("unknown Host", status_code=400)(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS and not self._same_origin(headers, host):
            await PlainTextResponse("cross-origin request refused", status_code=403)(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)

    def _same_origin(self, headers: dict[str, str], host: str) -> bool:
        source = headers.get("origin") or headers.get("referer")
        if not source:
            # No browser sends a form or a fetch without either; a client without a session
            # (the CLI, an integration with a token) is no browser's ambient credential.
            vouched = self.user_header is not None and self.user_header in headers
            return not vouched and self.session_cookie not in headers.get("cookie", "")
        if source == "null":  # a sandboxed frame, a file: page
            return False
        return urlsplit(source).netloc.lower() == host.lower()


class Csrf:
    """asgi-csrf as a Starlette middleware class (see the module docstring)."""

    def __init__(self, app: ASGIApp, secret: str, secure: bool = False) -> None:
        self.app = asgi_csrf_decorator(
            signing_secret=secret,
            cookie_name=CSRF_COOKIE,
            form_input=CSRF_FIELD,
            http_header=CSRF_HEADER,
            cookie_secure=secure,
            cookie_samesite="Strict",
            always_set_cookie=False,  # set by the pages that show a form, not by the API
            send_csrf_failed=_csrf_failed,
        )(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


async def _csrf_failed(scope: Scope, send: Send, _reason: Any) -> None:
    async def nothing() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    await PlainTextResponse("CSRF token missing or wrong", status_code=403)(scope, nothing, send)


def csrf_token(scope: Scope) -> str:
    """The token a page puts in its forms (asgi-csrf's, set in its cookie)."""
    getter: Callable[[], str] | None = scope.get("csrftoken")
    return getter() if getter is not None else ""


def secret_path(store_url: str) -> Path:
    """Where a generated secret lives: beside a SQLite store file, else the data directory."""
    database = sqlite_file(store_url)
    if database is not None:
        return database.parent / SECRET_FILE
    return Path(platformdirs.user_data_dir("call-monitor", appauthor=False)) / SECRET_FILE


def session_secret(settings: WebSettings, store_url: str) -> str:
    """``web.session_secret``, or the one made once (readable by the daemon's user only)."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value()
    path = secret_path(store_url)
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: theirs it is
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secret + "\n")
    return secret


class LoginLimiter:
    """Failed logins per account and per client within a window; past the limit, refused
    until the oldest failure leaves the window. In memory, bounded: a restart forgets.

    Not the ``limits`` package that limits the API's writes (web/callbacks.py): it counts
    every hit, while this counts failures only and forgets an account's on a success, and
    its storage reads ``time.time`` itself, where this takes the clock the tests drive.
    """

    def __init__(
        self,
        per_account: int = 5,
        per_client: int = 20,
        window_seconds: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.limits = {"account": per_account, "client": per_client}
        self.window = window_seconds
        self.clock = clock
        self.max_keys = max_keys
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        horizon = self.clock() - self.window
        while failures and failures[0] < horizon:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def blocked(self, account: str, client: str) -> bool:
        return (
            len(self._recent(("account", account))) >= self.limits["account"]
            or len(self._recent(("client", client))) >= self.limits["client"]
        )

    def failed(self, account: str, client: str) -> None:
        now = self.clock()
        for key in (("account", account), ("client", client)):
            if key not in self._failures and len(self._failures) >= self.max_keys:
                del self._failures[next(iter(self._failures))]  # the oldest key goes
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, account: str) -> None:
        self._failures.pop(("account", account), None)


# script-src 'self': a caller's name that got into a page as markup could still not run.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    """The headers above on every answer but the open probes'; ``media_origin``: where
    recordings may also come from (a URL ``web.recording_template``)."""

    def __init__(self, app: ASGIApp, media_origin: str | None = None) -> None:
        self.app = app
        self.headers = _HEADERS
        if media_origin is not None:
            policy = f"{CSP}; media-src 'self' {media_origin}".encode()
            self.headers = [(b"content-security-policy", policy), *_HEADERS[1:]]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        await self.app(scope, receive, with_headers)
