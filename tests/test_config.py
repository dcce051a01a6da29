"""Settings: the TOML file, the environment over it, the secret, the built-in directory."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from call_monitor.config import (
    CONFIG_ENV,
    CharterSettings,
    DirectorySettings,
    Settings,
    StaffEntry,
    default_directory,
    explain,
    load_settings,
)
from call_monitor.directory import Directory

ROOT = Path(__file__).resolve().parent.parent
SECRET = "Tr0ub4dor&3-never-shown"

CONFIG = """\
log_level = "DEBUG"

[ami]
host = "pbx.file.example"
port = 5039
username = "monitor"
ping_interval_seconds = 7.5
ignore_events = ["VarSet"]

[charter]
transfer_limit_seconds = 12.0
max_rings_p1 = 3

[store]
url = "sqlite+aiosqlite:////srv/callmon/calls.sqlite3"
batch_size = 50

[web]
host = "0.0.0.0"
port = 9100
"""


@pytest.fixture(autouse=True)
def no_callmon_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment without call-monitor settings."""
    for key in list(os.environ):
        if key.startswith("CALLMON_"):
            monkeypatch.delenv(key)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "callmon.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def test_defaults_without_file_or_env() -> None:
    settings = load_settings()
    assert settings.ami.host is None
    assert settings.ami.port == 5038
    assert settings.ami.secret is None
    assert settings.charter == CharterSettings()
    assert settings.charter.transfer_limit_seconds == 10.0
    assert settings.charter.max_rings_p1 == 2
    assert settings.charter.ring_period_seconds == 3.0
    assert (settings.web.host, settings.web.port) == ("127.0.0.1", 8089)


def test_file_values(config_file: Path) -> None:
    settings = load_settings(config_file)
    assert settings.log_level == "DEBUG"
    assert settings.ami.host == "pbx.file.example"
    assert settings.ami.port == 5039
    assert settings.ami.username == "monitor"
    assert settings.ami.ping_interval_seconds == 7.5
    assert settings.ami.ignore_events == ["VarSet"]
    assert settings.charter.transfer_limit_seconds == 12.0
    assert settings.charter.max_rings_p1 == 3
    assert settings.charter.apology_from_ring == 3  # not in the file: the default
    assert settings.store.url == "sqlite+aiosqlite:////srv/callmon/calls.sqlite3"
    assert settings.store.batch_size == 50
    assert (settings.web.host, settings.web.port) == ("0.0.0.0", 9100)
    # No [directory] in the file: the built-in one.
    assert settings.directory == default_directory()


def test_file_named_by_the_environment(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(config_file))
    assert load_settings().ami.host == "pbx.file.example"


def test_environment_wins_over_the_file(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLMON_AMI__HOST", "pbx.env.example")
    monkeypatch.setenv("CALLMON_CHARTER__TRANSFER_LIMIT_SECONDS", "8.5")
    monkeypatch.setenv("CALLMON_WEB__PORT", "9200")
    monkeypatch.setenv("CALLMON_LOG_LEVEL", "WARNING")
    settings = load_settings(config_file)
    assert settings.ami.host == "pbx.env.example"
    assert settings.charter.transfer_limit_seconds == 8.5
    assert settings.web.port == 9200
    assert settings.log_level == "WARNING"
    # The rest of each section still comes from the file, not the defaults.
    assert settings.ami.port == 5039
    assert settings.ami.username == "monitor"
    assert settings.charter.max_rings_p1 == 3
    assert settings.web.host == "0.0.0.0"


def test_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLMON_AMI__HOST", "10.0.0.5")
    monkeypatch.setenv("CALLMON_AMI__PORT", "15038")
    monkeypatch.setenv("CALLMON_STORE__URL", "postgresql+asyncpg://callmon@db/callmon")
    monkeypatch.setenv("CALLMON_DIRECTORY__PUBLIC_ENDPOINTS", '["trunk-kt", "trunk-lg"]')
    settings = load_settings()
    assert (settings.ami.host, settings.ami.port) == ("10.0.0.5", 15038)
    assert settings.store.url == "postgresql+asyncpg://callmon@db/callmon"
    assert settings.directory.public_endpoints == ["trunk-kt", "trunk-lg"]


def test_bad_environment_value_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLMON_AMI__PORT", "five")
    with pytest.raises(ValidationError, match=r"ami\.port"):
        load_settings()


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "nope.toml")


