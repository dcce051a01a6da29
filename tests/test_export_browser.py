"""The monthly report in a real browser (Debian's Chromium driven by Playwright, as in
``test_web_browser``): an auditor downloads it from ``/export``, and the HTML file from the
zip, opened from disk, shows its Korean text and its SVG charts, asks for nothing from the
network, and is kept as a screenshot in ``artifacts/screenshots/`` (not committed)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from playwright.async_api import Browser, Request, expect

from tests.test_web_browser import SCREENSHOTS, browser, logged_in, served
from tests.test_web_export import recorded_month

__all__ = ["browser"]  # the fixture


async def test_the_downloaded_report_renders_with_korean_text_and_charts(
    tmp_path: Path, browser: Browser
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with served(tmp_path) as site:
        month = recorded_month(site)
        context, page = await logged_in(browser, site, "auditor")
        await page.get_by_role("link", name="월별 현황").click()
        await expect(page.locator("h1")).to_have_text("월별 이행 현황 내려받기")
        await page.fill("#export-form input[name=month]", month)
        await page.select_option("#export-form select[name=format]", "html")
        async with page.expect_download() as downloading:
            await page.click("#export-form button[type=submit]")
        download = await downloading.value
        assert download.suggested_filename == f"callmon-{month}-html.zip"
        bundle = tmp_path / download.suggested_filename
        await download.save_as(bundle)
        with zipfile.ZipFile(bundle) as archive:
            archive.extractall(tmp_path / "report")
        report = tmp_path / "report" / f"callmon-{month}.html"
        assert (tmp_path / "report" / f"{report.name}.manifest.json").is_file()

        requested: list[str] = []

        def note(request: Request) -> None:
            requested.append(request.url)

        page.on("request", note)
        await page.goto(report.as_uri())
        year, number = month.split("-")
        await expect(page.locator("h1")).to_have_text(
            f"{year}년 {int(number)}월 전화 친절 서비스 헌장 이행 현황"
        )
        await expect(page.get_by_role("heading", name="기관 전체")).to_be_visible()
        await expect(page.get_by_role("heading", name="부서별 현황")).to_be_visible()
        charts = page.locator("svg")
        await expect(charts).to_have_count(4)  # P1, P4, P6, P7 (one month: no history)
        for index in range(4):
            chart = charts.nth(index)
            await expect(chart).to_be_visible()
            box = await chart.bounding_box()
            assert box is not None
            assert box["width"] > 200
            assert box["height"] > 10
        # Drawn bars: the departments' rates, some of them above zero.
        widths = await page.locator("svg rect").evaluate_all(
            "rects => rects.map(r => r.getBoundingClientRect().width)"
        )
        assert widths
        assert max(widths) > 0
        korean = page.get_by_text("민원여권과").first
        await expect(korean).to_be_visible()
        glyphs = await korean.bounding_box()
        assert glyphs is not None
        assert glyphs["width"] > 20  # five Korean characters, drawn
        assert requested == [report.as_uri()]  # self-contained: nothing else fetched
        await page.screenshot(path=SCREENSHOTS / "export-report.png", full_page=True)
        await context.close()
