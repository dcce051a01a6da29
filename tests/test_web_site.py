"""The supervisors' and staff's web over HTTP (httpx against the app as the daemon builds it):
every role against every page and endpoint, the security checks (Host, Origin, CSRF, login
limits, credentials), and strangers' text inert in HTML and JSON."""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import markupsafe
import pytest
from pydantic import SecretStr

from call_monitor.config import WebSettings
from call_monitor.store.accounts import audit_entries, set_disabled
from call_monitor.store.browse import staff_month
from call_monitor.timefmt import SEOUL
from call_monitor.web.live import Live
from call_monitor.web.security import LoginLimiter
from tests.web_site import (
    ACCOUNTS,
    CHONGMU,
    HOSTILE_CALLER,
    MINWON,
    PASSWORD,
    WebSite,
    csrf_of,
    log_in,
    web_site,
)

ROLES = list(ACCOUNTS)
ORIGIN = "http://127.0.0.1"


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[WebSite]:
    async with web_site(tmp_path / "web.sqlite3") as found:
        yield found


async def memo_for(site: WebSite, owner: str = "201", name: str = "홍길동") -> dict[str, Any]:
    async with site.api("admin") as api:
        answer = await api.post(
            "/api/callbacks/memo",
            json={
                "number": "010-1234-5678",
                "owner": owner,
                "taken_by": "202",
                "caller_name": name,
            },
        )
    assert answer.status_code == 201, answer.text
    obligation: dict[str, Any] = answer.json()["obligation"]
    return obligation


@contextlib.asynccontextmanager
async def session_for(site: WebSite, login: str) -> AsyncIterator[httpx.AsyncClient]:
    async with site.client() as client:
        answer = await log_in(client, login)
        assert answer.status_code == 303, answer.text
        yield client


# --------------------------------------------------------------------------- pages by role

# What each role gets for each page: 200, 403, or a redirect (303) elsewhere.
PAGES: dict[str, dict[str, int]] = {
    "/me": {"staff-201": 200, "staff-203": 200} | {r: 303 for r in ACCOUNTS if "staff" not in r},
    "/callbacks": dict.fromkeys(ACCOUNTS, 200),
    "/calls?from=2026-11-01&to=2026-12-31": dict.fromkeys(ACCOUNTS, 200),
    "/admin": {r: 200 if r == "admin" else 403 for r in ACCOUNTS},
}


@pytest.mark.parametrize("login", ROLES)
async def test_every_role_against_every_page(site: WebSite, login: str) -> None:
    async with session_for(site, login) as client:
        for page, by_role in PAGES.items():
            answer = await client.get(page)
            assert answer.status_code == by_role[login], (page, answer.text[:300])
        # A call of 민원여권과 answered by 201: its department, 201, auditors and admins only.
        call = await client.get(f"/calls/{site.calls[0].record.linkedid}")
        allowed = login in ("admin", "auditor", "sup-minwon", "staff-201")
        assert call.status_code == (200 if allowed else 403), login
        assert (await client.get("/calls/no-such-call")).status_code == 404


@pytest.mark.parametrize(
    "page",
    ["/", "/me", "/callbacks", "/calls", "/admin", "/calls/x", "/checklists", "/calls/x/recording"],
)
async def test_pages_without_a_session_send_to_the_login(site: WebSite, page: str) -> None:
    async with site.client() as client:
        answer = await client.get(page)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login"


async def test_the_calls_list_by_role_filters_and_pages(site: WebSite) -> None:
    period = {"from": "2026-11-01", "to": "2026-12-31"}
    async with session_for(site, "sup-minwon") as client:
        everything = await client.get("/calls", params=period)
        assert f"통화 {len(site.calls)} ·" in everything.text
        assert "010-1234-5678" not in everything.text  # digits, as the PBX gave them
        assert "01012345678" in everything.text  # supervisors see numbers whole
        breached = await client.get("/calls", params=period | {"breached": "P1"})
        assert "통화 1 ·" in breached.text  # c_answer_3rings_breach only
    async with session_for(site, "staff-203") as client:
        none = await client.get("/calls", params=period)
        assert "통화 0 ·" in none.text  # nothing of 203's
    async with session_for(site, "staff-201") as client:
        own = await client.get("/calls", params=period)
        assert f"통화 {len(site.calls)} ·" in own.text  # 201 answered every one
        assert "010-****-5678" in own.text  # masked for staff on the calls pages
    async with session_for(site, "auditor") as client:
        masked = await client.get("/calls", params=period)
        assert "010-****-5678" in masked.text
        assert "01012345678" not in masked.text


