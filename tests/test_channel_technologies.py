"""The correlator does not depend on ``PJSIP/``: the recordings with their channels renamed to
another technology give, byte for byte, the ``replay --json`` lines of the originals (the
golden files of test_replay_golden.py).

- ``SIP/``: chan_sip, Asterisk 16 to 20 as many offices still run it (``SIP/201-0000002b``);
- ``IAX2/``: ``IAX2/201-0000002b``;
- ``DAHDI/``: the public side on an analogue or ISDN trunk, ``DAHDI/i1/01012345678-1``
  (span ``i1``, the number dialled or calling, a channel counter), staff phones on SIP. Its
  endpoint (``i1/01012345678``) is no configured public endpoint: the trunk is recognised by
  its context (``from-pstn``, ``directory.public_contexts``), as the README says;
- and ``PJSIP/`` with the trunk's context renamed: recognised by its endpoint alone.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from call_monitor import cli
from call_monitor.calls.correlator import Topology
from tests.recordings import RECORDINGS
from tests.test_replay_golden import GOLDEN

_TRUNK = re.compile(rb"PJSIP/pstn-([0-9a-f]{8})")


def dahdi_trunk(raw: bytes) -> bytes:
    """Trunk channels as DAHDI names them, staff phones as chan_sip does."""
    renamed = _TRUNK.sub(lambda m: b"DAHDI/i1/01012345678-%d" % int(m[1], 16), raw)
    return renamed.replace(b"PJSIP/", b"SIP/")


RENAMINGS: dict[str, Callable[[bytes], bytes]] = {
    "SIP": lambda raw: raw.replace(b"PJSIP/", b"SIP/"),
    "IAX2": lambda raw: raw.replace(b"PJSIP/", b"IAX2/"),
    "DAHDI": dahdi_trunk,
    # The trunk's context unknown to the configuration: the endpoint (pstn) alone says it.
    "PJSIP, other context": lambda raw: raw.replace(b": from-pstn\r\n", b": from-trunk\r\n"),
}


def replay_renamed(tmp_path: Path, rename: Callable[[bytes], bytes], *names: str) -> bytes:
    paths = []
    for name in names:
        path = tmp_path / name
        path.write_bytes(rename((RECORDINGS / name).read_bytes()))
        paths.append(str(path))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["replay", "--json", *paths]) == 0
    return out.getvalue().encode()


@pytest.mark.parametrize("technology", RENAMINGS)
@pytest.mark.parametrize(
    "recording",
    sorted(p.name for p in RECORDINGS.glob("*.ami") if not p.name.endswith(".full.ami")),
)
def test_renamed_channels_give_the_same_calls(
    tmp_path: Path, technology: str, recording: str
) -> None:
    rename = RENAMINGS[technology]
    raw = (RECORDINGS / recording).read_bytes()
    assert rename(raw) != raw or b"pstn" not in raw  # it renamed (an internal call: no trunk)
    assert (b"PJSIP/" in rename(raw)) == technology.startswith("PJSIP")
    golden = GOLDEN / f"{recording.removesuffix('.ami')}.jsonl"
    assert replay_renamed(tmp_path, rename, recording) == golden.read_bytes()


@pytest.mark.parametrize("technology", RENAMINGS)
def test_renamed_channels_across_a_reconnect(tmp_path: Path, technology: str) -> None:
    parts = [f"s_ami_reconnect_midcall.part{n}.ami" for n in (1, 2)]
    golden = GOLDEN / "s_ami_reconnect_midcall.parts.jsonl"
    assert replay_renamed(tmp_path, RENAMINGS[technology], *parts) == golden.read_bytes()


def test_the_public_side_is_recognised_by_endpoint_or_by_context() -> None:
    by_endpoint = Topology(frozenset({"pstn"}), frozenset())
    by_context = Topology(frozenset(), frozenset({"from-pstn"}))
    assert by_endpoint.is_public("pstn", "staff")
    assert by_context.is_public("i1/01012345678", "from-pstn")
    assert not by_context.is_public("201", "staff")
    assert not by_endpoint.is_public("i1/01012345678", "from-pstn")
