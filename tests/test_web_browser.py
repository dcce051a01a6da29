"""The pages in a real browser: Debian's Chromium (``/usr/bin/chromium``, installed by
``scripts/setup dev``; never a downloaded one) driven by Playwright, against the app served by
uvicorn on a real socket, as the daemon serves it.

A supervisor takes a memo for 201; 201's staff home, open in another browser, shows it without
a reload (server-sent events) and raises a browser notification; staff of another department
are refused 201's call. A supervisor scores the call 201 answered on ring 3 (the apology item,
the measured items pre-filled), corrects it, and 201 sees the score and disputes an item.
Screenshots go to ``artifacts/screenshots/`` (not committed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from call_monitor.checklist.files import load_form
from call_monitor.web.app import serve
from tests.backends import unavailable
from tests.test_web import free_port
from tests.test_web_checklist import HEARD  # the answers a listener gives to the unmeasured items
from tests.web_site import HOSTILE_CALLER, PASSWORD, WebSite, log_in, web_site

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
TIMEOUT_MS = 15_000
# Notifications cannot be shown headless: this stand-in records what the page asks for, with
# the permission granted, as a person who clicked "allow" would have it.
NOTIFICATION_STUB = """
window.__notifications = [];
window.Notification = class {
  constructor(title) { window.__notifications.push(title); }
  static get permission() { return "granted"; }
  static requestPermission() { return Promise.resolve("granted"); }
};
"""


@contextlib.asynccontextmanager
async def served(tmp_path: Path) -> AsyncIterator[WebSite]:
    port = free_port()
    async with web_site(tmp_path / "browser.sqlite3", f"http://127.0.0.1:{port}") as site:
        started = asyncio.Event()
        server = asyncio.create_task(serve(site.app, "127.0.0.1", port, started=started))
        try:
            async with asyncio.timeout(10):
                await started.wait()
            yield site
        finally:
            site.site.live.close()
            server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        unavailable(f"{CHROMIUM} missing (scripts/setup dev installs Debian's chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def logged_in(browser: Browser, site: WebSite, login: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(base_url=site.base, locale="ko-KR")
    context.set_default_timeout(TIMEOUT_MS)
    await context.add_init_script(NOTIFICATION_STUB)
    page = await context.new_page()
    await page.goto("/login")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()
    return context, page


async def test_a_memo_reaches_the_owners_home_live(tmp_path: Path, browser: Browser) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with served(tmp_path) as site:
        staff_context, home = await logged_in(browser, site, "staff-201")
        await expect(home).to_have_url(f"{site.base}/me")
        await expect(home.locator("#owed-none")).to_be_visible()
        # The event stream is open before the memo is written (else there is nothing to see).
        async with asyncio.timeout(10):
            while site.site.live.listeners == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.05)

        sup_context, desk = await logged_in(browser, site, "sup-minwon")
        await expect(desk).to_have_url(f"{site.base}/callbacks")
        await desk.fill("#memo-form input[name=caller_name]", HOSTILE_CALLER)
        await desk.fill("#memo-form input[name=number]", "010-7777-8888")
        await desk.fill("#memo-form textarea[name=matter]", "여권 재발급 서류 문의")
        await desk.fill("#memo-form input[name=taken_by]", "202")
        await desk.fill("#memo-form input[name=owner]", "201")
        await desk.click("#memo-form button[type=submit]")
        await expect(desk.locator(".notice")).to_have_text("메모를 저장했습니다.")
        row = desk.locator("#open-callbacks tbody tr")
        await expect(row).to_have_count(1)
        await expect(row.locator("td.text").first).to_have_text(
            HOSTILE_CALLER.split("\n")[0] + "\nline"
        )
        # Its history opens in place (htmx), without leaving the page.
        await row.get_by_role("button", name="이력").click()
        await expect(row.locator(".history tbody tr")).to_have_count(1)
        await expect(row.locator(".history")).to_contain_text("생성")
        await desk.screenshot(path=SCREENSHOTS / "callbacks.png", full_page=True)

        # 201's home, never reloaded, shows the callback and has raised a notification.
        owed = home.locator("#owed-table tbody tr")
        await expect(owed).to_have_count(1)
        await expect(owed).to_contain_text("010-7777-8888")
        await expect(owed).to_contain_text("여권 재발급 서류 문의")
        notified = await home.evaluate("window.__notifications")
        assert notified == ["회신할 전화가 생겼습니다"]
        # The stranger's markup stayed text: no element came of it.
        assert await home.locator("#owed img, #owed script").count() == 0
        await home.screenshot(path=SCREENSHOTS / "staff-home.png", full_page=True)
        await staff_context.close()
        await sup_context.close()


async def test_staff_of_another_department_are_refused_a_call(
    tmp_path: Path, browser: Browser
) -> None:
    async with served(tmp_path) as site:
        linkedid = site.calls[0].record.linkedid  # 민원여권과, answered by 201
        context, page = await logged_in(browser, site, "staff-203")
        answer = await page.goto(f"/calls/{linkedid}")
        assert answer is not None
        assert answer.status == 403
        await expect(page.locator("h1")).to_have_text("볼 수 없는 페이지입니다.")
        await context.close()
        context, page = await logged_in(browser, site, "staff-201")
        answer = await page.goto(f"/calls/{linkedid}")
        assert answer is not None
        assert answer.status == 200
        await expect(page.locator("#timeline li").first).to_contain_text("통화 시작")
        await expect(page.locator("#checklist")).to_be_visible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=SCREENSHOTS / "call.png", full_page=True)
        await page.goto("/calls?from=2026-11-01&to=2026-12-31")
        await expect(page.locator("#calls tbody tr")).to_have_count(len(site.calls))
        await page.screenshot(path=SCREENSHOTS / "calls.png", full_page=True)
        await context.close()


async def test_a_supervisor_scores_a_late_call_and_its_staff_disputes(
    tmp_path: Path, browser: Browser
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with served(tmp_path) as site:
        judged = site.calls[1]  # c_answer_3rings_breach: 201 answered on ring 3
        assert judged.verdict.rings == 3
        call = f"/calls/{judged.record.linkedid}"
        context, page = await logged_in(browser, site, "sup-minwon")
        await page.goto(call)
        form = page.locator("#checklist-form")
        # The apology applies (ring 3); the PBX's measurements are filled in and marked.
        await expect(form.locator("#item-p2_apology")).to_be_visible()
        await expect(form.locator("#item-p1_rings .badge.measured")).to_have_text(
            "교환기 측정: 아니오"
        )
        await expect(form.locator("input[name=answer-p1_rings][value=no]")).to_be_checked()
        await expect(
            form.locator("input[name=answer-p7_caller_hangs_up][value=yes]")
        ).to_be_checked()
        await expect(form.locator("#item-p4_briefing")).to_have_count(0)
        for item, answer in HEARD.items():
            await form.locator(f"input[name=answer-{item}][value={answer}]").check()
        await form.locator("input[name=comment-p7_closing]").fill("끝인사 없이 종료")
        await page.screenshot(path=SCREENSHOTS / "checklist-form.png", full_page=True)
        await form.locator("button[type=submit]").click()
        await expect(page.locator(".notice")).to_have_text("점검표를 저장했습니다.")
        weights = {item.id: item.weight for item in load_form(None).items}
        given = HEARD | {"p1_rings": "no", "p7_caller_hangs_up": "yes"}
        counted = sum(weights[i] for i in given)
        first = round(100 * sum(weights[i] for i, a in given.items() if a == "yes") / counted, 2)
        await expect(page.locator("#score strong")).to_have_text(f"{first:g}")
        await expect(page.locator("#revisions tbody tr")).to_have_count(1)

        # A correction: a new revision with its reason, the history shows both.
        form = page.locator("#checklist-form")
        await form.locator("input[name=answer-p7_closing][value=yes]").check()
        await form.locator("input[name=comment-p7_closing]").fill("")
        await form.locator("input[name=reason]").fill("다시 들으니 끝인사를 했음")
        await form.locator("button[type=submit]").click()
        await expect(page.locator("#revisions tbody tr")).to_have_count(2)
        await expect(page.locator("#revisions")).to_contain_text("다시 들으니 끝인사를 했음")
        second = round(100 * (counted - weights["p1_rings"]) / counted, 2)
        await expect(page.locator("#score strong")).to_have_text(f"{second:g}")
        await page.screenshot(path=SCREENSHOTS / "checklist.png", full_page=True)
        await context.close()

        # The staff member sees the score at home, opens the call, disputes one item.
        context, home = await logged_in(browser, site, "staff-201")
        await expect(home.locator("#mean-score")).to_have_text(f"{second:g} (1)")
        await home.screenshot(path=SCREENSHOTS / "staff-home-scores.png", full_page=True)
        await home.locator(f'#my-scores a[href="{call}#checklist"]').click()
        await expect(home.locator("#score strong")).to_have_text(f"{second:g}")
        await expect(home.locator("#checklist-form")).to_have_count(0)
        dispute = home.locator("#dispute-form")
        await dispute.locator("select[name=item_id]").select_option("p1_rings")
        await dispute.locator("textarea[name=comment]").fill("두 번째 벨에 받았습니다")
        await dispute.locator("button[type=submit]").click()
        await expect(home.locator(".notice")).to_have_text(
            "이의를 제기했습니다. 부서 팀장에게 전달됩니다."
        )
        await expect(home.locator("#responses")).to_contain_text("두 번째 벨에 받았습니다")
        await expect(home.locator("#dispute-form")).to_have_count(0)
        await context.close()

        # Staff of another department: refused the call's page.
        context, other = await logged_in(browser, site, "staff-203")
        answer = await other.goto(call)
        assert answer is not None
        assert answer.status == 403
        await context.close()


async def test_the_event_stream_over_a_real_socket(tmp_path: Path) -> None:
    """Without a browser: the staff home's stream, as the page's EventSource reads it."""
    async with served(tmp_path) as site, httpx.AsyncClient(base_url=site.base) as client:
        assert (await log_in(client, "staff-201")).status_code == 303
        async with client.stream("GET", "/me/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            lines = events.aiter_lines()
            assert await anext(lines) == "retry: 3000"
            async with site.api("admin") as api:
                memo = {"number": "010-1111-2222", "owner": "201", "taken_by": "202"}
                created = (await api.post("/api/callbacks/memo", json=memo)).json()
            async with asyncio.timeout(10):
                received = [line async for line in _until_data(lines)]
        assert received[-2:] == [
            "event: callbacks",
            f'data: {{"kind": "created", "obligation": "{created["obligation"]["id"]}"}}',
        ]


async def _until_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    async for line in lines:
        if line:
            yield line
        if line.startswith("data:"):
            return
