"""Configuration: a TOML file, every setting also by environment variable.

Environment variables are ``CALLMON_<SECTION>__<KEY>`` (for example
``CALLMON_AMI__HOST=pbx.example``, ``CALLMON_STORE__URL=postgresql+asyncpg://...``) and win
over the file. The AMI secret comes from ``CALLMON_AMI__SECRET`` or from the file named by
``ami.secret_file``; it is a ``SecretStr`` so it is never printed or logged.

Every number is bounded: a value that would break the daemon (a ring cadence of 0 s divides
by zero, a reconnect window of 0 s spins) or can only be a typo (a timeout of a week) is
refused at load time, with the key named, as is a cap below the value it caps.
"""

from __future__ import annotations

import difflib
import operator
import os
import string
import tomllib
from collections.abc import Callable
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

import platformdirs
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

CONFIG_ENV = "CALLMON_CONFIG"

DAY = 86_400.0

# A wait, a timeout or an interval: 0 s would spin or give up at once; past a day it is a
# typo (milliseconds written as seconds, say).
Seconds = Annotated[float, Field(gt=0, le=DAY)]
Port = Annotated[int, Field(ge=1, le=65535)]
# A count of rings of the charter: they are counted from 1; a hundred rings is 5 minutes.
Rings = Annotated[int, Field(ge=1, le=100)]
# Calls per write: a million in one transaction is no batch but a stall.
BatchSize = Annotated[int, Field(ge=1, le=100_000)]
# Working time a callback may take: 30 days of it is more than any charter gives.
WorkingSeconds = Annotated[float, Field(ge=0, le=30 * DAY)]


def _against(other: str, allowed: Callable[[float, float], bool], rule: str) -> AfterValidator:
    """A setting checked against ``other``, declared before it in the same section."""

    def check(value: float, info: ValidationInfo) -> float:
        bound = info.data.get(other)  # missing when ``other`` was refused itself
        if bound is not None and not allowed(value, bound):
            raise PydanticCustomError(
                "setting_order",
                "must be {rule} {other} ({bound})",
                {"rule": rule, "other": other, "bound": bound},
            )
        return value

    return AfterValidator(check)


class _Section(BaseModel):
    # A misspelt key ([ami] hots = ...) is an error, not a silently ignored line; so is an
    # infinite or NaN number (TOML has inf and nan), which no bound below would catch.
    # Defaults are validated too: a cap left at its default still has to hold what it caps.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)


class AmiSettings(_Section):
    """Where the PBX is. With no ``host``, ``run`` refuses and ``demo`` plays recordings."""

    host: str | None = None
    port: Port = 5038
    username: str = "callmon"
    secret: SecretStr | None = None
    secret_file: Path | None = None
    connect_timeout_seconds: Seconds = 5.0
    action_timeout_seconds: Seconds = 10.0
    ping_interval_seconds: Seconds = 20.0
    ping_timeout_seconds: Seconds = 5.0
    reconnect_initial_seconds: Seconds = 0.5
    reconnect_max_seconds: Annotated[
        Seconds, _against("reconnect_initial_seconds", operator.ge, "at least")
    ] = 30.0
    # Calls followed at once; past it the oldest is closed incomplete (counted): a bound on
    # memory when calls never end (lost hang-ups, a flood). An office's peak is ~100s.
    max_calls_in_progress: int = Field(default=10_000, ge=1, le=1_000_000)
    # read=all streams are mostly these; dropping them by their first line saves work.
    ignore_events: list[str] = Field(
        default_factory=lambda: ["VarSet", "Newexten", "Cdr", "RTCPSent", "RTCPReceived"]
    )

    def resolved_secret(self) -> SecretStr:
        if self.secret is not None:
            return self.secret
        if self.secret_file is not None:
            return SecretStr(self.secret_file.read_text(encoding="utf-8").strip())
        raise ValueError("no AMI secret: set CALLMON_AMI__SECRET or ami.secret_file")