async def test_keyset_pages_cover_every_call_once(site: WebSite, monkeypatch: Any) -> None:
    monkeypatch.setattr("call_monitor.web.pages.PAGE_SIZE", 2)
    seen: list[str] = []
    url = "/calls?from=2026-11-01&to=2026-12-31"
    async with session_for(site, "admin") as client:
        while url:
            answer = await client.get(url)
            assert answer.status_code == 200, answer.text
            page = answer.text
            seen += [html.unescape(part.split('"')[0]) for part in page.split('href="/calls/')[1:]]
            following = page.split('id="next-page" href="')
            url = html.unescape(following[1].split('"')[0]) if len(following) > 1 else ""
    assert sorted(seen) == sorted(j.record.linkedid for j in site.calls)


async def test_a_call_page_shows_timeline_verdicts_and_the_checklist(site: WebSite) -> None:
    judged = site.calls[1]  # answered on ring 3: P1 breached
    async with session_for(site, "sup-minwon") as client:
        page = (await client.get(f"/calls/{judged.record.linkedid}")).text
    assert 'id="timeline"' in page
    assert "벨 울림" in page
    assert "응답" in page
    assert 'P1</td><td class="late">미충족' in page
    assert 'id="checklist-form"' in page


# --------------------------------------------------------------------------- the API by role

# GET /api/callbacks/{memo for 201 of 민원여권과}: who sees it.
SEES_201 = {"admin", "auditor", "sup-minwon", "staff-201"}
# POST a memo for 201: who may write it (staff of the owner's department, its supervisors).
MEMO_201 = {"admin", "sup-minwon", "staff-201"}
# POST its cancel: its department's supervisors and admins; 404 for who cannot see it.
CANCEL_201 = {"admin": 200, "sup-minwon": 200, "auditor": 403, "staff-201": 403}


@pytest.mark.parametrize("login", ROLES)
async def test_every_role_against_the_callbacks_api(site: WebSite, login: str) -> None:
    created = await memo_for(site)
    async with site.api(login) as api:
        listed = (await api.get("/api/callbacks")).json()["obligations"]
        assert [o["id"] for o in listed] == ([created["id"]] if login in SEES_201 else [])
        one = await api.get(f"/api/callbacks/{created['id']}")
        assert one.status_code == (200 if login in SEES_201 else 404)
        if login == "auditor":
            assert one.json()["number"] == "010-****-5678"
        other_department = await api.get("/api/callbacks", params={"department": CHONGMU})
        sees_chongmu = login in ("admin", "auditor", "sup-chongmu")
        assert other_department.status_code == (200 if sees_chongmu else 403)
        memo = await api.post(
            "/api/callbacks/memo",
            json={"number": "02-000-0000", "owner": "201", "taken_by": "202"},
        )
        assert memo.status_code == (201 if login in MEMO_201 else 403), memo.text
        cancel = await api.post(f"/api/callbacks/{created['id']}/cancel", json={"reason": "x"})
        assert cancel.status_code == CANCEL_201.get(login, 404), cancel.text
    if login in ("admin", "sup-minwon"):
        assert cancel.json()["obligation"]["closed_by"] == login  # who is asking, not a body


async def test_the_api_refuses_without_credentials(site: WebSite) -> None:
    created = await memo_for(site)
    async with site.api(None) as api:
        assert (await api.get("/api/callbacks")).status_code == 401
        assert (await api.get(f"/api/callbacks/{created['id']}")).status_code == 401
        memo = await api.post("/api/callbacks/memo", json={"number": "1", "owner": "201"})
        assert memo.status_code == 401  # before the body is looked at
        cancel = await api.post(
            f"/api/callbacks/{created['id']}/cancel",
            json={"reason": "no credentials", "by": "supervisor-kim"},
        )
        assert cancel.status_code == 401
    async with site.client(headers={"Authorization": "Bearer cm_not-a-token"}) as api:
        assert (await api.get("/api/callbacks")).status_code == 401
    async with site.api("admin") as api:
        assert (await api.get(f"/api/callbacks/{created['id']}")).json()["state"] == "open"


