"""What a newcomer types first (issue 13): options where they put them, a busy port, files
that are not recordings. A real process each time, its output and exit code."""

from __future__ import annotations

import gzip
import json
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from call_monitor import __version__
from call_monitor.config import Settings
from tests.recordings import RECORDINGS
from tests.test_cli import TIMEOUT, assert_clean_failure, clean_env, cli

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
    assert "answered by Kim Staff(201)" in english.stdout
    korean = cli("--lang", "en", "replay", ONE_CALL, "--lang", "ko")
    assert "Kim Staff(201) 응답" in korean.stdout


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


# -- the call lines a team lead reads (items 7 and 8) ---------------------------------------


def _lines(*recordings: str, lang: str = "ko", config: Path | None = None) -> list[str]:
    options: list[str | Path] = ["--lang", lang] + (["--config", config] if config else [])
    result = cli("replay", *options, *(RECORDINGS / f"{name}.ami" for name in recordings))
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.fixture
def korean_directory(tmp_path: Path) -> Path:
    """The example configuration's directory: staff names in Korean."""
    example = Path(__file__).parent.parent / "call-monitor.example.toml"
    text = example.read_text(encoding="utf-8").replace('host = "pbx.example.local"', "")
    config = tmp_path / "example.toml"
    config.write_text(text, encoding="utf-8")
    return config


def test_an_internal_call_is_described_not_judged() -> None:
    [line, total] = _lines("p_internal_call")
    assert line.split(" | ")[1] == "내선"
    for verdict in ("P1", "P2", "P7", "양해"):
        assert verdict not in line
    assert "판정 0건" in total


def test_names_next_to_extensions_and_plain_transfer_words(korean_directory: Path) -> None:
    [blind, attended, _] = _lines(
        "e_blind_transfer", "f1_attended_transfer_2s", config=korean_directory
    )
    assert "김민원(201) 응답" in blind
    assert "김민원(201)→이여권(202) 바로 돌려줌, 3.0초 만에 연결" in blind
    assert "김민원(201)→이여권(202) 설명 후 돌려줌, 6.0초 만에 연결" in attended
    assert "블라인드" not in blind + attended
    assert "협의" not in attended


def test_seconds_are_always_in_one_unit() -> None:
    lines = _lines("e_blind_transfer", "c_answer_3rings_breach")
    text = "\n".join(lines)
    assert "초" in text
    assert not any(
        token.endswith("s") and token[:-1].replace(".", "").isdigit() for token in text.split()
    )


def test_missed_call_with_its_callback_and_the_attempt_with_its_outcome() -> None:
    [missed, attempt, callback, total] = _lines("n_missed_then_two_callback_attempts")
    assert "부재중: 아무도 받지 않음" in missed
    assert "회신 필요: " in missed
    assert "(201), 기한 11-30 10:00" in missed
    assert "(201)→고객, 고객 응답 없음" in attempt
    assert "회신 시도: 고객 응답 없음" in attempt
    assert "회신 완료(기한 내)" in callback
    assert total == (
        "합계: 통화 3건 · 판정 1건 · P1 해당 없음 · 부재중 1건 · 회신 필요 1건(완료 1, 대기 0)"
    )


def test_lines_in_call_start_order_and_the_summary_counts_them() -> None:
    lines = _lines("j_burst_50", "a_answer_1ring")
    *calls, total = lines
    starts = [line.split(" | ")[0] for line in calls]
    assert starts == sorted(starts)
    assert total.startswith(f"합계: 통화 {len(calls)}건")
    p1 = [line for line in calls if " | P1 " in line]
    met = [line for line in p1 if " | P1 충족" in line]
    assert f"P1 충족 {len(met)}/{len(p1)}(" in total
    missed = [line for line in calls if "부재중:" in line]
    assert f"부재중 {len(missed)}건" in total


def test_english_lines_count_in_english() -> None:
    [line, total] = _lines("a_answer_1ring", lang="en")
    assert "1 ring (1.5 s)" in line
    assert "1 rings" not in line
    assert total.startswith("Total: 1 call · 1 judged · P1 met 1/1 (100%) · 0 missed")
    assert "0 callbacks owed" in total


# -- what `run` says at start (items 9 and 10) ----------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_until(needle: str, env: dict[str, str], *args: str | Path) -> str:
    """Start ``call-monitor run``, read its log until ``needle`` shows, stop it (SIGTERM),
    and return everything it wrote."""
    process = subprocess.Popen(
        [sys.executable, "-m", "call_monitor", *map(str, args), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        env=env,
    )
    assert process.stdout is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if needle in line:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=TIMEOUT)
    return "".join(seen) + rest