class CharterSettings(_Section):
    """Thresholds of the charter clauses; the defaults are the charter's own."""

    definitions_version: str = "2026.2"
    # Korean ring cadence: 1 s on, 2 s off. Rings are counted by the period (a zero one
    # divides by zero); a minute-long ring is no cadence.
    ring_on_seconds: float = Field(default=1.0, gt=0, le=60)
    ring_off_seconds: float = Field(default=2.0, gt=0, le=60)
    max_rings_p1: Rings = 2  # P1: answered within 2 rings
    apology_from_ring: Rings = 3  # P2: apology expected when answered on ring 3 or later
    transfer_limit_seconds: Seconds = 10.0  # P4 / P5
    count_internal_calls: bool = False

    @property
    def ring_period_seconds(self) -> float:
        return self.ring_on_seconds + self.ring_off_seconds


class StaffEntry(_Section):
    name: str
    department: str


class DepartmentEntry(_Section):
    direct_number: str | None = None


class DirectorySettings(_Section):
    """Who is who: extensions to staff and departments, and which side is the public."""

    staff: dict[str, StaffEntry] = Field(default_factory=dict)
    departments: dict[str, DepartmentEntry] = Field(default_factory=dict)
    public_endpoints: list[str] = Field(default_factory=list)
    public_contexts: list[str] = Field(default_factory=list)
    # Dialled numbers that ring a group or queue, owned by a department (missed calls).
    groups: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _departments_known(self) -> DirectorySettings:
        for staff in self.staff.values():
            self.departments.setdefault(staff.department, DepartmentEntry())
        return self


def default_directory() -> DirectorySettings:
    """The PBX of the shipped recordings (used by ``demo`` and by ``replay`` without config)."""
    return DirectorySettings(
        staff={
            "201": StaffEntry(name="Kim Staff", department="민원여권과"),
            "202": StaffEntry(name="Lee Staff", department="민원여권과"),
            "203": StaffEntry(name="Park Staff", department="총무과"),
            "204": StaffEntry(name="Choi Staff", department="감사담당관"),
        },
        departments={
            "민원여권과": DepartmentEntry(direct_number="02-450-1435"),
            "총무과": DepartmentEntry(direct_number="02-450-7132"),
            "감사담당관": DepartmentEntry(direct_number="02-450-7083"),
        },
        public_endpoints=["pstn"],
        public_contexts=["from-pstn"],
        groups={"600": "민원여권과", "700": "민원여권과", "710": "민원여권과"},
    )


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class TimeSpan(_Section):
    """A span of wall-clock time within one day, Asia/Seoul: ``start`` <= t < ``end``."""

    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> TimeSpan:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("working-hours times are Asia/Seoul wall-clock times: no offset")
        if self.start >= self.end:
            raise ValueError(f"time span {self.start}-{self.end}: start must be before end")
        return self


def _office_hours() -> TimeSpan:
    return TimeSpan(start=time(9), end=time(18))


class WorkingHoursSettings(_Section):
    """근무시간: when the charter's "1 working hour" runs. Korean public holidays (substitute
    holidays and election days included) always close the office unless in ``extra_open``."""

    timezone: Literal["Asia/Seoul"] = "Asia/Seoul"
    # Days missing here are closed (Saturday and Sunday by default).
    days: dict[Weekday, TimeSpan] = Field(
        default_factory=lambda: {day: _office_hours() for day in WEEKDAYS[:5]}
    )
    lunch: TimeSpan | None = None  # e.g. 12:00-13:00 if the clock stops over lunch
    extra_closed: list[date] = Field(default_factory=list)  # 임시공휴일, office closures
    extra_open: list[date] = Field(default_factory=list)  # open despite a weekend/holiday
    # Hours of an ``extra_open`` date whose weekday has none in ``days`` (a Saturday).
    extra_open_hours: TimeSpan = Field(default_factory=_office_hours)

    @model_validator(mode="after")
    def _no_contradiction(self) -> WorkingHoursSettings:
        both = sorted(set(self.extra_closed) & set(self.extra_open))
        if both:
            raise ValueError(f"dates both extra_closed and extra_open: {both}")
        return self


class CallbackSettings(_Section):
    """P6 / V4: a missed customer call (or a colleague's memo) owes a callback."""

    due_working_seconds: Annotated[WorkingSeconds, Field(gt=0)] = 3600.0  # 1 working hour
    # 0: no reminder; more than the deadline would remind before the call was missed.
    reminder_before_working_seconds: Annotated[
        WorkingSeconds, _against("due_working_seconds", operator.le, "at most")
    ] = 900.0
    # Inbound calls that rang less than this create nothing (misdials); busy never rings.
    min_ring_seconds_for_obligation: float = Field(default=0.0, ge=0, le=DAY)
    count_internal_calls: bool = False


