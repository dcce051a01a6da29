"""The form file read: the one shipped in the package, or the one ``checklist.form`` names.

The package's only I/O (the rest of it is pure). Called once at start (the daemon turns a
:class:`~call_monitor.checklist.form.FormError` into a one-line startup error).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from call_monitor.checklist.form import Form, FormError, parse_form

SETTING = "checklist.form"


def default_form_text() -> str:
    return (
        resources.files("call_monitor.checklist")
        .joinpath("default_form.toml")
        .read_text(encoding="utf-8")
    )


def load_form(path: Path | None = None) -> Form:
    """The form at ``path``, else the shipped one. :class:`FormError` whose message names the
    setting and the file: ``checklist.form: /etc/x.toml: items[3].weight: ...``."""
    if path is None:
        return parse_form(default_form_text())
    try:
        text = path.read_text(encoding="utf-8")
        return parse_form(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise FormError([f"cannot read: {exc}"], f"{SETTING}: {path}") from exc
    except FormError as exc:
        raise FormError(exc.problems, f"{SETTING}: {path}") from exc