def test_unknown_top_level_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('log_levle = "DEBUG"\n', encoding="utf-8")
    with pytest.raises(ValidationError, match="log_levle"):
        load_settings(path)


def test_unknown_key_in_a_section_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('[ami]\nhots = "pbx.example"\n', encoding="utf-8")
    with pytest.raises(ValidationError, match="hots"):
        load_settings(path)


def test_shipped_example_configuration_loads() -> None:
    settings = load_settings(ROOT / "call-monitor.example.toml")
    assert settings.ami.host == "pbx.example.local"
    assert settings.ami.secret_file == Path("/etc/call-monitor/ami.secret")
    assert settings.directory.public_endpoints == ["pstn"]
    assert settings.directory.staff["201"].department == "민원여권과"


# -- the secret -------------------------------------------------------------------------------


def assert_hidden(settings: Settings, secret: str) -> None:
    for text in (
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
        repr(settings.ami),
        str(settings.ami),
        settings.ami.model_dump_json(),
        repr(settings.ami.resolved_secret()),
        str(settings.ami.resolved_secret()),
        f"{settings.ami.resolved_secret()}",
    ):
        assert secret not in text


def test_secret_from_the_environment(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLMON_AMI__SECRET", SECRET)
    settings = load_settings(config_file)
    assert isinstance(settings.ami.secret, SecretStr)
    assert settings.ami.resolved_secret().get_secret_value() == SECRET
    assert_hidden(settings, SECRET)


def test_secret_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "ami.secret"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")  # the newline an editor adds
    config = tmp_path / "callmon.toml"
    config.write_text(f'[ami]\nhost = "pbx"\nsecret_file = "{secret_file}"\n', encoding="utf-8")
    settings = load_settings(config)
    assert settings.ami.secret is None
    assert settings.ami.resolved_secret().get_secret_value() == SECRET
    assert_hidden(settings, SECRET)

    # Named by the environment instead of the file: the same.
    monkeypatch.setenv("CALLMON_AMI__SECRET_FILE", str(secret_file))
    assert load_settings().ami.resolved_secret().get_secret_value() == SECRET


def test_secret_in_the_config_file_is_hidden_too(tmp_path: Path) -> None:
    config = tmp_path / "callmon.toml"
    config.write_text(f'[ami]\nhost = "pbx"\nsecret = "{SECRET}"\n', encoding="utf-8")
    settings = load_settings(config)
    assert settings.ami.resolved_secret().get_secret_value() == SECRET
    assert_hidden(settings, SECRET)


def test_secret_from_the_environment_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "ami.secret"
    secret_file.write_text("from-the-file", encoding="utf-8")
    monkeypatch.setenv("CALLMON_AMI__SECRET_FILE", str(secret_file))
    monkeypatch.setenv("CALLMON_AMI__SECRET", SECRET)
    assert load_settings().ami.resolved_secret().get_secret_value() == SECRET


def test_no_secret_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="CALLMON_AMI__SECRET"):
        load_settings().ami.resolved_secret()


def test_unreadable_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLMON_AMI__SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(OSError, match="missing"):
        load_settings().ami.resolved_secret()


# -- the built-in directory: the PBX of the recordings ---------------------------------------


def test_default_directory_is_the_recordings_pbx() -> None:
    directory = Settings().directory
    assert {ext: staff.department for ext, staff in directory.staff.items()} == {
        "201": "민원여권과",
        "202": "민원여권과",
        "203": "총무과",
        "204": "감사담당관",
    }
    assert {name: dept.direct_number for name, dept in directory.departments.items()} == {
        "민원여권과": "02-450-1435",
        "총무과": "02-450-7132",
        "감사담당관": "02-450-7083",
    }
    assert directory.public_endpoints == ["pstn"]
    assert directory.public_contexts == ["from-pstn"]
    # The ring group (600) and the queues (700, 710) serve 민원여권과.
    assert directory.groups == {"600": "민원여권과", "700": "민원여권과", "710": "민원여권과"}

    lookup = Directory(directory)
    assert lookup.department_of("203") == "총무과"
    assert lookup.department_of("999") is None