def default_store_url(name: str = "call-monitor.sqlite3") -> str:
    """SQLite in the user's data directory (``$XDG_DATA_HOME/call-monitor``, by default
    ``~/.local/share/call-monitor``): one fixed place whatever the working directory, which
    ``run`` prints at start. A relative path in ``store.url`` is relative to the working
    directory, as SQLAlchemy reads it."""
    directory = Path(platformdirs.user_data_dir("call-monitor", appauthor=False))
    return f"sqlite+aiosqlite:///{directory / name}"


class StoreSettings(_Section):
    url: str = Field(default_factory=default_store_url)
    # A write starts once this many calls are queued, or every flush interval.
    batch_size: BatchSize = 200
    flush_interval_seconds: Seconds = 1.0
    # A write takes everything queued, up to this many calls per transaction: a store that
    # fell behind catches up in larger transactions (per call, fewer round trips).
    max_batch_size: Annotated[BatchSize, _against("batch_size", operator.ge, "at least")] = 2000
    # At a stop, how long the last writes are retried before what is left goes to the spool
    # file (written at the next start); by default beside a SQLite store, else in the data
    # directory.
    shutdown_write_seconds: Seconds = 10.0
    # false: refuse to start on a store that holds no database (a deleted SQLite file would
    # otherwise be replaced by an empty one, the history and open callbacks gone unsaid).
    create_if_missing: bool = True
    spool_file: Path | None = None

    def resolved_spool_file(self) -> Path:
        if self.spool_file is not None:
            return self.spool_file
        # ``sqlite+driver:///relative`` or ``sqlite:////absolute`` (read without SQLAlchemy,
        # which the pure core that reads this module never imports).
        scheme, _, rest = self.url.partition("://")
        database = rest.removeprefix("/").split("?", 1)[0]
        if scheme.split("+", 1)[0] == "sqlite" and database not in ("", ":memory:"):
            return Path(f"{database}.spool")
        return Path(platformdirs.user_data_dir("call-monitor", appauthor=False)) / "store.spool"


class MqttSettings(_Section):
    """Where callback alerts go (MQTT). With no ``host`` nothing is published: the alerts
    stay in the store's ``outbox`` table and go out once a broker is configured."""

    host: str | None = None
    port: Port = 1883
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca_file: Path | None = None  # with ``tls``: the broker's CA; the system's CAs otherwise
    client_id: str = "call-monitor"  # one per daemon: the broker drops a duplicate's session
    topic_prefix: str = "callmon/v1"
    poll_seconds: Seconds = 5.0  # outbox re-read when nobody wakes us
    timeout_seconds: Seconds = 10.0  # connect and each PUBACK
    reconnect_initial_seconds: Seconds = 0.5
    reconnect_max_seconds: Annotated[
        Seconds, _against("reconnect_initial_seconds", operator.ge, "at least")
    ] = 30.0

    @model_validator(mode="after")
    def _topic_prefix_is_a_topic(self) -> MqttSettings:
        # A wildcard or an empty level here would publish to a topic nobody expects (or be
        # refused by the broker on every message); '$' topics belong to the broker.
        levels = self.topic_prefix.split("/")
        bad = {"+", "#", "\0"} & set(self.topic_prefix)
        if bad or "" in levels or self.topic_prefix.startswith("$"):
            raise ValueError(
                f"mqtt.topic_prefix {self.topic_prefix!r}: levels separated by single '/', "
                "no '+', '#', NUL or leading '$'"
            )
        return self


class ChecklistSettings(_Section):
    """The supervisors' checklist: which form (the shipped one by default; the file is
    checked at start, its problems named under ``checklist.form``) and how many scored
    calls a month each staff member gets (sampling's target)."""

    form: Path | None = None
    monthly_target: int = Field(default=4, ge=1, le=100)


RECORDING_FIELDS = frozenset({"linkedid", "uniqueid", "date", "extension", "department"})


