"""Strangers' text in a spreadsheet: numbers masked, formulas neutralised."""

from __future__ import annotations

from call_monitor.charter.obligations import normalise_number

# A cell starting with one of these is a formula (or becomes one) in Excel, LibreOffice
# and Google Sheets: "=HYPERLINK(...)", "+cmd|...", "-2+3", "@SUM(...)", a tab or a CR.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """``text`` as a spreadsheet shows it as text: a leading ``'`` before a formula start
    (OWASP's advice for CSV injection); other text unchanged."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def mask_number(raw: str | None) -> str:
    """A customer's number for a published file: the area or mobile prefix and the last
    four digits (``010-****-5678``, ``02-****-1234``); short numbers keep only the last
    two digits; no digits, nothing."""
    if raw and raw.isascii() and raw.isdigit() and raw[0] == "0" and raw[1:2] != "0":
        digits = raw  # national digits already (the usual caller ID): nothing to normalise
    else:
        digits = normalise_number(raw or "")
    if not digits:
        return ""
    if len(digits) < 8:
        return "*" * max(0, len(digits) - 2) + digits[-2:]
    prefix = "02" if digits.startswith("02") else digits[:3]
    return f"{prefix}-****-{digits[-4:]}"