def test_run_says_what_it_runs_at_start(tmp_path: Path) -> None:
    config = tmp_path / "office.toml"
    config.write_text('log_level = "INFO"\n', encoding="utf-8")
    port = free_port()
    database = tmp_path / "calls.sqlite3"
    env = clean_env(
        CALLMON_AMI__HOST="127.0.0.1",
        CALLMON_AMI__PORT=str(free_port()),  # nothing listens: the link retries
        CALLMON_AMI__USERNAME="monitor",
        CALLMON_AMI__SECRET="s3cret-ami",
        CALLMON_WEB__PORT=str(port),
        CALLMON_STORE__URL=f"sqlite+aiosqlite:///{database}",
    )
    log = _run_until("Application startup complete", env, "--config", config)
    [started] = [line for line in log.splitlines() if " started: " in line]
    assert " INFO call_monitor.daemon.service: " in started
    assert f"call-monitor {__version__} started: config {config}" in started
    assert f"store sqlite+aiosqlite:///{database}" in started
    assert f"web http://127.0.0.1:{port}" in started
    assert f"AMI monitor@127.0.0.1:{env['CALLMON_AMI__PORT']}" in started
    assert "s3cret-ami" not in log
    assert "uvicorn" not in log  # the web server logs under the project's name
    assert "call_monitor.web.server: Application startup complete" in log


def test_a_store_that_cannot_be_opened_is_one_line_without_the_password(tmp_path: Path) -> None:
    env = clean_env(
        CALLMON_AMI__HOST="127.0.0.1",
        CALLMON_AMI__SECRET="x",
        CALLMON_WEB__PORT=str(free_port()),
        CALLMON_STORE__URL=f"postgresql+asyncpg://nobody:pw-secret@127.0.0.1:{free_port()}/x",
    )
    result = cli("run", env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "pw-secret" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("call-monitor:")]
    assert line.startswith("call-monitor: store.url: cannot open postgresql+asyncpg://nobody:***@")
    assert "ConnectionRefusedError" in line


def test_a_sqlite_file_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    env = clean_env(
        CALLMON_AMI__HOST="127.0.0.1",
        CALLMON_AMI__SECRET="x",
        CALLMON_WEB__PORT=str(free_port()),
        CALLMON_STORE__URL=f"sqlite+aiosqlite:///{blocker}/calls.sqlite3",
    )
    result = cli("run", env=env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("Traceback") == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("call-monitor: store.url: ")


def test_the_default_store_is_one_absolute_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    url = Settings().store.url
    assert url == f"sqlite+aiosqlite:///{tmp_path}/data/call-monitor/call-monitor.sqlite3"
    monkeypatch.chdir(Path(__file__).parent)
    assert Settings().store.url == url  # not relative to the working directory


# -- configuration errors a person reads (item 9) -------------------------------------------


def test_an_unknown_key_names_the_file_and_the_nearest_key(tmp_path: Path) -> None:
    config = tmp_path / "office.toml"
    config.write_text(
        '[ami]\nping_intervall_seconds = 3\n[directory.staff."201"]\n'
        'name = "김민원"\ndepartment = "민원여권과"\nnaem = "x"\n',
        encoding="utf-8",
    )
    result = cli("replay", ONE_CALL, "--config", config)
    assert_clean_failure(
        result,
        f"configuration error in {config}: ",
        "ami.ping_intervall_seconds: unknown key; did you mean ping_interval_seconds?",
        "directory.staff.201.naem: unknown key; did you mean name?",
    )


def test_an_environment_error_says_it_came_from_the_environment() -> None:
    result = cli("replay", ONE_CALL, env=clean_env(CALLMON_AMI__PORT="0"))
    assert_clean_failure(result, "in the CALLMON_ environment: ami.port: ")


def test_a_bad_log_level_is_a_configuration_error() -> None:
    result = cli("replay", ONE_CALL, env=clean_env(CALLMON_LOG_LEVEL="LOUD"))
    assert_clean_failure(result, "log_level: Input should be 'DEBUG'")


# -- a call first seen at a resync (item 5) --------------------------------------------------


def test_a_call_first_seen_at_a_resync_starts_when_the_pbx_says_not_in_1970() -> None:
    part2 = RECORDINGS / "s_ami_reconnect_midcall.part2.ami"
    text = part2.read_text(encoding="utf-8")
    first_event_time = float(text.split("Timestamp: ", 1)[1].split("\n", 1)[0])
    up_for = 12.0  # the resync's "Duration: 00:00:12" of the call's channels
    result = cli("replay", "--json", part2)
    assert result.returncode == 0, result.stderr
    [call] = [json.loads(line) for line in result.stdout.splitlines()]
    started = datetime.fromisoformat(call["started_at"])
    assert started.year == 2026
    assert started.timestamp() == pytest.approx(first_event_time - up_for, abs=0.001)
    assert call["incomplete"] is True  # the monitor did not see the whole call
    assert call["judged"] is False


def test_a_deleted_store_is_not_silently_replaced_when_creating_is_off(tmp_path: Path) -> None:
    """Issue 14, item 3: the next start quietly made a new empty database where the old one
    had been deleted (history and open callbacks gone). With store.create_if_missing false
    it refuses, in one line naming the setting."""
    env = clean_env(
        CALLMON_AMI__HOST="127.0.0.1",
        CALLMON_AMI__SECRET="x",
        CALLMON_WEB__PORT=str(free_port()),
        CALLMON_STORE__URL=f"sqlite+aiosqlite:///{tmp_path / 'gone.sqlite3'}",
        CALLMON_STORE__CREATE_IF_MISSING="false",
    )
    result = cli("run", env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("call-monitor:")]
    assert "store.create_if_missing is false" in line
    assert not (tmp_path / "gone.sqlite3").exists()  # nothing made in its place
