"""The pages in a real browser: Debian's Chromium (``/usr/bin/chromium``, installed by
``scripts/setup dev``; never a downloaded one) driven by Playwright, against the app served by
uvicorn on a real socket, as the daemon serves it.

A supervisor takes a memo for 201; 201's staff home, open in another browser, shows it without
a reload (server-sent events) and raises a browser notification; staff of another department
are refused 201's call. Screenshots go to ``artifacts/screenshots/`` (not committed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from call_monitor.web.app import serve
from tests.backends import unavailable
from tests.test_web import free_port
from tests.web_site import HOSTILE_CALLER, PASSWORD, WebSite, web_site

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
        await context.close()