async def test_a_disabled_account_stops_at_once(site: WebSite) -> None:
    async with session_for(site, "staff-201") as client:
        assert (await client.get("/callbacks")).status_code == 200
        await set_disabled(site.site.engine, "staff-201")
        assert (await client.get("/callbacks")).status_code == 303
    async with site.api("staff-201") as api:
        assert (await api.get("/api/callbacks")).status_code == 401


# --------------------------------------------------------------------------- Host, Origin, CSRF


async def test_a_foreign_host_is_refused(site: WebSite) -> None:
    created = await memo_for(site)
    evil = {"Host": "evil.example"}
    async with site.api("admin") as api:
        assert (await api.get("/api/callbacks", headers=evil)).status_code == 400
        cancel = await api.post(
            f"/api/callbacks/{created['id']}/cancel", json={"reason": "x"}, headers=evil
        )
        assert cancel.status_code == 400
        assert (await api.get("/login", headers=evil)).status_code == 400
        # The open probes answer whatever the name (Prometheus, health checks).
        assert (await api.get("/healthz", headers=evil)).status_code == 200
        assert (await api.get(f"/api/callbacks/{created['id']}")).json()["state"] == "open"


async def test_the_configured_hosts_are_served(tmp_path: Path) -> None:
    web = WebSettings(allowed_hosts=["monitor.office.example"])
    async with web_site(tmp_path / "h.sqlite3", "http://monitor.office.example:8089", web) as s:
        async with s.client() as client:
            assert (await client.get("/login")).status_code == 200
        async with s.client(base_url="http://127.0.0.1") as client:
            assert (await client.get("/login")).status_code == 400


async def test_a_form_without_its_csrf_token_or_from_another_origin_is_refused(
    site: WebSite,
) -> None:
    created = await memo_for(site)
    url = f"/callbacks/{created['id']}/cancel"
    async with session_for(site, "sup-minwon") as client:
        token = csrf_of((await client.get("/callbacks")).text)
        same = {"Origin": ORIGIN}
        missing = await client.post(url, data={"reason": "x"}, headers=same)
        assert missing.status_code == 403
        wrong = await client.post(url, data={"reason": "x", "csrftoken": "forged"}, headers=same)
        assert wrong.status_code == 403
        evil = {"Origin": "http://evil.example"}
        foreign = await client.post(url, data={"reason": "x", "csrftoken": token}, headers=evil)
        assert foreign.status_code == 403
        referer = {"Referer": "http://evil.example/page"}
        foreign = await client.post(url, data={"reason": "x", "csrftoken": token}, headers=referer)
        assert foreign.status_code == 403
        # JSON with the session cookie but no CSRF header: refused too.
        api = await client.post(f"/api/callbacks/{created['id']}/cancel", json={"reason": "x"})
        assert api.status_code == 403
        ok = await client.post(url, data={"reason": "틀린 번호", "csrftoken": token}, headers=same)
        assert ok.status_code == 200, ok.text
        assert "취소했습니다" in ok.text
    async with site.api("admin") as api:
        closed = (await api.get(f"/api/callbacks/{created['id']}")).json()
    assert (closed["state"], closed["closed_by"]) == ("cancelled", "sup-minwon")


async def test_the_memo_form_makes_a_callback(site: WebSite) -> None:
    async with session_for(site, "sup-minwon") as client:
        token = csrf_of((await client.get("/callbacks")).text)
        form = {
            "csrftoken": token,
            "caller_name": HOSTILE_CALLER,
            "number": "010-2222-3333",
            "matter": "여권 <b>재발급</b>",
            "taken_by": "202",
            "owner": "201",
        }
        answer = await client.post("/callbacks/memo", data=form, headers={"Origin": ORIGIN})
        assert answer.status_code == 200, answer.text
        assert "메모를 저장했습니다" in answer.text
        assert_inert(answer.text, HOSTILE_CALLER)
        refused = await client.post(
            "/callbacks/memo", data=form | {"owner": "203"}, headers={"Origin": ORIGIN}
        )
        assert refused.status_code == 403  # not one of their departments
    async with session_for(site, "staff-201") as client:
        owed = (await client.get("/me/owed")).text
    assert "010-2222-3333" in owed
    assert_inert(owed, HOSTILE_CALLER)


