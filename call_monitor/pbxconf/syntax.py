"""Asterisk's config file syntax, as main/config.c reads it. Pure: text in, sections out.

What Asterisk does and this does too: ``;`` starts a comment unless escaped (``\\;``);
``;-- ... --;`` is a block comment, nested, across lines; ``[name](!)`` is a template,
``[name](base1,base2)`` copies the bases' settings first, ``[name](+)`` adds to the section
of that name; ``name => value`` is ``name = value``; ``name += value`` appends to the
previous value; ``#include``/``#tryinclude`` lines stay tokens here (``files`` reads the
target and splices its tokens in). Section names are compared case-insensitively, as
Asterisk's ``ast_category_get`` does; setting names too (every module uses strcasecmp).
Same-named sections stay separate (pjsip.conf's ``[201]`` endpoint, auth and aor).

Why not pyst2's ``asterisk.config`` (a dependency nothing imported): measured on the files
of ``asterisk_conf/``, it raises ``ParseError`` on the template headers
``[staff-endpoint](!)`` (pjsip.conf line 20) and ``[queue-defaults](!)`` (queues.conf line
11) and knows no inheritance; it raises on ``#include "manager.d/callmon.conf"`` and on any
line inside a ``;-- --;`` block; it cuts ``a\\;b`` to ``a\\``; it keeps the blank after
``=`` in every value (``read = call,dtmf`` gives ``" call,dtmf"``); and it never closes the
files it opens (a ``ResourceWarning``). Its line numbers and ``same =>`` lines are right,
but a checker that stops at the first template of a stock pjsip.conf cannot serve.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

BLOCK_START = ";--"
BLOCK_END = "--;"


@dataclass(frozen=True, slots=True)
class Where:
    file: str  # relative to the directory checked, as the admin names it
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    template: bool  # (!): not a real section, only a base for others
    bases: tuple[str, ...]
    append: bool  # (+): more settings for the section of that name
    where: Where


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    value: str
    where: Where
    append: bool = False  # ``name += value``

    @property
    def key(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Include:
    target: str
    optional: bool  # #tryinclude: a missing file is fine
    where: Where


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A line Asterisk cannot read: it logs an error and skips it or refuses the file."""

    reason: str  # no_equals | no_section | no_bracket | unknown_base
    text: str
    where: Where


Token = Header | Setting | Include | Unreadable


def tokens(text: str, file: str) -> list[Token]:
    """The tokens of one file, in order, each with its line."""
    out: list[Token] = []
    depth = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line, depth = _strip_comments(raw, depth)
        line = line.strip()
        token = _token(line, Where(file, number)) if line else None
        if token is not None:
            out.append(token)
    return out


def _strip_comments(raw: str, depth: int) -> tuple[str, int]:
    """The line without its comments, and the block-comment depth after it."""
    kept: list[str] = []
    i = 0
    while i < len(raw):
        opens = raw.startswith(BLOCK_START, i) and not raw.startswith(";---", i)
        if depth:
            if opens:
                depth, i = depth + 1, i + 3
            elif raw.startswith(BLOCK_END, i):
                depth, i = depth - 1, i + 3
            else:
                i += 1
        elif raw.startswith("\\;", i):
            kept.append(";")
            i += 2
        elif opens:
            depth, i = 1, i + 3
        elif raw[i] == ";":
            break
        else:
            kept.append(raw[i])
            i += 1
    return "".join(kept), depth


def _token(line: str, where: Where) -> Token | None:
    if line.startswith("["):
        return _header(line, where)
    if line.startswith("#"):
        directive, *target = line[1:].split(maxsplit=1)
        if directive.lower() in ("include", "tryinclude"):
            path = target[0].strip().strip('"<>') if target else ""
            return Include(path, directive.lower() == "tryinclude", where)
        return None  # #exec runs a program: its output cannot be checked from here
    name, equals, value = line.partition("=")
    if not equals:
        return Unreadable("no_equals", line, where)
    append = name.endswith("+")
    return Setting(name.rstrip("+").strip(), value.removeprefix(">").strip(), where, append)


def _header(line: str, where: Where) -> Token:
    name, bracket, rest = line[1:].partition("]")
    if not bracket:
        return Unreadable("no_bracket", line, where)
    options: list[str] = []
    rest = rest.strip()
    if rest.startswith("("):
        options = [o.strip() for o in rest[1:].partition(")")[0].split(",") if o.strip()]
    bases = tuple(o for o in options if o not in ("!", "+"))
    return Header(name.strip(), "!" in options, bases, "+" in options, where)


@dataclass(slots=True)
class Section:
    name: str
    where: Where
    template: bool = False
    settings: list[Setting] = field(default_factory=list)

    def all(self, key: str) -> list[Setting]:
        return [s for s in self.settings if s.key == key]

    def last(self, key: str) -> Setting | None:
        found = self.all(key)
        return found[-1] if found else None

    def value(self, key: str) -> str | None:
        setting = self.last(key)
        return setting.value if setting else None


@dataclass(slots=True)
class ConfFile:
    """One configuration (a file and what it includes), as Asterisk holds it."""

    name: str
    sections: list[Section] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    missing_includes: list[Include] = field(default_factory=list)

    def named(self, name: str) -> list[Section]:
        """The real (non-template) sections called ``name``, in file order."""
        wanted = name.lower()
        return [s for s in self.sections if s.name.lower() == wanted and not s.template]

    def first(self, name: str) -> Section | None:
        found = self.named(name)
        return found[0] if found else None

    def real_sections(self) -> list[Section]:
        return [s for s in self.sections if not s.template]


def build(name: str, stream: Iterable[Token]) -> ConfFile:
    """Sections from tokens (includes already spliced in; those left are missing files)."""
    conf = ConfFile(name)
    current: Section | None = None
    for token in stream:
        if isinstance(token, Header):
            current = _open_section(conf, token)
        elif isinstance(token, Setting):
            if current is None:
                conf.unreadable.append(Unreadable("no_section", token.name, token.where))
            else:
                _add(current, token)
        elif isinstance(token, Include):
            conf.missing_includes.append(token)
        else:
            conf.unreadable.append(token)
    return conf


def _open_section(conf: ConfFile, header: Header) -> Section:
    if header.append:
        for section in reversed(conf.sections):
            if section.name.lower() == header.name.lower():
                return section
    section = Section(header.name, header.where, header.template)
    for base_name in header.bases:
        base = next((s for s in conf.sections if s.name.lower() == base_name.lower()), None)
        if base is None:
            conf.unreadable.append(Unreadable("unknown_base", base_name, header.where))
        else:
            section.settings.extend(base.settings)  # inherited: they keep their own lines
    conf.sections.append(section)
    return section


def _add(section: Section, setting: Setting) -> None:
    previous = section.last(setting.key) if setting.append else None
    if previous is not None:
        setting = Setting(previous.name, previous.value + setting.value, setting.where)
    section.settings.append(setting)
