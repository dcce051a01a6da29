"""The manifest beside every export: what was asked, under which definitions, how many rows
each sheet has, which program wrote it, and the SHA-256 of each file, so an auditor can show
that a file was not altered (``call-monitor export verify MANIFEST``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from call_monitor import __version__
from call_monitor.export.build import ExportData

MANIFEST_SUFFIX = ".manifest.json"
CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_path(out: Path) -> Path:
    return out.with_name(out.name + MANIFEST_SUFFIX)


def manifest(data: ExportData, files: Sequence[Path]) -> dict[str, Any]:
    return {
        "manifest_version": 1,
        "program": "call-monitor",
        "program_version": __version__,
        "generated_at": data.generated_at.isoformat(timespec="seconds"),
        "query": data.request.query(),
        "month": str(data.request.month),
        "definitions_version": data.definitions_version,
        "definitions_version_current": data.settings.charter.definitions_version,
        "definitions_versions_stored": data.stored_versions,
        "recomputed": data.request.recompute,
        "rows": dict(sorted(data.row_counts.items())),
        # Names relative to the manifest's directory: the pair can be moved together.
        "files": [
            {"name": path.name, "bytes": path.stat().st_size, "sha256": sha256_of(path)}
            for path in files
        ],
    }


def write_manifest(data: ExportData, files: Sequence[Path]) -> Path:
    path = manifest_path(files[0])
    body = json.dumps(manifest(data, files), ensure_ascii=False, indent=2) + "\n"
    path.write_text(body, encoding="utf-8")
    return path


@dataclass(frozen=True, slots=True)
class Mismatch:
    name: str
    reason: str


def verify(path: Path) -> list[Mismatch]:
    """What does not match ``path``'s manifest (nothing: every file is as written).

    ``ValueError`` for a file that is not a manifest."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        files = [(str(f["name"]), str(f["sha256"])) for f in body["files"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not an export manifest ({exc})") from exc
    problems = []
    for name, expected in files:
        target = path.parent / Path(name).name  # never outside the manifest's directory
        if not target.is_file():
            problems.append(Mismatch(name, "missing"))
        elif sha256_of(target) != expected:
            problems.append(Mismatch(name, "SHA-256 differs: the file was changed"))
    return problems