# --------------------------------------------------------------------------- logins


async def test_logins_are_audited_and_limited(site: WebSite) -> None:
    async with site.client() as client:
        ok = await log_in(client, "staff-201")
        session = [c for c in ok.headers.get_list("set-cookie") if c.startswith("callmon_session=")]
        assert len(session) == 1
        assert "httponly" in session[0].lower()
        assert "samesite=lax" in session[0].lower()
    async with site.client() as client:
        assert (await log_in(client, "staff-201", "wrong password")).status_code == 401
        assert (await log_in(client, "nobody", "wrong password")).status_code == 401
        assert (await log_in(client, "staff-201")).status_code == 303
    site.site.limiter.limits["account"] = 3
    async with site.client() as client:
        for _ in range(3):
            assert (await log_in(client, "staff-203", "wrong password")).status_code == 401
        # The limit holds for the right password too, until the window has passed.
        assert (await log_in(client, "staff-203")).status_code == 429
    entries = await audit_entries(site.site.engine)
    actions = [(e["action"], e["actor"], e["target"]) for e in reversed(entries)]
    assert ("login_refused", None, "staff-201") in actions
    assert ("login_refused", None, "nobody") in actions
    assert ("login_ok", "staff-201", "staff-201") in actions
    assert ("login_refused", None, "staff-203") in actions
    assert all(PASSWORD not in json.dumps(e["details"]) for e in entries)


def test_the_limiter_counts_per_account_and_per_client() -> None:
    now = [0.0]
    limiter = LoginLimiter(per_account=2, per_client=3, window_seconds=60, clock=lambda: now[0])
    limiter.failed("kim", "10.0.0.1")
    assert not limiter.blocked("kim", "10.0.0.1")
    limiter.failed("kim", "10.0.0.2")
    assert limiter.blocked("kim", "10.0.0.9")  # the account, from anywhere
    limiter.failed("lee", "10.0.0.1")
    limiter.failed("park", "10.0.0.1")
    assert limiter.blocked("choi", "10.0.0.1")  # the client, for any account
    now[0] = 61.0
    assert not limiter.blocked("kim", "10.0.0.1")


async def test_memo_and_cancel_are_audited(site: WebSite) -> None:
    created = await memo_for(site)
    async with site.api("sup-minwon") as api:
        await api.post(f"/api/callbacks/{created['id']}/cancel", json={"reason": "중복"})
    entries = await audit_entries(site.site.engine)
    found = {(e["action"], e["actor"], e["target"]) for e in entries}
    assert ("memo", "admin", created["id"]) in found
    assert ("cancel", "sup-minwon", created["id"]) in found


# --------------------------------------------------------------------------- strangers' text


def assert_inert(page: str, stranger: str) -> None:
    """The text is in the page as text: escaped, never as markup."""
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert str(markupsafe.escape(stranger.split("\n", maxsplit=1)[0])) in page


@pytest.mark.parametrize(
    "name",
    [
        "<script>alert(1)</script>",
        '"><img src=x onerror=alert(1)>',
        "가" * 10_000,
        "\u202eevil.exe\u202c",
        "첫 줄\n<script>둘째 줄</script>",
    ],
    ids=["script", "attribute", "10k", "rtl", "newline"],
)
async def test_hostile_caller_names_are_inert_in_html_and_json(site: WebSite, name: str) -> None:
    created = await memo_for(site, name=name[:200])
    async with site.api("sup-minwon") as api:
        listed = (await api.get("/api/callbacks")).json()["obligations"]
    assert [o["caller_name"] for o in listed] == [name[:200]]  # exact, JSON-escaped
    async with session_for(site, "sup-minwon") as client:
        page = (await client.get("/callbacks")).text
    assert_inert(page, name[:200])
    assert created["id"] in page


async def test_a_hostile_caller_on_the_calls_pages(site: WebSite) -> None:
    judged = site.calls[-1]
    assert judged.record.caller_name == HOSTILE_CALLER
    async with session_for(site, "admin") as client:
        listing = (await client.get("/calls?from=2026-11-01&to=2026-12-31")).text
        page = (await client.get(f"/calls/{judged.record.linkedid}")).text
    for text in (listing, page):
        assert_inert(text, HOSTILE_CALLER)
    assert (
        "script-src 'self'"
        in (await site.client().get("/login")).headers["content-security-policy"]
    )