def test_a_staff_members_department_is_known_even_if_not_listed() -> None:
    directory = DirectorySettings(staff={"301": StaffEntry(name="Jung", department="세무과")})
    assert "세무과" in directory.departments
    assert directory.departments["세무과"].direct_number is None


def test_a_transaction_cap_below_the_batch_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "store.toml"
    path.write_text("[store]\nbatch_size = 500\nmax_batch_size = 100\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="max_batch_size"):
        load_settings(path)


# -- bounds: a bad number is refused, with its key -------------------------------------------

DAY = 86_400
# Waits, timeouts and intervals: 0 s would spin or give up at once.
POSITIVE = [
    "store.shutdown_write_seconds",
    "ami.connect_timeout_seconds",
    "ami.action_timeout_seconds",
    "ami.ping_interval_seconds",
    "ami.ping_timeout_seconds",
    "ami.reconnect_initial_seconds",
    "ami.reconnect_max_seconds",
    "charter.ring_on_seconds",  # the ring period divides
    "charter.ring_off_seconds",
    "charter.transfer_limit_seconds",
    "callbacks.due_working_seconds",
    "store.flush_interval_seconds",
    "mqtt.poll_seconds",
    "mqtt.timeout_seconds",
    "mqtt.reconnect_initial_seconds",
    "mqtt.reconnect_max_seconds",
    "web.session_hours",
]
# Counts that start at 1: ports, rings, calls per write.
FROM_ONE = [
    "ami.port",
    "web.writes_per_minute",
    "ami.max_calls_in_progress",
    "charter.max_rings_p1",
    "charter.apology_from_ring",
    "store.batch_size",
    "store.max_batch_size",
    "web.port",
    "mqtt.port",
    "checklist.monthly_target",
]
# Zero means something: no reminder, every missed call owes a callback.
FROM_ZERO = [
    "callbacks.reminder_before_working_seconds",
    "callbacks.min_ring_seconds_for_obligation",
]
# The largest value each takes; past it, only a typo.
LARGEST = {
    **dict.fromkeys(POSITIVE, DAY),
    "charter.ring_on_seconds": 60,
    "charter.ring_off_seconds": 60,
    "web.session_hours": 30 * 24,  # a month of hours
    "callbacks.due_working_seconds": 30 * DAY,
    "callbacks.reminder_before_working_seconds": 30 * DAY,
    "callbacks.min_ring_seconds_for_obligation": DAY,
    "ami.port": 65535,
    "web.port": 65535,
    "mqtt.port": 65535,
    "charter.max_rings_p1": 100,
    "charter.apology_from_ring": 100,
    "store.batch_size": 100_000,
    "store.max_batch_size": 100_000,
    "checklist.monthly_target": 100,
    "ami.max_calls_in_progress": 1_000_000,
    "web.writes_per_minute": 100_000,
}


def numeric_fields() -> list[tuple[str, type]]:
    """Every int or float setting of every section, as ``section.key``."""
    found = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            found += [
                (f"{section}.{name}", inner.annotation)
                for name, inner in model.model_fields.items()
                if inner.annotation in (int, float)
            ]
    return found


Refusals = Callable[[str, dict[str, object], str], list[str]]


@pytest.fixture
def refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Refusals:
    """Load a section's ``values`` from a TOML file or the environment; the keys refused."""

    def refused(section: str, values: dict[str, object], source: str) -> list[str]:
        path = None
        if source == "toml":
            path = tmp_path / "bad.toml"
            lines = "".join(f"{name} = {value}\n" for name, value in values.items())
            path.write_text(f"[{section}]\n{lines}", encoding="utf-8")
        else:
            for name, value in values.items():
                monkeypatch.setenv(f"CALLMON_{section.upper()}__{name.upper()}", str(value))
        try:
            load_settings(path)
        except ValidationError as exc:
            return [".".join(map(str, error["loc"])) for error in exc.errors()]
        return []

    return refused


def refused_keys(refusals: Refusals, key: str, value: object, source: str) -> list[str]:
    section, name = key.split(".")
    return refusals(section, {name: value}, source)


SOURCES = ["toml", "env"]


@pytest.mark.parametrize(("key", "kind"), numeric_fields())
def test_every_number_is_bounded_here(key: str, kind: type) -> None:
    """A new numeric setting needs its bounds, and a line in the lists above."""
    assert sum(key in family for family in (POSITIVE, FROM_ONE, FROM_ZERO)) == 1, key
    assert key in LARGEST, key
    assert (kind is int) == (key in FROM_ONE), key


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("value", [0, -1])
@pytest.mark.parametrize("key", POSITIVE)
def test_a_wait_of_zero_or_less_is_refused(
    key: str, value: int, source: str, refusals: Refusals
) -> None:
    assert refused_keys(refusals, key, value, source) == [key]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("value", [0, -1])
@pytest.mark.parametrize("key", FROM_ONE)
def test_a_count_below_one_is_refused(
    key: str, value: int, source: str, refusals: Refusals
) -> None:
    assert refused_keys(refusals, key, value, source) == [key]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("key", FROM_ZERO)
def test_zero_is_taken_where_it_means_something(key: str, source: str, refusals: Refusals) -> None:
    assert refused_keys(refusals, key, 0, source) == []
    assert refused_keys(refusals, key, -1, source) == [key]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("key", sorted(LARGEST))
def test_a_number_past_its_largest_is_refused(key: str, source: str, refusals: Refusals) -> None:
    assert refused_keys(refusals, key, LARGEST[key] + 1, source) == [key]


@pytest.mark.parametrize("value", ["inf", "nan"])
@pytest.mark.parametrize("key", [key for key, kind in numeric_fields() if kind is float])
def test_an_endless_number_is_refused(key: str, value: str, refusals: Refusals) -> None:
    assert refused_keys(refusals, key, value, "toml") == [key]  # TOML's own inf and nan


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(
    ("section", "values", "refused"),
    [
        (
            "ami",
            {"reconnect_initial_seconds": 5, "reconnect_max_seconds": 2},
            "ami.reconnect_max_seconds",
        ),
        ("ami", {"reconnect_initial_seconds": 60}, "ami.reconnect_max_seconds"),  # default cap
        (
            "mqtt",
            {"reconnect_initial_seconds": 5, "reconnect_max_seconds": 2},
            "mqtt.reconnect_max_seconds",
        ),
        ("store", {"batch_size": 500, "max_batch_size": 100}, "store.max_batch_size"),
        (
            "callbacks",
            {"due_working_seconds": 600, "reminder_before_working_seconds": 900},
            "callbacks.reminder_before_working_seconds",
        ),
    ],
)
def test_a_cap_below_what_it_caps_is_refused(
    section: str, values: dict[str, object], refused: str, source: str, refusals: Refusals
) -> None:
    assert refusals(section, values, source) == [refused]


def test_equal_bounds_are_taken() -> None:
    settings = Settings.model_validate(
        {
            "ami": {"reconnect_initial_seconds": 2, "reconnect_max_seconds": 2},
            "store": {"batch_size": 100, "max_batch_size": 100},
            "callbacks": {"due_working_seconds": 600, "reminder_before_working_seconds": 600},
        }
    )
    assert settings.ami.reconnect_max_seconds == 2
    assert settings.store.max_batch_size == 100
    assert settings.callbacks.reminder_before_working_seconds == 600


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("/monitor/{caller}.wav", "unknown field 'caller'"),
        ("/monitor/{}.wav", "unknown field '{}'"),
        ("/monitor/{linkedid.wav", "not a format string"),
        ("ftp://pbx/{linkedid}.wav", "http or https"),
    ],
)
def test_a_bad_recording_template_is_named_in_one_line(
    tmp_path: Path, template: str, problem: str
) -> None:
    path = tmp_path / "call-monitor.toml"
    path.write_text(f'[web]\nrecording_template = "{template}"\n', encoding="utf-8")
    with pytest.raises(ValidationError) as raised:
        load_settings(path)
    line = explain(raised.value)
    assert line.startswith("web.recording_template: ")
    assert problem in line
    assert "\n" not in line


def test_a_recording_template_with_the_known_fields_loads(tmp_path: Path) -> None:
    template = "/monitor/{date:%Y/%m/%d}/{uniqueid}-{linkedid}-{extension}-{department}.wav"
    path = tmp_path / "call-monitor.toml"
    path.write_text(f'[web]\nrecording_template = "{template}"\n', encoding="utf-8")
    assert load_settings(path).web.recording_template == template
