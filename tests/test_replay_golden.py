"""``call-monitor replay --json`` prints, byte for byte, what it printed before the package
was reshaped (issue 9): the files under ``tests/golden/replay/`` were written by the tree
before the change, one per recording (and one for the reconnect's two parts together).

A change of behaviour shows here as a diff; a deliberate one rewrites the golden file in the
same commit that says why.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from call_monitor import cli
from tests.recordings import RECORDINGS

GOLDEN = Path(__file__).parent / "golden" / "replay"


def _replay_json(*paths: Path) -> bytes:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(["replay", "--json", *map(str, paths)])
    assert status == 0
    return out.getvalue().encode()


@pytest.mark.parametrize("recording", sorted(RECORDINGS.glob("*.ami")), ids=lambda path: path.name)
def test_replay_json_is_byte_identical(recording: Path) -> None:
    golden = GOLDEN / f"{recording.name.removesuffix('.ami')}.jsonl"
    assert _replay_json(recording) == golden.read_bytes()


def test_replay_json_of_the_reconnect_parts_is_byte_identical() -> None:
    parts = [RECORDINGS / f"s_ami_reconnect_midcall.part{n}.ami" for n in (1, 2)]
    golden = GOLDEN / "s_ami_reconnect_midcall.parts.jsonl"
    assert _replay_json(*parts) == golden.read_bytes()
