"""``call-monitor check-asterisk``: the shipped asterisk_conf/ passes; broken copies of it are
reported with the file and line of what broke them, through the real command."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from call_monitor.calls.correlator import EVENTS_USED
from call_monitor.pbxconf.check import EVENT_CLASS, granted
from call_monitor.pbxconf.syntax import Setting, build, tokens
from tests.test_cli import HANGUL, cli

SHIPPED = Path(__file__).resolve().parent.parent / "asterisk_conf"


def line_of(path: Path, text: str) -> int:
    """The number of the one line of ``path`` that starts with ``text``."""
    lines = path.read_text("utf-8").splitlines()
    found = [n for n, line in enumerate(lines, 1) if line.strip().startswith(text)]
    assert len(found) == 1, (path, text, found)
    return found[0]


def broken_copy(tmp_path: Path, file: str, line: str, replacement: str | None) -> tuple[Path, int]:
    """asterisk_conf/ copied with one line of ``file`` replaced (None: deleted); the copy and
    the number of that line."""
    directory = tmp_path / "asterisk"
    shutil.copytree(SHIPPED, directory)
    number = line_of(directory / file, line)
    lines = (directory / file).read_text("utf-8").splitlines()
    lines[number - 1 : number] = [] if replacement is None else [replacement]
    (directory / file).write_text("\n".join(lines) + "\n", "utf-8")
    return directory, number


def check(directory: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return cli("check-asterisk", directory, *options)


def reported(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The problem lines (all but the summary), after checking the exit status says so."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stdout.splitlines()[:-1]


def test_the_shipped_configuration_passes() -> None:
    for lang, clean in (("ko", "문제 없음"), ("en", "no problems")):
        result = check(SHIPPED, "--lang", lang)
        assert result.returncode == 0, (result.stdout, result.stderr)
        assert result.stdout.splitlines() == [result.stdout.strip()]  # one line: the summary
        assert clean in result.stdout
        assert "manager.conf, indications.conf, extensions.conf, pjsip.conf" in result.stdout


@pytest.mark.parametrize(
    ("file", "line", "replacement", "needle"),
    [
        ("manager.conf", "timestampevents = yes", "timestampevents = no", "timestampevents"),
        ("manager.conf", "write = reporting", "write = all", "originate, system, config, command"),
        ("manager.conf", "read = call,agent,dtmf", "read = call,agent", "lacks dtmf: the monitor "
         "would miss DTMFBegin, DTMFEnd"),
        ("manager.conf", "read = call,agent,dtmf", "read = call,agent", "lacks dtmf"),
        ("manager.conf", "read = call,agent,dtmf", "read = call,dtmf", "lacks agent: the monitor "
         "would miss QueueCallerAbandon, QueueCallerJoin, QueueCallerLeave"),
        ("manager.conf", "read = call,agent,dtmf", "read = call,agent,dtmf,dialplan,reporting",
         "more than the monitor needs: reporting,dialplan (it needs call,agent,dtmf)"),
        ("manager.conf", "write = reporting", "write = none",
         "does not allow CoreShowChannels (needs one of system,reporting)"),
        ("indications.conf", "ringcadence = 1000,2000", "ringcadence = 2000,4000",
         "[kr] ringcadence 2000,4000 differs from the monitor's [charter] cadence 1000,2000"),
        ("indications.conf", "ring = 440+480/1000,0/2000",
         "ring = 440+480/400,0/200,440+480/400,0/2000",
         "[kr] ring 440+480/400,0/200,440+480/400,0/2000 differs"),
        ("extensions.conf", "same => n,Dial(PJSIP/201&PJSIP/202,${RINGTIME},tT)",
         "same => n,Dial(PJSIP/201&PJSIP/202)", "Dial() without a ring timeout (-)"),
        ("extensions.conf", "exten => _0X.,1,Dial(PJSIP/${EXTEN}@pstn,60,tT)",
         "exten => _0X.,1,Dial(PJSIP/${EXTEN}@pstn&PJSIP/201,0,tT)",
         "Dial() without a ring timeout (0)"),
        ("manager.conf", "eventfilter(action(exclude),name(Cdr)) =",
         "eventfilter(action(exclude),name(Hangup)) =",
         "this eventfilter drops events the monitor reads: Hangup"),
    ],
)  # fmt: skip
def test_each_break_is_reported_at_its_line(
    tmp_path: Path, file: str, line: str, replacement: str, needle: str
) -> None:
    directory, number = broken_copy(tmp_path, file, line, replacement)
    problems = reported(check(directory, "--lang", "en"))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{file}:{number}: "), problems
    assert needle in problems[0], problems


def test_without_timestampevents_the_general_section_is_named(tmp_path: Path) -> None:
    directory, _ = broken_copy(tmp_path, "manager.conf", "timestampevents = yes", None)
    general = line_of(directory / "manager.conf", "[general]")
    problems = reported(check(directory))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"manager.conf:{general}: timestampevents = yes 가 아닙니다")
    assert HANGUL.search(problems[0])


def test_a_world_open_ami_is_reported_at_bindaddr(tmp_path: Path) -> None:
    directory, bind = broken_copy(
        tmp_path, "manager.conf", "bindaddr = 127.0.0.1", "bindaddr = 0.0.0.0"
    )
    # Bound to every address but the user still limited to the monitor: not open.
    assert check(directory).returncode == 0
    manager = directory / "manager.conf"
    limits = ("deny = 0.0.0.0/0.0.0.0", "deny = ::/0")
    kept = [line for line in manager.read_text("utf-8").splitlines() if line not in limits]
    manager.write_text("\n".join(kept) + "\n", "utf-8")
    # permit alone lets everyone in: Asterisk's ACL allows unless a rule denies.
    problems = reported(check(directory, "--lang", "en"))
    assert problems == [
        f"manager.conf:{bind}: AMI listens on all addresses (0.0.0.0) and [callmon] has no "
        "deny/permit limiting where it may log in from: anyone can try. Narrow bindaddr, or "
        "add deny = 0.0.0.0/0.0.0.0 then permit = <the monitor's address>"
    ]


def test_a_spaced_class_list_is_read_as_asterisk_reads_it(tmp_path: Path) -> None:
    directory, number = broken_copy(
        tmp_path, "manager.conf", "read = call,agent,dtmf", "read = call,agent, dtmf"
    )
    problems = reported(check(directory, "--lang", "en"))
    assert [p.split(": ", 1)[0] for p in problems] == [f"manager.conf:{number}"] * 2
    assert "' dtmf' is not an AMI class" in problems[0] + problems[1]
    assert "lacks dtmf" in problems[0] + problems[1]


def test_the_cadence_and_user_come_from_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "callmon.toml"
    config.write_text(
        '[ami]\nusername = "monitor"\n[charter]\nring_on_seconds = 2.0\nring_off_seconds = 4.0\n',
        "utf-8",
    )
    problems = reported(check(SHIPPED, "--config", config, "--lang", "en"))
    indications = SHIPPED / "indications.conf"
    assert problems == [
        "indications.conf:"
        f"{line_of(indications, 'ringcadence = 1000,2000')}"
        ": [kr] ringcadence 1000,2000 differs from the monitor's [charter] cadence 2000,4000 "
        "(2 s on, 4 s off): ring counts (P1) would not match",
        "indications.conf:"
        f"{line_of(indications, 'ring = 440+480/1000,0/2000')}"
        ": [kr] ring 440+480/1000,0/2000 differs from the monitor's [charter] cadence 2000,4000 "
        "(2 s on, 4 s off): ring counts (P1) would not match what callers hear",
        "manager.conf: no AMI user [monitor] for the monitor (ami.username in call-monitor's "
        "configuration)",
    ]


def test_a_zero_ring_time_in_globals_reaches_every_dial_that_uses_it(tmp_path: Path) -> None:
    directory, _ = broken_copy(
        tmp_path,
        "extensions.conf",
        "RINGTIME = 20",
        "RINGTIME = 0",
    )
    extensions = (directory / "extensions.conf").read_text("utf-8").splitlines()
    uses = [n for n, line in enumerate(extensions, 1) if "Dial(" in line and "${RINGTIME}" in line]
    problems = reported(check(directory, "--lang", "en"))
    assert [p.split(": ", 1)[0] for p in problems] == [f"extensions.conf:{n}" for n in uses]
    assert len(uses) == 4


def test_the_monitors_user_may_live_in_an_included_file(tmp_path: Path) -> None:
    directory = tmp_path / "asterisk"
    shutil.copytree(SHIPPED, directory)
    manager = directory / "manager.conf"
    text = manager.read_text("utf-8")
    general, user = text.split("[callmon]")
    manager.write_text(general + "#include manager.d/*.conf\n", "utf-8")
    (directory / "manager.d").mkdir()
    (directory / "manager.d" / "callmon.conf").write_text(
        "[callmon]" + user.replace("write = reporting", "write = reporting,originate"), "utf-8"
    )
    problems = reported(check(directory, "--lang", "en"))
    write = line_of(directory / "manager.d" / "callmon.conf", "write = reporting,originate")
    assert [p.split(": ", 1)[0] for p in problems] == [f"manager.d/callmon.conf:{write}"]
    assert "grants originate" in problems[0]


@pytest.mark.parametrize("setup", ["missing", "empty", "a file"])
def test_a_directory_that_cannot_be_read_exits_2(tmp_path: Path, setup: str) -> None:
    target = tmp_path / "etc-asterisk"
    if setup == "empty":
        target.mkdir()
    elif setup == "a file":
        target.write_text("[general]\n", "utf-8")
    result = check(target)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("call-monitor: ")
    assert str(target) in result.stderr
    assert "Traceback" not in result.stderr


# -- the pure parts ------------------------------------------------------------------------


def test_every_event_the_correlator_reads_has_its_ami_class() -> None:
    assert set(EVENT_CLASS) == EVENTS_USED


@pytest.mark.parametrize(
    ("value", "classes", "unknown"),
    [
        ("call,dtmf", {"call", "dtmf"}, []),
        ("call, dtmf", {"call"}, [" dtmf"]),  # nothing is trimmed
        ("Call", set(), ["Call"]),  # case matters
        ("c,dtmf", {"call", "cc", "cdr", "command", "config", "dtmf"}, ["c"]),  # a prefix
        ("call,,dtmf", "all", []),  # an empty word matches every class
        ("all", "all", []),
        ("none", set(), []),
        ("call,", {"call"}, []),
    ],
)
def test_classes_are_granted_as_manager_c_grants_them(
    value: str, classes: set[str] | str, unknown: list[str]
) -> None:
    found, words = granted(value)
    if classes == "all":
        assert len(found) == 19
        assert {"originate", "system", "config", "command"} <= found
    else:
        assert found == classes
    assert words == unknown


def test_the_syntax_asterisk_reads() -> None:
    text = "\n".join(
        [
            "[general]",  # 1
            ";-- a block comment",  # 2
            "ignored = inside ;-- nested --; still inside",  # 3
            "--;",  # 4
            r"value = a\;b ; a comment",  # 5
            "[base](!)",  # 6
            "read = call",  # 7
            "[user](base)",  # 8
            "write => reporting",  # 9
            "write += ,dtmf",  # 10
            "no equals sign",  # 11
        ]
    )
    conf = build("x.conf", tokens(text, "x.conf"))
    general = conf.first("general")
    assert general is not None
    assert [(s.name, s.value, s.where.line) for s in general.settings] == [("value", "a;b", 5)]
    assert conf.first("base") is None  # a template is no section of its own
    user = conf.first("USER")
    assert user is not None
    assert [(s.name, s.value, s.where.line) for s in user.settings] == [
        ("read", "call", 7),
        ("write", "reporting", 9),
        ("write", "reporting,dtmf", 10),
    ]
    assert [(u.reason, u.where.line) for u in conf.unreadable] == [("no_equals", 11)]
    assert isinstance(user.last("write"), Setting)
