"""``/export``: the audit office's monthly export as a download, for the auditor and admin
roles only (``call-monitor export`` from the web).

The form asks for the month, the format, the language and a department (or all). The file
is made by :func:`call_monitor.export.run.export_month` in a worker thread with its own
event loop (never on the monitor's), in a private temporary directory; the answer is a zip
of the file and its manifest (``PATH.manifest.json``: the hashes that let the auditor show
the file was not altered), streamed from disk, and the directory is removed once it is
sent. Each export is written to the audit log with its query and the file's SHA-256. One
export runs at a time: a second waits its turn (an export is seconds of CPU on a machine
the monitor shares).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.background import BackgroundTask

from call_monitor.config import Settings
from call_monitor.export.build import FORMATS, ExportRequest, Format
from call_monitor.export.headers import Lang
from call_monitor.export.month import Month
from call_monitor.export.run import export_month
from call_monitor.store.accounts import User
from call_monitor.timefmt import SEOUL
from call_monitor.web.pages import Pages

EXPORT_ROLES = frozenset({"auditor", "admin"})
MEDIA_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "application/zip",
    "json": "application/json",
    "html": "text/html",
}
SUFFIXES = {"xlsx": "xlsx", "csv": "zip", "json": "json", "html": "html"}

# The page's own words (the shared i18n table keeps only the menu's).
TEXT: dict[str, dict[str, str]] = {
    "ko": {
        "title": "월별 이행 현황 내려받기",
        "intro": "선택한 달의 헌장 이행 현황을 만듭니다. 파일과 그 확인서(manifest, SHA-256)를 "
        "zip 하나로 내려받습니다. 확인서로 파일이 바뀌지 않았음을 보일 수 있습니다 "
        "(call-monitor export verify).",
        "month": "대상 월",
        "format": "형식",
        "language": "언어",
        "department": "부서",
        "all": "전체",
        "download": "만들어 내려받기",
        "wait": "수십만 건이면 수십 초가 걸릴 수 있습니다.",
        "bad": "입력이 올바르지 않습니다",
        "ko": "한국어",
        "en": "영어",
        "xlsx": "엑셀 (XLSX)",
        "csv": "CSV (zip)",
        "json": "JSON",
        "html": "인쇄용 보고서 (HTML)",
    },
    "en": {
        "title": "Monthly export",
        "intro": "Makes the charter figures of the month chosen. The file and its manifest "
        "(SHA-256) come in one zip: the manifest shows the file was not altered "
        "(call-monitor export verify).",
        "month": "Month",
        "format": "Format",
        "language": "Language",
        "department": "Department",
        "all": "all",
        "download": "Make and download",
        "wait": "A month of hundreds of thousands of calls can take tens of seconds.",
        "bad": "Not a valid request",
        "ko": "Korean",
        "en": "English",
        "xlsx": "Excel (XLSX)",
        "csv": "CSV (zip)",
        "json": "JSON",
        "html": "Printable report (HTML)",
    },
}


class ExportForm(BaseModel):
    """The form as sent; a department must be one of the directory's (checked after)."""

    month: str = Field(pattern=r"^\d{4}-\d{2}$")
    format: Format
    lang: Lang = "ko"
    department: str = Field(default="", max_length=200)


def _last_month() -> str:
    today = datetime.now(SEOUL).date()
    return str(Month(today.year, today.month).shifted(-1))


class ExportPage:
    def __init__(self, pages: Pages, settings: Settings) -> None:
        self.pages = pages
        self.settings = settings
        self.one_at_a_time = asyncio.Lock()

    async def _allowed(self, request: Request) -> tuple[User, Response | None]:
        user = await self.pages.user(request)
        if user.role not in EXPORT_ROLES:
            return user, await self.pages.refuse(request, user, 403)
        return user, None

    async def _form(
        self, request: Request, user: User, status: int = 200, **values: Any
    ) -> Response:
        return await self.pages.render(
            request,
            "export.html",
            user,
            status,
            texts=TEXT,
            formats=FORMATS,
            departments=self.pages.directory.departments,
            month=values.pop("month", _last_month()),
            **values,
        )

    async def form(self, request: Request) -> Response:
        user, refused = await self._allowed(request)
        return refused or await self._form(request, user)

    async def download(
        self,
        request: Request,
        month: Annotated[str, Form()],
        format: Annotated[str, Form()],
        lang: Annotated[str, Form()] = "ko",
        department: Annotated[str, Form()] = "",
    ) -> Response:
        user, refused = await self._allowed(request)
        if refused is not None:
            return refused
        try:
            asked = ExportForm.model_validate(
                {"month": month, "format": format, "lang": lang, "department": department}
            )
            wanted = Month.parse(asked.month)
        except (ValidationError, ValueError):
            return await self._form(request, user, 422, bad=True, month=month[:7])
        if asked.department and asked.department not in self.pages.directory.departments:
            return await self._form(request, user, 422, bad=True, month=asked.month)
        folder = Path(tempfile.mkdtemp(prefix="callmon-export-"))
        try:
            bundle, manifest = await self._make(folder, wanted, asked)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        await self.pages.access.audit(
            "export",
            user,
            str(wanted),
            format=asked.format,
            lang=asked.lang,
            department=asked.department or None,
            files=manifest["files"],
        )
        return FileResponse(
            bundle,
            media_type="application/zip",
            filename=bundle.name,
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )

    async def _make(
        self, folder: Path, month: Month, asked: ExportForm
    ) -> tuple[Path, dict[str, Any]]:
        """The export and its manifest, zipped: made in a worker thread (never here)."""
        stem = f"callmon-{month}" + (f"-{asked.lang}" if asked.lang != "ko" else "")
        out = folder / f"{stem}.{SUFFIXES[asked.format]}"
        request = ExportRequest(
            month, asked.format, out, asked.lang, department=asked.department or None
        )
        async with self.one_at_a_time:
            manifest_path = await export_month(self.settings, request)
        bundle = folder / f"{stem}-{asked.format}.zip"
        await asyncio.to_thread(_zip, bundle, [out, manifest_path])
        manifest: dict[str, Any] = json.loads(manifest_path.read_text("utf-8"))
        return bundle, manifest


def _zip(bundle: Path, files: list[Path]) -> None:
    # Stored, not deflated: XLSX and the CSV zip are compressed already.
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in files:
            archive.write(path, path.name)


def export_router(page: ExportPage) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    router.add_api_route("/export", page.form, methods=["GET"])
    router.add_api_route("/export", page.download, methods=["POST"])
    return router
