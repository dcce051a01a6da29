"""What in an Asterisk configuration is wrong for the monitor. Pure: parsed files and the
monitor's settings in, problems (each with its file and line) out, in Korean or English.

The AMI classes below were read off Asterisk's source (main/manager.c ``perms[]`` and
``ast_manager_register_xml_core``; ``manager_event(EVENT_FLAG_...)`` in
main/manager_channels.c, main/manager_bridges.c, main/stasis_bridges.c, main/pickup.c,
cel/cel_manager.c). The events needed are the correlator's own ``EVENTS_USED``: a handler
added there without a class here fails at import, not silently in an office.
"""

from __future__ import annotations

import ipaddress
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from call_monitor.ami.stream import RESYNC_ACTION
from call_monitor.calls.correlator import EVENTS_USED
from call_monitor.config import Settings
from call_monitor.pbxconf.syntax import ConfFile, Section, Setting, Where

MANAGER = "manager.conf"
INDICATIONS = "indications.conf"
EXTENSIONS = "extensions.conf"
PJSIP = "pjsip.conf"
FILES = (MANAGER, INDICATIONS, EXTENSIONS, PJSIP)

# main/manager.c perms[], in Asterisk's order ("all" and "none" are not classes).
AMI_CLASSES = (
    "system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
    "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security",
    "message",
)  # fmt: skip
# The class each event the correlator reads is sent under.
EVENT_CLASS: Mapping[str, str] = {
    "Newchannel": "call",
    "Newstate": "call",
    "DialBegin": "call",
    "DialEnd": "call",
    "HangupRequest": "call",
    "SoftHangupRequest": "call",
    "Hangup": "call",
    "Shutdown": "system",
    "BridgeEnter": "call",
    "BridgeLeave": "call",
    "Hold": "call",
    "Unhold": "call",
    "BlindTransfer": "call",
    "AttendedTransfer": "call",
    "Pickup": "call",
    "CEL": "call",
    "MessageWaiting": "call",
    "ParkedCall": "call",
    "UnParkedCall": "call",
    "ParkedCallTimeOut": "call",
    "ConfbridgeJoin": "call",
    "ConfbridgeEnd": "call",
    "QueueCallerJoin": "agent",
    "QueueCallerLeave": "agent",
    "QueueCallerAbandon": "agent",
    "DTMFBegin": "dtmf",
    "DTMFEnd": "dtmf",
}
# Welcome, not needed: without ``system`` a PBX restart is seen as a link gap (calls closed
# incomplete) instead of as a restart.
READ_OPTIONAL = frozenset({"Shutdown"})
READ_NEEDED = frozenset(EVENT_CLASS[event] for event in EVENTS_USED - READ_OPTIONAL)
READ_WELCOME = frozenset(EVENT_CLASS[event] for event in READ_OPTIONAL)
# The actions the AMI client sends, and the write classes any one of which allows each
# (Login, Logoff and Ping are registered with no class).
ACTION_CLASSES: Mapping[str, frozenset[str]] = {
    "Login": frozenset(),
    "Ping": frozenset(),
    "Logoff": frozenset(),
    RESYNC_ACTION: frozenset({"system", "reporting"}),
}
WRITE_NEEDED = frozenset({"reporting"})  # of system|reporting, the one that changes nothing
WRITE_NEVER = ("originate", "system", "config", "command")
# Addresses no office network uses (RFC 5737 / RFC 3849): "the world" for the ACL check.
WORLD = (ipaddress.ip_address("203.0.113.7"), ipaddress.ip_address("2001:db8::7"))
_POSIX_CLASSES = {"[:space:]": r"\s", "[:digit:]": r"\d", "[:alpha:]": "a-zA-Z",
                  "[:alnum:]": "a-zA-Z0-9", "[:upper:]": "A-Z", "[:lower:]": "a-z"}  # fmt: skip
