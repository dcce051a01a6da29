"""What a newcomer types first (issue 13): options where they put them, a busy port, files
that are not recordings. A real process each time, its output and exit code."""

from __future__ import annotations

import gzip
import socket
from pathlib import Path

import pytest

from call_monitor import __version__
from tests.recordings import RECORDINGS
from tests.test_cli import assert_clean_failure, clean_env, cli

ONE_CALL = RECORDINGS / "a_answer_1ring.ami"


def test_options_after_the_subcommand(tmp_path: Path) -> None:
    config = tmp_path / "my.toml"
    config.write_text('[charter]\ndefinitions_version = "house-test"\n', encoding="utf-8")
    before = cli("--config", config, "--lang", "en", "replay", "--json", ONE_CALL)
    after = cli("replay", "--json", ONE_CALL, "--config", config, "--lang", "en")
    assert before.returncode == after.returncode == 0, after.stderr
    assert '"definitions_version": "house-test"' in after.stdout
    assert after.stdout == before.stdout


def test_lang_after_the_subcommand_wins_over_the_default() -> None:
    english = cli("replay", ONE_CALL, "--lang", "en")
    assert english.returncode == 0
    assert "answered by 201" in english.stdout
    korean = cli("--lang", "en", "replay", ONE_CALL, "--lang", "ko")
    assert "201 응답" in korean.stdout


def test_a_missing_config_named_after_the_subcommand(tmp_path: Path) -> None:
    result = cli("run", "--config", tmp_path / "nope.toml")
    assert_clean_failure(result, "nope.toml")


def test_version() -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"call-monitor {__version__}"


@pytest.mark.parametrize("command", ["run", "demo", "replay", "memo"])
def test_each_subcommand_lists_its_options(command: str) -> None:
    result = cli(command, "--help")
    assert result.returncode == 0
    assert "--config" in result.stdout
    assert "--lang" in result.stdout


def test_a_busy_web_port_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    database = tmp_path / "second.sqlite3"
    try:
        result = cli(
            "demo",
            "--speed",
            "0",
            "--once",
            env=clean_env(
                CALLMON_WEB__PORT=str(port),
                CALLMON_STORE__URL=f"sqlite+aiosqlite:///{database}",
            ),
        )
    finally:
        holder.close()
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    problem = [line for line in result.stderr.splitlines() if line.startswith("call-monitor:")]
    assert problem == [
        f"call-monitor: web.port: cannot listen on 127.0.0.1:{port}: "
        "Address already in use (is another call-monitor running?)"
    ]
    assert not database.exists()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "is empty"),
        (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)), "does not begin with the AMI banner"),
        (b'{"scenario": "a"}\n', "does not begin with the AMI banner"),
        (b"Asterisk Call Manager/11.0.0\r\n\r\n", "no event"),
        (b"\x1f\x8b\x08\x00broken", "damaged gzip"),
    ],
    ids=["empty", "binary", "json", "banner-only", "broken-gzip"],
)
def test_replay_of_what_is_not_a_recording(tmp_path: Path, content: bytes, says: str) -> None:
    path = tmp_path / "input.ami"
    path.write_bytes(content)
    assert_clean_failure(cli("replay", path), str(path), says)


def test_replay_of_a_truth_file_and_a_directory(tmp_path: Path) -> None:
    truth = RECORDINGS / "a_answer_1ring.truth.json"
    assert_clean_failure(cli("replay", truth), "not an AMI recording")
    assert_clean_failure(cli("replay", tmp_path), "is a directory")


def test_a_bad_file_among_good_ones_prints_no_half_replay(tmp_path: Path) -> None:
    empty = tmp_path / "empty.ami"
    empty.write_bytes(b"")
    assert_clean_failure(cli("replay", ONE_CALL, empty), "is empty")


def test_replay_reads_gzip_recordings(tmp_path: Path) -> None:
    packed = tmp_path / "a.ami.gz"
    packed.write_bytes(gzip.compress(ONE_CALL.read_bytes()))
    plain, compressed = cli("replay", "--json", ONE_CALL), cli("replay", "--json", packed)
    assert compressed.returncode == 0, compressed.stderr
    assert compressed.stdout == plain.stdout != ""