# --------------------------------------------------------------------------- the rest


async def test_korean_by_default_english_by_the_switch(site: WebSite) -> None:
    async with site.client() as client:
        assert "로그인" in (await client.get("/login")).text
        english = await client.get("/login?lang=en")
        assert "Log in" in english.text
        assert "Log in" in (await client.get("/login")).text  # kept in a cookie


async def test_metrics_token_when_set(tmp_path: Path) -> None:
    web = WebSettings(metrics_token=SecretStr("scrape-me"))
    async with web_site(tmp_path / "m.sqlite3", web=web) as s, s.client() as client:
        assert (await client.get("/metrics")).status_code == 401
        scraped = await client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert scraped.status_code == 200
        assert (await client.get("/healthz")).status_code == 200


async def test_live_nudges_only_the_owner(site: WebSite) -> None:
    live: Live = site.site.live
    with live.listen(["staff:201"]) as mine, live.listen(["staff:203"]) as theirs:
        created = await memo_for(site, owner="201")
        event = json.loads(mine.get_nowait())
        assert event == {"kind": "created", "obligation": created["id"]}
        assert theirs.empty()
    assert live.listeners == 0


async def test_the_supervisor_sees_department_totals(site: WebSite) -> None:
    await memo_for(site, owner="201")
    await memo_for(site, owner=MINWON)
    async with session_for(site, "sup-minwon") as client:
        page = (await client.get("/callbacks")).text
    assert page.count("<td>민원여권과</td>") >= 2


async def test_a_staff_members_month_is_counted_in_sql(site: WebSite) -> None:
    november = (datetime(2026, 11, 1, tzinfo=SEOUL), datetime(2026, 12, 1, tzinfo=SEOUL))
    # 201 answered the three recorded calls: rings 1, 3 and 1; hung up first on the last.
    month = await staff_month(site.site.engine, "201", *november)
    assert month == {"P1": (2, 3), "P7": (2, 3)}
    assert await staff_month(site.site.engine, "203", *november) == {}
    december = (november[1], datetime(2027, 1, 1, tzinfo=SEOUL))
    assert await staff_month(site.site.engine, "201", *december) == {}


async def test_a_trusted_proxys_user_header_only_when_configured(tmp_path: Path) -> None:
    header = {"X-Remote-User": "sup-minwon"}
    async with web_site(tmp_path / "off.sqlite3") as off, off.client(headers=header) as client:
        assert (await client.get("/api/callbacks")).status_code == 401  # off by default
    web = WebSettings(trusted_user_header="X-Remote-User")
    async with web_site(tmp_path / "sso.sqlite3", web=web) as sso:
        async with sso.client(headers=header) as client:  # from 127.0.0.1, trusted
            assert (await client.get("/api/callbacks")).status_code == 200
            unknown = await client.get("/api/callbacks", headers={"X-Remote-User": "nobody"})
            assert unknown.status_code == 401
            # A change vouched for by the proxy must come from the page's origin.
            memo = {"number": "1", "owner": "201", "taken_by": "202"}
            assert (await client.post("/api/callbacks/memo", json=memo)).status_code == 403
        transport = httpx.ASGITransport(app=sso.app, client=("10.0.0.9", 5000))
        async with httpx.AsyncClient(
            transport=transport, base_url=sso.base, headers=header
        ) as client:  # not the proxy: the header is anyone's to send
            assert (await client.get("/api/callbacks")).status_code == 401


async def test_a_callbacks_history_opens_in_place_for_who_may_see_it(site: WebSite) -> None:
    created = await memo_for(site, name="<b>홍길동</b>")
    async with site.api("sup-minwon") as api:
        await api.post(f"/api/callbacks/{created['id']}/cancel", json={"reason": "<i>중복</i>"})
    url = f"/callbacks/{created['id']}/history"
    async with session_for(site, "sup-minwon") as client:
        page = await client.get(url)
        assert page.status_code == 200
        assert "생성" in page.text
        assert "취소" in page.text
        assert "cancelled: &lt;i&gt;중복&lt;/i&gt;" in page.text
        assert "sup-minwon" in page.text
    async with session_for(site, "sup-chongmu") as client:
        assert (await client.get(url)).status_code == 404
