"""The export's masking of customers' numbers: the fast path for national digits gives what
the normalising path gives, for any number."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from call_monitor.charter.obligations import normalise_number
from call_monitor.export.text import mask_number


@given(st.text(alphabet="0123456789+- ٣", max_size=16))
def test_the_fast_path_masks_as_the_normalising_one(raw: str) -> None:
    # A leading space takes the normalising path (which strips it) whatever the digits.
    assert mask_number(raw) == mask_number(" " + raw)
    assert normalise_number(raw)[-4:] in mask_number(raw) or len(normalise_number(raw)) < 8


def test_examples() -> None:
    assert mask_number("01012345678") == "010-****-5678"
    assert mask_number("024501435") == "02-****-1435"
    assert mask_number("00821012345678") == "010-****-5678"
    assert mask_number("+82 10-1234-5678") == "010-****-5678"
    assert mask_number("1234567") == "*****67"
    assert mask_number(None) == ""