def recording_template_problem(template: str) -> str | None:
    """What is wrong with a recording template (one line), or ``None``."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        return f"not a format string: {exc}"
    unknown = sorted(name or "{}" for name in names if name not in RECORDING_FIELDS)
    if unknown:
        return f"unknown field {unknown[0]!r}: use {', '.join(sorted(RECORDING_FIELDS))}"
    if "://" in template and urlsplit(template).scheme not in ("http", "https"):
        return "a URL template must be http or https"
    return None


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: Port = 8089
    # The Host names the pages and the API answer to (a DNS-rebinding page's evil.example is
    # refused); empty: localhost, 127.0.0.1, [::1] and ``host``.
    allowed_hosts: list[str] = Field(default_factory=list)
    # Signs the session cookies; unset: made once into ``web-secret`` beside the SQLite
    # store (or in the data directory), read from there at every start.
    session_secret: SecretStr | None = None
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    secure_cookies: bool = False  # behind TLS: cookies only over HTTPS
    metrics_token: SecretStr | None = None  # set: /metrics wants "Authorization: Bearer" it
    # Single sign-on: the login name in this header, set by a reverse proxy that authenticated
    # the person; believed only from ``trusted_proxies`` (off when unset).
    trusted_user_header: str | None = None
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])

    # Memos and cancels one client (address) may post per minute; past it 429.
    writes_per_minute: int = Field(default=60, ge=1, le=100_000)
    # Where a call's recording is (MixMonitor): a path the app serves, or a URL, with the
    # fields of RECORDING_FIELDS (``{linkedid}``, ``{date:%Y/%m/%d}`` ...); unset: none.
    recording_template: str | None = None

    @field_validator("recording_template")
    @classmethod
    def _recording_fields(cls, template: str | None) -> str | None:
        problem = None if template is None else recording_template_problem(template)
        if problem is not None:
            raise ValueError(problem)
        return template

    def hosts(self) -> set[str]:
        """The Host names served, lower case, without ports."""
        names = self.allowed_hosts or ["localhost", "127.0.0.1", "::1", self.host]
        return {name.lower().strip("[]") for name in names}


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CALLMON_", env_nested_delimiter="__", extra="forbid"
    )

    ami: AmiSettings = Field(default_factory=AmiSettings)
    charter: CharterSettings = Field(default_factory=CharterSettings)
    directory: DirectorySettings = Field(default_factory=default_directory)
    store: StoreSettings = Field(default_factory=StoreSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    working_hours: WorkingHoursSettings = Field(default_factory=WorkingHoursSettings)
    callbacks: CallbackSettings = Field(default_factory=CallbackSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    checklist: ChecklistSettings = Field(default_factory=ChecklistSettings)
    log_level: LogLevel = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file, which arrives as init arguments.
        return (env_settings, init_settings)


def load_settings(config_file: Path | None = None) -> Settings:
    """Load settings from ``config_file`` (or ``$CALLMON_CONFIG``), then the environment."""
    path = config_file or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    values: dict[str, Any] = {}
    if path is not None:
        with path.open("rb") as fh:
            values = tomllib.load(fh)
    return Settings(**values)


def explain(exc: ValidationError) -> str:
    """A validation error in words a person reads, one ``key: problem`` per error, without
    the values given: pydantic's own text quotes each input, and a secret put in the wrong
    place (a top-level ``secret = ...``, a misspelt key) would be printed and logged.

    An unknown key says so and names the nearest known one: ``ami.ping_intervall_seconds:
    unknown key; did you mean ping_interval_seconds?``
    """
    return "; ".join(
        _problem(error) for error in exc.errors(include_url=False, include_input=False)
    )


def _problem(error: ErrorDetails) -> str:
    location = [str(part) for part in error["loc"]]
    key = ".".join(location) or "settings"
    if error["type"] != "extra_forbidden":
        return f"{key}: {error['msg']}"
    known = _known_keys(location[:-1])
    nearest = difflib.get_close_matches(location[-1], known, n=1) if location else []
    hint = f"; did you mean {nearest[0]}?" if nearest else ""
    return f"{key}: unknown key{hint}"


def _known_keys(section: list[str]) -> list[str]:
    """The keys valid under ``section`` (a path of field names and table keys)."""
    model: type[BaseModel] = Settings
    names = iter(section)
    for name in names:
        field = model.model_fields.get(name)
        annotation = None if field is None else field.annotation
        if get_origin(annotation) is dict:  # a table of named entries: skip the entry's name
            annotation = get_args(annotation)[1]
            if next(names, None) is None:
                return []
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
