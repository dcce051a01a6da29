"""An Asterisk configuration directory on disk: which files, ``#include``, bytes to text;
and ``call-monitor check-asterisk``, which prints what ``check`` finds. The one module of
pbxconf that does I/O."""

from __future__ import annotations

import sys
from pathlib import Path

from call_monitor.config import Settings
from call_monitor.pbxconf.check import FILES, PbxConf, check, render, summary
from call_monitor.pbxconf.syntax import Include, Token, build, tokens

GLOB_CHARACTERS = frozenset("*?[")


class CannotRead(Exception):
    """The directory, or a file in it, cannot be read at all (exit status 2)."""


def load(directory: Path) -> PbxConf:
    """The files of ``FILES`` present in ``directory``, their includes spliced in."""
    if not directory.is_dir():
        raise CannotRead(f"not a directory: {directory}")
    present = [name for name in FILES if (directory / name).is_file()]
    if not present:
        raise CannotRead(
            f"{directory} has none of {', '.join(FILES)}: not an Asterisk configuration directory"
        )
    return PbxConf(
        {
            name: build(name, _expand(directory, directory / name, (directory / name,)))
            for name in present
        }
    )


def _read(path: Path) -> str:
    # Comments may be in any encoding (EUC-KR in older offices); the settings are ASCII.
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise CannotRead(f"cannot read {path}: {exc.strerror or exc}") from exc


def _expand(directory: Path, path: Path, chain: tuple[Path, ...]) -> list[Token]:
    """The tokens of ``path`` with each ``#include`` replaced by the tokens of its files.

    A relative target is relative to the configuration directory (Asterisk's
    ``astetcdir``), not to the including file; a glob includes every file it matches. An
    include missing is left in as a token (``#tryinclude``: dropped); a loop is not followed.
    """
    out: list[Token] = []
    for token in tokens(_read(path), _shown(directory, path)):
        if not isinstance(token, Include):
            out.append(token)
            continue
        targets = _targets(directory, token.target)
        if not targets and not token.optional:
            out.append(token)
        for target in targets:
            if target.resolve() not in {p.resolve() for p in chain}:
                out.extend(_expand(directory, target, (*chain, target)))
    return out


def _targets(directory: Path, target: str) -> list[Path]:
    path = Path(target) if Path(target).is_absolute() else directory / target
    if GLOB_CHARACTERS & set(target):
        return sorted(
            p for p in Path(path.anchor).glob(str(path.relative_to(path.anchor))) if p.is_file()
        )
    return [path] if path.is_file() else []


def _shown(directory: Path, path: Path) -> str:
    """A file's name as the admin knows it: relative to the directory checked."""
    try:
        return path.relative_to(directory).as_posix()
    except ValueError:
        return str(path)


def check_asterisk(directory: Path, settings: Settings, lang: str) -> int:
    """Print each problem (file:line: what), then a summary; 0 clean, 1 problems, 2 unread."""
    try:
        conf = load(directory)
    except CannotRead as exc:
        print(f"call-monitor: {exc}", file=sys.stderr)
        return 2
    problems = check(conf, settings)
    for problem in problems:
        print(render(problem, lang))
    print(summary(problems, conf.files, lang))
    return 1 if problems else 0
