"""``/export``: the monthly export as a download from the web, for the auditor and admin
only: the roles, the CSRF token, a bad request, the zip of the file and its manifest (the
hashes match), the audit log, and the monitor's event loop free while the file is made."""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import zipfile
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from call_monitor.export.month import Month
from call_monitor.store.accounts import audit_entries
from call_monitor.timefmt import SEOUL
from call_monitor.web import export_page
from tests.loop_ticks import ticking
from tests.test_web_site import session_for
from tests.web_site import ACCOUNTS, CHONGMU, WebSite, csrf_of, web_site

ORIGIN = "http://127.0.0.1"
SAME = {"Origin": ORIGIN}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[WebSite]:
    async with web_site(tmp_path / "web.sqlite3") as found:
        yield found


def recorded_month(site: WebSite) -> str:
    started = datetime.fromtimestamp(site.calls[0].record.started_at, SEOUL)
    return str(Month(started.year, started.month))


async def test_only_the_auditor_and_the_admin_may_export(site: WebSite) -> None:
    month = recorded_month(site)
    for login in ACCOUNTS:
        allowed = ACCOUNTS[login][0] in ("auditor", "admin")
        async with session_for(site, login) as client:
            page = await client.get("/export")
            assert page.status_code == (200 if allowed else 403), login
            assert ('href="/export"' in page.text) is allowed, login  # the menu, too
            form = {"month": month, "format": "json", "csrftoken": csrf_of(page.text)}
            answer = await client.post("/export", data=form, headers=SAME)
            assert answer.status_code == (200 if allowed else 403), login
    actors = {e["actor"] for e in await audit_entries(site.site.engine) if e["action"] == "export"}
    assert actors == {"auditor", "admin"}


async def test_the_form_needs_its_csrf_token_and_a_valid_request(site: WebSite) -> None:
    month = recorded_month(site)
    async with session_for(site, "auditor") as client:
        token = csrf_of((await client.get("/export")).text)
        missing = await client.post(
            "/export", data={"month": month, "format": "json"}, headers=SAME
        )
        assert missing.status_code == 403
        forged = {"month": month, "format": "json", "csrftoken": "forged"}
        assert (await client.post("/export", data=forged, headers=SAME)).status_code == 403
        evil = {"Origin": "http://evil.example"}
        foreign = {"month": month, "format": "json", "csrftoken": token}
        assert (await client.post("/export", data=foreign, headers=evil)).status_code == 403
        for bad in (
            {"month": "2026-13", "format": "json"},
            {"month": "<script>", "format": "json"},
            {"month": month, "format": "exe"},
            {"month": month, "format": "json", "lang": "fr"},
            {"month": month, "format": "json", "department": "없는 부서"},
        ):
            answer = await client.post("/export", data=bad | {"csrftoken": token}, headers=SAME)
            assert answer.status_code == 422, bad
            assert "<script>" not in answer.text
    assert not [e for e in await audit_entries(site.site.engine) if e["action"] == "export"]


async def test_the_download_is_the_file_and_its_manifest_made_off_the_event_loop(
    site: WebSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    month = recorded_month(site)
    folders: list[Path] = []
    make_folder = tempfile.mkdtemp

    def recorded_mkdtemp(prefix: str) -> str:
        folders.append(Path(make_folder(prefix=prefix)))
        return str(folders[-1])

    monkeypatch.setattr(export_page.tempfile, "mkdtemp", recorded_mkdtemp)
    async with session_for(site, "auditor") as client:
        token = csrf_of((await client.get("/export")).text)
        form = {"month": month, "format": "xlsx", "department": CHONGMU, "csrftoken": token}
        async with ticking() as gaps:
            answer = await client.post("/export", data=form, headers=SAME)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/zip"
        assert "attachment" in answer.headers["content-disposition"]
        assert f"callmon-{month}-xlsx.zip" in answer.headers["content-disposition"]
        with zipfile.ZipFile(io.BytesIO(answer.content)) as bundle:
            names = sorted(bundle.namelist())
            assert names == [f"callmon-{month}.xlsx", f"callmon-{month}.xlsx.manifest.json"]
            data = bundle.read(names[0])
            manifest = json.loads(bundle.read(names[1]))
        assert data.startswith(b"PK")  # an XLSX is a zip
        assert manifest["files"] == [
            {"name": names[0], "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        ]
        assert manifest["query"] == {
            "month": month,
            "format": "xlsx",
            "lang": "ko",
            "department": CHONGMU,
            "recompute": False,
        }
        # JSON, in English: the figures of the recorded calls.
        form = {"month": month, "format": "json", "lang": "en", "csrftoken": token}
        answer = await client.post("/export", data=form, headers=SAME)
        with zipfile.ZipFile(io.BytesIO(answer.content)) as bundle:
            document = json.loads(bundle.read(f"callmon-{month}-en.json"))
    inbound = [c for c in site.calls if c.record.direction == "inbound"]
    assert document["office"]["inbound_calls"] == len(inbound) > 0
    assert len(gaps) > 3  # the loop went on ticking while the file was made
    entries = [e for e in await audit_entries(site.site.engine) if e["action"] == "export"]
    assert len(entries) == 2
    xlsx_entry = entries[-1]  # newest first
    assert (xlsx_entry["actor"], xlsx_entry["target"]) == ("auditor", month)
    assert xlsx_entry["details"]["department"] == CHONGMU
    assert xlsx_entry["details"]["files"] == manifest["files"]
    assert len(folders) == 2
    assert not any(folder.exists() for folder in folders)  # removed once sent