_DIAL = re.compile(r"^\s*dial\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)
_ONE_VARIABLE = re.compile(r"^\$\{(\w+)\}$")


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    file: str
    where: Where | None = None  # None: the file as a whole
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def sort_key(self) -> tuple[str, int, str]:
        return (self.file, self.where.line if self.where else 0, self.code)


@dataclass(frozen=True, slots=True)
class PbxConf:
    """The files of one Asterisk configuration directory, by name; absent ones missing."""

    files: Mapping[str, ConfFile]


def check(conf: PbxConf, settings: Settings) -> list[Problem]:
    """Every problem found, in file and line order."""
    problems: list[Problem] = []
    for parsed in conf.files.values():
        problems.extend(_unreadable(parsed))
    problems.extend(_manager(conf.files.get(MANAGER), settings.ami.username))
    problems.extend(_tones(conf.files.get(INDICATIONS), conf.files.get(PJSIP), settings))
    extensions = conf.files.get(EXTENSIONS)
    if extensions is not None:
        problems.extend(_dials(extensions, frozenset(settings.directory.public_endpoints)))
    return sorted(problems, key=lambda p: p.sort_key)


def _unreadable(conf: ConfFile) -> Iterable[Problem]:
    for bad in conf.unreadable:
        yield _at(bad.where, "line_unreadable", reason=bad.reason, text=bad.text)
    for include in conf.missing_includes:
        yield _at(include.where, "include_missing", target=include.target)


def _at(where: Where, code: str, **params: str) -> Problem:
    return Problem(code, where.file, where, params)


def _section_or_file(section: Section | None, file: str, code: str, **params: str) -> Problem:
    return Problem(code, file, section.where if section else None, params)


# -- manager.conf ------------------------------------------------------------------------


def _manager(conf: ConfFile | None, username: str) -> Iterable[Problem]:
    if conf is None:
        yield Problem("no_manager_conf", MANAGER)
        return
    general = conf.first("general")
    enabled = _setting(general, "enabled")
    if not _true(enabled):
        yield _setting_or_section(enabled, general, "ami_disabled")
    stamps = _setting(general, "timestampevents")
    if not _true(stamps):
        yield _setting_or_section(stamps, general, "no_timestamps")
    user = _merged(conf.named(username))
    if user is None:
        yield Problem("no_user", MANAGER, params={"user": username})
        return
    yield from _exposure(general, user)
    yield from _read(user)
    yield from _write(user)
    yield from _filters(user)


def _setting(section: Section | None, key: str) -> Setting | None:
    return section.last(key) if section else None


def _setting_or_section(setting: Setting | None, section: Section | None, code: str) -> Problem:
    if setting is not None:
        return _at(setting.where, code, value=setting.value)
    return _section_or_file(section, MANAGER, code, value="")


def _true(setting: Setting | None) -> bool:
    """Asterisk's ast_true."""
    return setting is not None and setting.value.lower() in ("yes", "true", "y", "t", "1", "on")


def _merged(sections: list[Section]) -> Section | None:
    """One user from its sections: Asterisk applies same-named sections in order."""
    if not sections:
        return None
    user = Section(sections[0].name, sections[0].where)
    for section in sections:
        user.settings.extend(section.settings)
    return user


def _exposure(general: Section | None, user: Section) -> Iterable[Problem]:
    """AMI on every address, and the monitor's user open to any of them."""
    bind = _setting(general, "bindaddr")
    address = _address(bind.value if bind else "[::]")
    if address is None or not address.is_unspecified:
        return
    rules = [s for s in user.settings if s.key in ("permit", "deny", "acl")]
    if any(r.key == "acl" for r in rules):
        return  # a named ACL from acl.conf: trusted, not evaluated here
    reachable = [probe for probe in WORLD if address.version == 6 or probe.version == 4]
    try:
        open_to_world = any(_acl_allows(rules, probe) for probe in reachable)
    except _BadRule as bad:
        yield _at(bad.rule.where, "acl_invalid", user=user.name, value=bad.rule.value)
        return
    if open_to_world:
        shown = bind.value if bind else "[::]"
        params = {"address": shown, "user": user.name}
        yield (
            _at(bind.where, "world_open", **params)
            if bind
            else _section_or_file(general, MANAGER, "world_open", **params)
        )


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``127.0.0.1``, ``0.0.0.0:5038``, ``::``, ``[::]:5038``; None for what Asterisk would
    refuse (it warns and keeps its default)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class _BadRule(ValueError):
    def __init__(self, rule: Setting) -> None:
        super().__init__(rule.value)
        self.rule = rule


def _acl_allows(
    rules: list[Setting], address: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> bool:
    """main/acl.c ast_apply_ha: allowed unless a rule matches; the last matching rule wins."""
    allowed = True
    for rule in rules:
        for item in rule.value.split(","):
            text = item.strip()
            negated = text.startswith("!")
            try:
                network = ipaddress.ip_network(text.lstrip("!"), strict=False)
            except ValueError:
                raise _BadRule(rule) from None
            if network.version == address.version and address in network:
                allowed = (rule.key == "permit") != negated
    return allowed


def granted(value: str) -> tuple[frozenset[str], list[str]]:
    """The classes a ``read``/``write`` value grants, and its words Asterisk does not know.

    main/manager.c ast_instring, quirks and all: every word but the last matches a class it
    is a prefix of (``c,dtmf`` grants call, cc, cdr, command, config; an empty word grants
    everything), the last must be exact; nothing is trimmed (``call, dtmf`` grants call).
    """
    words = value.split(",")
    labels = (*AMI_CLASSES, "all")
    found: set[str] = set()
    for label in labels:
        if any(label.startswith(w) for w in words[:-1]) or label == words[-1]:
            found.add(label)
    classes = frozenset(AMI_CLASSES) if "all" in found else frozenset(found)
    unknown = [w for w in words if w and w not in labels and w != "none"]
    return classes, unknown


def _classes(user: Section, key: str) -> tuple[Setting | None, frozenset[str], list[Problem]]:
    setting = user.last(key)
    if setting is None:
        return None, frozenset(), []
    classes, unknown = granted(setting.value)
    problems = [
        _at(setting.where, "unknown_class", user=user.name, key=key, token=word) for word in unknown
    ]
    return setting, classes, problems


def _read(user: Section) -> Iterable[Problem]:
    setting, classes, problems = _classes(user, "read")
    yield from problems
    missing = READ_NEEDED - classes
    extra = classes - READ_NEEDED - READ_WELCOME
    where_user = {"user": user.name}
    if missing:
        events = sorted(e for e in EVENTS_USED if EVENT_CLASS[e] in missing)
        params = {**where_user, "classes": _list(missing), "events": ", ".join(events)}
        yield _at(setting.where if setting else user.where, "read_missing", **params)
    if extra and setting is not None:
        yield _at(
            setting.where,
            "read_extra",
            **where_user,
            classes=_list(extra),
            needed=_list(READ_NEEDED),
        )


def _write(user: Section) -> Iterable[Problem]:
    setting, classes, problems = _classes(user, "write")
    yield from problems
    where = setting.where if setting else user.where
    for action, allowing in ACTION_CLASSES.items():
        if allowing and not classes & allowing:
            yield _at(where, "write_missing", user=user.name, action=action, needed=_list(allowing))
    dangerous = [c for c in WRITE_NEVER if c in classes]
    if dangerous:
        yield _at(where, "write_dangerous", user=user.name, classes=", ".join(dangerous))
    extra = classes - WRITE_NEEDED - set(WRITE_NEVER)
    if extra and not dangerous:  # one line per write: the dangerous ones say it already
        yield _at(where, "write_extra", user=user.name, classes=_list(extra))


def _list(classes: Iterable[str]) -> str:
    return ",".join(c for c in AMI_CLASSES if c in set(classes))


# -- event filters -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Filter:
    setting: Setting
    exclude: bool
    name: str | None  # name(...): only events of that name
    header: bool  # header(...): looks at one header's value, unknown here
    method: str  # none | regex | exact | starts_with | ends_with | contains
    pattern: re.Pattern[str] | None  # a regex over the whole event, if one


def _filters(user: Section) -> Iterable[Problem]:
    """Filters on the monitor's user that drop events it reads. Judged on the event's name
    (``Event: Hangup``); a filter on another header is given the benefit of the doubt."""
    filters = [_filter(s) for s in user.settings if s.key.startswith("eventfilter")]
    includes = [f for f in filters if not f.exclude]
    if includes:
        passed = {e for e in EVENTS_USED if any(_may_let_through(f, e) for f in includes)}
        if dropped := sorted(EVENTS_USED - passed):
            where = includes[0].setting.where
            yield _at(where, "filter_drops", user=user.name, events=", ".join(dropped))
    for rule in filters:
        dropped = sorted(e for e in EVENTS_USED if rule.exclude and _surely_drops(rule, e))
        if dropped:
            where = rule.setting.where
            yield _at(where, "filter_drops", user=user.name, events=", ".join(dropped))


def _filter(setting: Setting) -> _Filter:
    """main/manager.c manager_add_filter: ``eventfilter = [!]regex`` (legacy) or
    ``eventfilter(action(..),name(..),header(..),method(..)) = value``."""
    criteria = setting.name[len("eventfilter") :].strip()
    value = setting.value
    if not criteria:
        exclude = value.startswith("!")
        return _Filter(setting, exclude, None, False, "regex", _regex(value.removeprefix("!")))
    options = dict(re.findall(r"(\w+)\(([^()]*)\)", criteria))
    method = options.get("method", "none")
    exclude = options.get("action") == "exclude" or value.startswith("!")
    pattern = _regex(value.removeprefix("!")) if method == "regex" else None
    return _Filter(setting, exclude, options.get("name"), "header" in options, method, pattern)


def _regex(pattern: str) -> re.Pattern[str] | None:
    """A POSIX extended regex as Python reads it, or None if it cannot be."""
    for posix, python in _POSIX_CLASSES.items():
        pattern = pattern.replace(posix, python)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return re.compile(pattern)
        except (re.error, FutureWarning):
            return None


def _matches_event_line(rule: _Filter, event: str) -> bool | None:
    """Whether the rule matches an event of that name, judged on its name alone (None:
    it depends on what else the event says)."""
    if rule.name is not None and rule.name != event:
        return False
    if rule.header:
        return None
    if rule.method == "none":
        return True
    if rule.pattern is None:
        return None
    return bool(rule.pattern.search(f"Event: {event}\r\n"))


def _may_let_through(rule: _Filter, event: str) -> bool:
    return _matches_event_line(rule, event) is not False


def _surely_drops(rule: _Filter, event: str) -> bool:
    return _matches_event_line(rule, event) is True


# -- tone zones ----------------------------------------------------------------------------


def _tones(
    indications: ConfFile | None, pjsip: ConfFile | None, settings: Settings
) -> Iterable[Problem]:
    if indications is None:
        yield Problem("no_indications", INDICATIONS)
        return
    zones = [s for s in indications.real_sections() if s.name.lower() != "general"]
    if not zones:
        yield Problem("no_zone", INDICATIONS)
        return
    fallback = zones[0]
    in_use: dict[str, Section] = {}
    country = _setting(indications.first("general"), "country")
    for wanted in ([country] if country else []) + _endpoint_zones(pjsip):
        zone = indications.first(wanted.value)
        if zone is None:
            yield _at(wanted.where, "zone_missing", zone=wanted.value, fallback=fallback.name)
        in_use.setdefault((zone or fallback).name.lower(), zone or fallback)
    if not in_use:
        in_use[fallback.name.lower()] = fallback
    on_ms = round(settings.charter.ring_on_seconds * 1000)
    off_ms = round(settings.charter.ring_off_seconds * 1000)
    for zone in in_use.values():
        yield from _cadence(zone, on_ms, off_ms)


def _endpoint_zones(pjsip: ConfFile | None) -> list[Setting]:
    if pjsip is None:
        return []
    return [
        zone
        for section in pjsip.real_sections()
        if section.value("type") == "endpoint" and (zone := section.last("tone_zone"))
    ]


def _cadence(zone: Section, on_ms: int, off_ms: int) -> Iterable[Problem]:
    expected = [(True, on_ms), (False, off_ms)]
    params = {"zone": zone.name, "expected": f"{on_ms},{off_ms}"}
    params |= {"on": f"{on_ms / 1000:g}", "off": f"{off_ms / 1000:g}"}
    bell = zone.last("ringcadence")
    if bell is not None and _bell_pattern(bell.value) != expected:
        yield _at(bell.where, "cadence_mismatch", **params, found=bell.value)
    ring = zone.last("ring")
    if ring is None:
        yield _at(zone.where, "ring_mismatch", **params, found="-")
    elif _tone_pattern(ring.value) != expected:
        yield _at(ring.where, "ring_mismatch", **params, found=ring.value)


def _bell_pattern(value: str) -> list[tuple[bool, int]]:
    """``ringcadence = 1000,2000``: on, off, on, off ... in milliseconds."""
    try:
        return [(i % 2 == 0, int(v)) for i, v in enumerate(value.split(","))]
    except ValueError:
        return []


def _tone_pattern(value: str) -> list[tuple[bool, int]]:
    """A tone list (``440+480/1000,0/2000``) as runs of sound and silence, in milliseconds;
    an element without a duration sounds forever (-1)."""
    runs: list[tuple[bool, int]] = []
    for element in value.split(","):
        tone, _, duration = element.strip().lstrip("!").partition("/")
        sounding = any(f.strip() not in ("", "0") for f in re.split(r"[+*]", tone))
        try:
            milliseconds = int(duration) if duration else -1
        except ValueError:
            return []
        if runs and runs[-1][0] == sounding and milliseconds >= 0 and runs[-1][1] >= 0:
            runs[-1] = (sounding, runs[-1][1] + milliseconds)
        else:
            runs.append((sounding, milliseconds))
    return runs


# -- the dialplan --------------------------------------------------------------------------


def _dials(extensions: ConfFile, public_endpoints: frozenset[str]) -> Iterable[Problem]:
    """Every Dial() that rings a person without a ring timeout."""
    globals_ = _merged(extensions.named("globals"))
    variables = {s.name: s.value for s in globals_.settings} if globals_ else {}
    for context in extensions.real_sections():
        if context.name.lower() in ("general", "globals"):
            continue
        for line in context.settings:
            args = _dial_args(line)
            if args is None or _unknown_or_public(args[0], public_endpoints):
                continue
            timeout = args[1].strip() if len(args) > 1 else ""
            if not _rings_for_a_while(timeout, variables):
                yield _at(line.where, "dial_no_timeout", found=timeout or "-")


def _dial_args(line: Setting) -> list[str] | None:
    """The arguments of a ``Dial()`` priority, or None for anything else."""
    if line.key == "exten":
        parts = line.value.split(",", 2)
    elif line.key == "same":
        parts = line.value.split(",", 1)
    else:
        return None
    match = _DIAL.match(parts[-1])
    if match is None or len(parts) < (3 if line.key == "exten" else 2):
        return None
    body = match.group(1).strip()
    if _ONE_VARIABLE.match(body):
        return None  # Dial(${ARGS}): the timeout is inside the variable, unknown here
    return _split_arguments(body)


def _split_arguments(body: str) -> list[str]:
    """Split on the commas of this level, not those inside ``${...}`` or ``$[...]``."""
    args: list[str] = []
    current: list[str] = []
    depth = 0
    for char in body:
        if char in "({[":
            depth += 1
        elif char in ")}]":
            depth -= 1
        if char == "," and depth == 0:
            args.append("".join(current))
            current = []
        else:
            current.append(char)
    args.append("".join(current))
    return args


def _unknown_or_public(targets: str, public_endpoints: frozenset[str]) -> bool:
    """Every target is either named by a variable (``${TRUNK}/...``: who rings is unknown
    here) or a public endpoint (a call out, a callback): no phone of ours rings."""
    for written in targets.split("&"):
        target = written.strip()
        if target.startswith("$"):
            continue
        # PJSIP/201, PJSIP/01012345678@pstn, PJSIP/pstn/sip:01012345678@192.0.2.10
        resource = target.partition("/")[2]
        if resource.partition("/")[0].rpartition("@")[2] not in public_endpoints:
            return False
    return True


def _rings_for_a_while(timeout: str, variables: Mapping[str, str]) -> bool:
    """app_dial: the answer timeout (before any ``^``) must be a number above 0; empty, 0
    or not a number rings forever. A variable [globals] does not define is trusted."""
    variable = _ONE_VARIABLE.match(timeout)
    if variable and variable.group(1) in variables:
        timeout = variables[variable.group(1)]
    elif "$" in timeout:
        return True
    answer = timeout.partition("^")[0].strip()
    try:
        return float(answer) > 0
    except ValueError:
        return False


# -- what the admin reads ------------------------------------------------------------------

_KO = {
    "no_manager_conf": "manager.conf 가 없습니다: AMI 가 꺼져 있어 모니터가 연결할 수 없습니다",
    "ami_disabled": "[general] enabled = yes 가 아닙니다: AMI 가 꺼져 있어 모니터가 연결할 수 "
    "없습니다",
    "no_timestamps": "timestampevents = yes 가 아닙니다: 이벤트에 PBX 시각(Timestamp)이 없어 "
    "벨·응답·돌려주기 시간을 도착 시각으로 재게 됩니다",
    "no_user": "모니터의 AMI 사용자 [{user}] 가 없습니다 (call-monitor 설정의 ami.username)",
    "world_open": "AMI 가 모든 주소({address})에서 열려 있고 [{user}] 에 접속 주소 제한이 "
    "없습니다: 누구나 로그인을 시도할 수 있습니다. bindaddr 를 좁히거나 "
    "deny = 0.0.0.0/0.0.0.0 다음에 permit = <모니터 주소> 를 두십시오",
    "acl_invalid": "[{user}] 의 접속 제한 '{value}' 을(를) Asterisk 가 읽지 못해 이 사용자를 "
    "지웁니다",
    "read_missing": "[{user}] read 에 {classes} 권한이 없습니다: 모니터가 {events} 이벤트를 "
    "받지 못합니다",
    "read_extra": "[{user}] read 에 필요 없는 권한이 있습니다: {classes} (필요한 것은 "
    "{needed}): 모니터가 쓰지 않는 이벤트만 늘어납니다",
    "unknown_class": "[{user}] {key} 의 '{token}' 은(는) AMI 권한 이름이 아니라 무시됩니다 "
    "(공백 없이 쓰십시오: call,dtmf)",
    "write_missing": "[{user}] write 로 {action} 를 보낼 수 없습니다({needed} 중 하나 필요): "
    "재접속 뒤 그사이 끝난 통화를 정리하지 못합니다",
    "write_dangerous": "[{user}] write 에 {classes} 가 있습니다: 모니터에 필요 없고 PBX 를 "
    "바꿀 수 있는 권한입니다 (write = reporting 이면 충분)",
    "write_extra": "[{user}] write 에 필요 없는 권한이 있습니다: {classes} "
    "(write = reporting 이면 충분)",
    "filter_drops": "[{user}] eventfilter 가 모니터가 읽는 이벤트를 버립니다: {events}",
    "no_indications": "indications.conf 가 없습니다: 고객이 듣는 링백 주기를 확인할 수 없습니다",
    "no_zone": "indications.conf 에 신호음 지역(tone zone)이 하나도 없습니다",
    "zone_missing": "신호음 지역 '{zone}' 이(가) indications.conf 에 없습니다: Asterisk 는 "
    "[{fallback}] 을(를) 씁니다",
    "cadence_mismatch": "[{zone}] ringcadence {found} 이(가) 모니터의 [charter] 주기 "
    "{expected}(울림 {on}초, 쉼 {off}초)와 다릅니다: 벨 횟수(P1)가 실제와 어긋납니다",
    "ring_mismatch": "[{zone}] ring {found} 이(가) 모니터의 [charter] 주기 {expected}(울림 "
    "{on}초, 쉼 {off}초)와 다릅니다: 고객이 듣는 벨 횟수(P1)와 어긋납니다",
    "dial_no_timeout": "Dial() 에 벨 제한 시간이 없습니다({found}): 아무도 받지 않으면 고객이 "
    "끊을 때까지 울려 부재중 통화가 끝나지 않습니다. 두 번째 인자를 주십시오: "
    "Dial(PJSIP/201,20,tT)",
    "line_unreadable": "Asterisk 가 읽지 못하는 줄입니다({reason}): {text}",
    "include_missing": "#include 대상 파일이 없습니다: {target}",
    "no_equals": "'=' 없음",
    "no_section": "[섹션] 밖의 설정",
    "no_bracket": "']' 없음",
    "unknown_base": "없는 템플릿",
    "summary_clean": "검사한 파일: {files} — 문제 없음",
    "summary": "검사한 파일: {files} — 문제 {count}건",
}
_EN = {
    "no_manager_conf": "no manager.conf: AMI is off and the monitor cannot connect",
    "ami_disabled": "[general] enabled is not yes: AMI is off and the monitor cannot connect",
    "no_timestamps": "timestampevents is not yes: events carry no Timestamp, so rings, answers "
    "and transfers are timed by arrival instead of the PBX's clock",
    "no_user": "no AMI user [{user}] for the monitor (ami.username in call-monitor's "
    "configuration)",
    "world_open": "AMI listens on all addresses ({address}) and [{user}] has no deny/permit "
    "limiting where it may log in from: anyone can try. Narrow bindaddr, or add "
    "deny = 0.0.0.0/0.0.0.0 then permit = <the monitor's address>",
    "acl_invalid": "Asterisk cannot read the ACL '{value}' and deletes user [{user}]",
    "read_missing": "[{user}] read lacks {classes}: the monitor would miss {events}",
    "read_extra": "[{user}] read holds more than the monitor needs: {classes} (it needs "
    "{needed}): only events it ignores",
    "unknown_class": "[{user}] {key}: '{token}' is not an AMI class and is ignored (write the "
    "list without spaces: call,dtmf)",
    "write_missing": "[{user}] write does not allow {action} (needs one of {needed}): after a "
    "reconnect the calls that ended meanwhile cannot be closed",
    "write_dangerous": "[{user}] write grants {classes}: the monitor needs none of it and it can "
    "change the PBX (write = reporting is enough)",
    "write_extra": "[{user}] write holds more than the monitor needs: {classes} "
    "(write = reporting is enough)",
    "filter_drops": "[{user}] this eventfilter drops events the monitor reads: {events}",
    "no_indications": "no indications.conf: the ringback cadence callers hear cannot be checked",
    "no_zone": "indications.conf defines no tone zone",
    "zone_missing": "tone zone '{zone}' is not in indications.conf: Asterisk uses [{fallback}]",
    "cadence_mismatch": "[{zone}] ringcadence {found} differs from the monitor's [charter] "
    "cadence {expected} ({on} s on, {off} s off): ring counts (P1) would not match",
    "ring_mismatch": "[{zone}] ring {found} differs from the monitor's [charter] cadence "
    "{expected} ({on} s on, {off} s off): ring counts (P1) would not match what callers hear",
    "dial_no_timeout": "Dial() without a ring timeout ({found}): unanswered, it rings until the "
    "caller gives up and the missed call never ends; give a 2nd argument, e.g. "
    "Dial(PJSIP/201,20,tT)",
    "line_unreadable": "Asterisk cannot read this line ({reason}): {text}",
    "include_missing": "#include: no such file: {target}",
    "no_equals": "no '='",
    "no_section": "a setting outside any [section]",
    "no_bracket": "no closing ']'",
    "unknown_base": "no such template",
    "summary_clean": "checked {files}: no problems",
    "summary": "checked {files}: {count} problems",
}


def _words(lang: str) -> Mapping[str, str]:
    return _EN if lang == "en" else _KO


def render(problem: Problem, lang: str) -> str:
    """``file:line: what is wrong`` (``file: ...`` for the file as a whole)."""
    words = _words(lang)
    params = dict(problem.params)
    if "reason" in params:
        params["reason"] = words[params["reason"]]
    place = str(problem.where) if problem.where else problem.file
    return f"{place}: {words[problem.code].format(**params)}"


def summary(problems: list[Problem], checked: Iterable[str], lang: str) -> str:
    words = _words(lang)
    files = ", ".join(checked)
    if not problems:
        return words["summary_clean"].format(files=files)
    return words["summary"].format(files=files, count=len(problems))
