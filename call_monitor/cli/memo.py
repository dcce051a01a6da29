"""``call-monitor memo``: a colleague's memo (P6/V4), posted to the running daemon's API."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from typing import Any

from call_monitor.config import Settings

MEMO_TIMEOUT_SECONDS = 15.0
TOKEN_ENV = "CALLMON_API_TOKEN"  # an API token (`call-monitor user token`), never on argv


def _daemon_url(settings: Settings) -> str:
    host = settings.web.host
    # A wildcard listen address is not one to connect to: its loopback is.
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.web.port}"


def _error_detail(body: bytes) -> str:
    try:
        detail = json.loads(body)["detail"]
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", errors="replace")[:500]
    if isinstance(detail, list):  # FastAPI's validation errors
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg')}" for e in detail
        )
    return str(detail)


def send_memo(args: argparse.Namespace, settings: Settings) -> int:
    """POST the memo to the running daemon's API and print its answer (one JSON line)."""
    base = _daemon_url(settings)
    try:
        status, answer = _post(f"{base}/api/callbacks/memo", _memo_body(args))
    except urllib.error.HTTPError as exc:
        detail = _error_detail(exc.read())
        if exc.code == 401:
            detail += f" (set {TOKEN_ENV} to a token of `call-monitor user token LOGIN`)"
        print(f"call-monitor: memo refused ({exc.code}): {detail}", file=sys.stderr)
        return 2 if 400 <= exc.code < 500 else 1
    except TimeoutError:
        print(
            f"call-monitor: the daemon at {base} did not answer within "
            f"{MEMO_TIMEOUT_SECONDS:.0f} s",
            file=sys.stderr,
        )
        return 1
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(
            f"call-monitor: the daemon is not running (nothing answers at {base}: {reason}); "
            "start it with `call-monitor run`",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(json.loads(answer), ensure_ascii=False))
    if status == 202:
        print(
            "call-monitor: memo accepted but not stored yet (the daemon keeps retrying)",
            file=sys.stderr,
        )
    return 0


def _memo_body(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "number": args.number,
        "owner": args.owner,
        "taken_by": args.taken_by,
        "caller_name": args.name,
        "matter": args.matter,
        "memo_id": args.memo_id or uuid.uuid4().hex,
    }


def _authorization() -> dict[str, str]:
    token = os.environ.get(TOKEN_ENV, "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def _post(url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": "application/json", **_authorization()},
        method="POST",
    )
    # No proxy: the daemon is local, and an http_proxy in the environment would get the memo.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=MEMO_TIMEOUT_SECONDS) as response:
        return response.status, response.read()
