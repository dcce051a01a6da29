"""The ``call-monitor`` command as a user runs it: a real process, its output, its exit code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from call_monitor.charter.judged import JudgedCall, call_report
from call_monitor.cli import main as cli_main
from call_monitor.config import Settings
from call_monitor.daemon.pipeline import replay
from call_monitor.demo.pbx import recording_path
from tests.faults import BAD, BURST, InjectedBug, plant_bug

TIMEOUT = 60.0
HANGUL = re.compile("[\uac00-\ud7a3]")

CALL_FIELDS = {
    "kind",
    "linkedid",
    "direction",
    "caller",
    "dialed",
    "department",
    "answered_by",
    "ring_seconds",
    "rings",
    "p1_met",
    "apology_expected",
    "missed",
    "missed_reason",
    "transfers",
    "hangup_first",
    "incomplete",
}
TRANSFER_FIELDS = {
    "kind",
    "completed",
    "from",
    "to",
    "other_department",
    "wait_seconds",
    "target_ring_seconds",
    "p4_met",
}


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any call-monitor settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLMON_")}
    env.update(extra)
    return env


def cli(
    *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "call_monitor", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env if env is not None else clean_env(),
        cwd=cwd,
        timeout=TIMEOUT,
        check=False,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 2, one clear message on stderr naming the problem, no traceback, no stdout."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("call-monitor: "), result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
    assert result.stdout == ""


def offline_json(path: Path) -> list[dict[str, Any]]:
    """What replay --json should print, through the same JSON round trip."""
    return [
        json.loads(json.dumps(call_report(r.record, r.verdict)))
        for r in replay([path], Settings())
        if isinstance(r, JudgedCall)
    ]


# -- replay --json ---------------------------------------------------------------------------


def test_replay_json_one_object_per_line() -> None:
    path = recording_path("d_missed_then_callback.ami")
    result = cli("replay", "--json", path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3  # the missed call, the callback, then the obligation (P6)
    *calls, owed = [json.loads(line) for line in lines]
    assert owed["kind"] == "callback"
    assert owed["state"] == "fulfilled_on_time"
    for call in calls:
        assert isinstance(call, dict)
        assert call.keys() >= CALL_FIELDS, CALL_FIELDS - call.keys()
        assert call["kind"] == "call"
    missed, callback = calls
    assert (missed["direction"], missed["missed"], missed["missed_reason"]) == (
        "inbound",
        True,
        "no_answer",
    )
    assert missed["answered_by"] is None
    assert missed["department"] == "민원여권과"
    assert callback["direction"] == "outbound"
    assert callback["dialed"].endswith("01012345678")
    # Korean stays readable in the JSON (ensure_ascii=False), and it is what replay() says.
    assert "민원여권과" in result.stdout
    assert calls == offline_json(path)


def test_replay_json_transfer_fields() -> None:
    path = recording_path("e_blind_transfer.ami")
    result = cli("replay", "--json", path)
    assert result.returncode == 0, result.stderr
    [call] = [json.loads(line) for line in result.stdout.splitlines()]
    assert call.keys() >= CALL_FIELDS
    [transfer] = call["transfers"]
    assert transfer.keys() >= TRANSFER_FIELDS, TRANSFER_FIELDS - transfer.keys()
    assert (transfer["kind"], transfer["from"], transfer["to"]) == ("blind", "201", "202")
    assert transfer["completed"] is True
    assert transfer["other_department"] is False
    assert transfer["p4_met"] is True
    assert isinstance(transfer["wait_seconds"], float)
    assert isinstance(transfer["target_ring_seconds"], float)
    assert [call] == offline_json(path)


def test_replay_several_files_in_order() -> None:
    paths = [
        recording_path("a_answer_1ring.ami"),
        recording_path("m_caller_abandons_while_ringing.ami"),
    ]
    result = cli("replay", "--json", *paths)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    calls = [line for line in lines if line["kind"] == "call"]
    assert [c["missed"] for c in calls] == [False, True]
    assert [line["kind"] for line in lines] == ["call", "call", "callback"]  # m owes a call


# -- human output ---------------------------------------------------------------------------


def test_replay_human_output_is_korean_by_default() -> None:
    result = cli("replay", recording_path("c_answer_3rings_breach.ami"))
    assert result.returncode == 0, result.stderr
    [line, total] = result.stdout.splitlines()
    assert "수신" in line  # inbound
    assert "(201) 응답" in line  # answered by 201, named from the directory
    assert "벨 3회(7.5초)" in line  # 3 rings, seconds in 초
    assert "P1 미충족" in line  # P1 breached
    assert "양해 인사 필요" in line  # apology expected
    assert line.startswith("2026-11-28 15:28:14 |")  # Seoul time
    assert total.startswith("합계: 통화 1건")


def test_replay_human_output_in_english() -> None:
    result = cli("--lang", "en", "replay", recording_path("c_answer_3rings_breach.ami"))
    assert result.returncode == 0, result.stderr
    [line, total] = result.stdout.splitlines()
    assert "inbound" in line
    assert "(201)" in line
    assert "answered by" in line
    assert "3 rings (7.5 s)" in line
    assert "P1 breached" in line
    assert "apology expected" in line
    assert total.startswith("Total: 1 call ·")
    # Only the department's own (Korean) name is left in Hangul.
    assert HANGUL.findall(line.replace("민원여권과", "")) == []


# -- failures: exit 2 and a clear message, never a traceback ---------------------------------


def test_replay_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ami"
    result = cli("replay", recording_path("a_answer_1ring.ami"), missing)
    assert_clean_failure(result, "no such file", str(missing))


def test_run_without_a_pbx() -> None:
    result = cli("run")
    assert_clean_failure(result, "no PBX configured", "CALLMON_AMI__HOST")


def test_run_without_a_secret(tmp_path: Path) -> None:
    env = clean_env(CALLMON_AMI__HOST="127.0.0.1")
    result = cli("run", env=env, cwd=tmp_path)
    assert_clean_failure(result, "no AMI secret")


def test_run_with_an_unreadable_secret_file(tmp_path: Path) -> None:
    missing = tmp_path / "secret.txt"
    env = clean_env(CALLMON_AMI__HOST="127.0.0.1", CALLMON_AMI__SECRET_FILE=str(missing))
    result = cli("run", env=env, cwd=tmp_path)
    assert_clean_failure(result, "AMI secret file", str(missing))


def test_config_file_missing(tmp_path: Path) -> None:
    missing = tmp_path / "callmon.toml"
    result = cli("--config", missing, "replay", recording_path("a_answer_1ring.ami"))
    assert_clean_failure(result, "configuration error", str(missing))


def test_config_from_env_missing(tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere.toml"
    env = clean_env(CALLMON_CONFIG=str(missing))
    result = cli("replay", recording_path("a_answer_1ring.ami"), env=env)
    assert_clean_failure(result, "configuration error", str(missing))


def test_config_unknown_key(tmp_path: Path) -> None:
    config = tmp_path / "callmon.toml"
    config.write_text('log_levle = "DEBUG"\n', encoding="utf-8")
    result = cli("--config", config, "replay", recording_path("a_answer_1ring.ami"))
    assert_clean_failure(result, "configuration error", "log_levle")


def test_config_unknown_key_in_a_section(tmp_path: Path) -> None:
    config = tmp_path / "callmon.toml"
    config.write_text('[ami]\nhots = "pbx.example"\n', encoding="utf-8")
    result = cli("--config", config, "replay", recording_path("a_answer_1ring.ami"))
    assert_clean_failure(result, "configuration error", "hots")


def test_config_bad_value_and_bad_toml(tmp_path: Path) -> None:
    bad_value = tmp_path / "value.toml"
    bad_value.write_text('[ami]\nport = "five"\n', encoding="utf-8")
    result = cli("--config", bad_value, "replay", recording_path("a_answer_1ring.ami"))
    assert_clean_failure(result, "configuration error", "ami.port")

    bad_toml = tmp_path / "broken.toml"
    bad_toml.write_text("[ami\nhost = 1\n", encoding="utf-8")
    result = cli("--config", bad_toml, "replay", recording_path("a_answer_1ring.ami"))
    assert_clean_failure(result, f"configuration error in {bad_toml}", "line 1")


def test_config_error_does_not_print_the_values(tmp_path: Path) -> None:
    """A secret in the wrong place is named, never shown (pydantic's text quotes inputs)."""
    secret = "hunter2-Pa55word-misplaced"
    config = tmp_path / "callmon.toml"
    config.write_text(f'secret = "{secret}"\n[ami]\nhost = "pbx"\n', encoding="utf-8")
    result = cli("--config", config, "run")
    assert_clean_failure(result, "configuration error", "secret")
    assert secret not in result.stderr

    env = clean_env(CALLMON_AMI__PORT=secret)
    result = cli("run", env=env)
    assert_clean_failure(result, "configuration error", "ami.port")
    assert secret not in result.stderr


def test_bad_arguments_exit_2() -> None:
    result = cli("replay")  # no file
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "usage:" in result.stderr


def test_a_ring_cadence_of_zero_is_refused_not_divided_by(tmp_path: Path) -> None:
    """ring_on_seconds = ring_off_seconds = 0 used to end replay in a ZeroDivisionError."""
    config = tmp_path / "callmon.toml"
    config.write_text("[charter]\nring_on_seconds = 0\nring_off_seconds = 0\n", encoding="utf-8")
    result = cli("--config", config, "replay", recording_path("a_answer_1ring.ami"))
    assert_clean_failure(
        result, "configuration error", "charter.ring_on_seconds", "charter.ring_off_seconds"
    )
    assert len(result.stderr.splitlines()) == 1

    env = clean_env(CALLMON_CHARTER__RING_ON_SECONDS="0")
    result = cli("replay", recording_path("a_answer_1ring.ami"), env=env)
    assert_clean_failure(result, "configuration error", "charter.ring_on_seconds: ")


def test_a_reconnect_cap_below_its_start_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "callmon.toml"
    config.write_text("[ami]\nreconnect_initial_seconds = 5\n", encoding="utf-8")
    env = clean_env(CALLMON_AMI__RECONNECT_MAX_SECONDS="2")
    result = cli("--config", config, "replay", recording_path("a_answer_1ring.ami"), env=env)
    assert_clean_failure(
        result,
        "configuration error",
        "ami.reconnect_max_seconds: must be at least reconnect_initial_seconds",
    )


# -- one bad call: that call pays, the replay goes on ----------------------------------------


def test_replay_takes_an_event_whose_timestamp_is_no_date(tmp_path: Path) -> None:
    """``Timestamp: nan`` on one event (``float()`` takes it) once ended the replay with a
    traceback: the call's times could not be made dates. The event is refused, the rest goes
    on, and the next recording is read as ever."""
    original = recording_path("c_answer_3rings_breach.ami").read_bytes()
    first_state = original.index(b"Event: Newstate")
    stamp = original.index(b"Timestamp: ", first_state) + len(b"Timestamp: ")
    end = original.index(b"\r\n", stamp)
    odd = original[:stamp] + b"nan" + original[end:]
    bad = tmp_path / "nan.ami"
    bad.write_bytes(odd)
    after = recording_path("a_answer_1ring.ami")
    result = cli("replay", "--json", bad, after)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "1 events could not be used" in result.stderr
    calls = [json.loads(line) for line in result.stdout.splitlines()]
    assert [c["kind"] for c in calls[:2]] == ["call", "call"]
    assert (
        calls[0]["linkedid"]
        == offline_json(recording_path("c_answer_3rings_breach.ami"))[0]["linkedid"]
    )
    assert calls[1] == offline_json(after)[0]


def replay_lines(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[Any], str]:
    status = cli_main(["replay", "--json", *args])
    captured = capsys.readouterr()
    return status, [json.loads(line) for line in captured.out.splitlines()], captured.err


@pytest.mark.parametrize("stage", ["correlate", "judge", "report", "callbacks"])
def test_replay_survives_a_bug_one_call_triggers(
    stage: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    burst = [str(path) for path in BURST]
    status, clean, _ = replay_lines(capsys, *burst)
    assert status == 0
    clean_calls = {line["linkedid"]: line for line in clean if line["kind"] == "call"}
    clean_owed = {line["number"]: line for line in clean if line["kind"] == "callback"}
    bad_number = clean_calls[BAD]["caller"]
    assert bad_number in clean_owed  # a missed call: it owes a callback

    plant_bug(monkeypatch, stage)
    status, lines, stderr = replay_lines(capsys, *burst)

    # Everything else printed, then the bug reported: exit status 1, logged with the call.
    assert status == 1
    assert "1 internal errors" in stderr
    [logged] = [r for r in caplog.records if r.name == "call_monitor.daemon.pipeline"]
    assert f"{stage} failed on call {BAD}" in logged.getMessage()
    assert logged.exc_info is not None
    assert logged.exc_info[0] is InjectedBug
    calls = {line["linkedid"]: line for line in lines if line["kind"] == "call"}
    owed = {line["number"]: line for line in lines if line["kind"] == "callback"}
    assert {k: v for k, v in calls.items() if k != BAD} == {
        k: v for k, v in clean_calls.items() if k != BAD
    }
    assert {k: v for k, v in owed.items() if k != bad_number} == {
        k: v for k, v in clean_owed.items() if k != bad_number
    }
    if stage == "report":
        assert BAD not in calls
    elif stage == "callbacks":
        assert calls[BAD] == clean_calls[BAD]
    else:
        assert calls[BAD]["judged"] is False
        assert calls[BAD]["incomplete"] is (stage == "correlate")
    # An incomplete call owes no callback; a call the tracker failed on made none.
    assert (bad_number in owed) == (stage in ("judge", "report"))


def test_a_bad_checklist_form_refuses_the_start_naming_the_setting(tmp_path: Path) -> None:
    form = tmp_path / "form.toml"
    form.write_text('id = "f"\nversion = "1"\n', encoding="utf-8")  # no stages, no items
    config = tmp_path / "callmon.toml"
    config.write_text(f'[ami]\nhost = "pbx"\nsecret = "s"\n[checklist]\nform = "{form}"\n')
    result = cli("--config", config, "run", env=clean_env(XDG_DATA_HOME=str(tmp_path)))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr == (
        f"call-monitor: checklist.form: {form}: stages: Field required; items: Field required\n"
    )
