"""The command line: the parser of every subcommand, each declared in a function of its own.

``--config`` and ``--lang`` are accepted before and after the subcommand alike.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from call_monitor import __version__
from call_monitor.cli import users
from call_monitor.config import CONFIG_ENV

Subcommands = argparse._SubParsersAction  # the type argparse gives no public name


def _common_options(*, suppress: bool) -> argparse.ArgumentParser:
    """``--config`` and ``--lang``, accepted before and after the subcommand alike.

    After the subcommand they default to ``SUPPRESS``, so that a value given before it is
    not overwritten by the subcommand's default.
    """
    options = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if suppress else None
    options.add_argument(
        "--config",
        type=Path,
        default=default,
        metavar="FILE",
        help=f"TOML configuration file (else ${CONFIG_ENV}, else the defaults)",
    )
    options.add_argument(
        "--lang",
        choices=["ko", "en"],
        default=default if suppress else "ko",
        help="language of what is printed (default: ko)",
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="call-monitor",
        description="전화 친절 서비스 헌장 점검기 — checks the phone charter on Asterisk calls",
        parents=[_common_options(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"call-monitor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_common_options(suppress=True)]
    for add in (_run, _demo, _replay, _memo, _check_asterisk, users.add_parser, _export):
        add(sub, common)
    return parser


def _run(sub: Subcommands[argparse.ArgumentParser], common: list[argparse.ArgumentParser]) -> None:
    sub.add_parser(
        "run",
        parents=common,
        help="the daemon: connect to the configured Asterisk AMI",
        description="Run the monitor against the Asterisk AMI of the configuration "
        "(ami.host), serve /metrics and the API (web.host:web.port), until SIGTERM.",
    )


def _demo(sub: Subcommands[argparse.ArgumentParser], common: list[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        parents=common,
        help="play the shipped recordings through a local AMI server",
        description="Recorded Asterisk calls played over a real local AMI socket into the "
        "real daemon; the calls are printed as they end.",
    )
    demo.add_argument("--speed", type=float, default=1.0, help="playback speed (0: flat out)")
    demo.add_argument("--once", action="store_true", help="play the recordings once, then stop")


def _replay(
    sub: Subcommands[argparse.ArgumentParser], common: list[argparse.ArgumentParser]
) -> None:
    rep = sub.add_parser(
        "replay",
        parents=common,
        help="offline: what the monitor concludes from AMI recordings",
        description="Read recorded AMI sessions (one file per connection, in order) and "
        "print the calls the monitor concludes, then the callbacks owed.",
    )
    rep.add_argument("files", nargs="+", type=Path, metavar="FILE")
    rep.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line: the calls, then the callbacks owed (P6/V4)",
    )
    rep.add_argument(
        "--store",
        action="store_true",
        help="also write the calls and callbacks into the configured store, as the daemon "
        "does (idempotent: replaying twice leaves the same rows)",
    )


def _memo(sub: Subcommands[argparse.ArgumentParser], common: list[argparse.ArgumentParser]) -> None:
    memo = sub.add_parser(
        "memo",
        parents=common,
        help="a colleague's memo (P6/V4): the owner owes the caller a call back; "
        "sent to the running daemon",
    )
    memo.add_argument("--number", required=True, help="the caller's number")
    memo.add_argument("--owner", required=True, help="the staff extension or department")
    memo.add_argument("--taken-by", required=True, help="who took the call")
    memo.add_argument("--name", default="", help="the caller's name")
    memo.add_argument("--matter", default="", help="what the caller wants")
    memo.add_argument(
        "--id",
        dest="memo_id",
        help="an id for this memo (letters, digits, . _ : -): sent twice, it makes one memo "
        "(default: a new one each time)",
    )


def _check_asterisk(
    sub: Subcommands[argparse.ArgumentParser], common: list[argparse.ArgumentParser]
) -> None:
    pbx = sub.add_parser(
        "check-asterisk",
        parents=common,
        help="check an Asterisk configuration directory for what the monitor needs",
        description="Read DIR (e.g. /etc/asterisk: manager.conf, indications.conf, "
        "extensions.conf, pjsip.conf) and print, with file and line, what is wrong for the "
        "monitor. Exit status: 0 nothing found, 1 problems found, 2 DIR cannot be read.",
    )
    pbx.add_argument("dir", type=Path, metavar="DIR")


def _export(
    sub: Subcommands[argparse.ArgumentParser], common: list[argparse.ArgumentParser]
) -> None:
    export = sub.add_parser(
        "export",
        parents=common,
        help="the audit office's monthly export (XLSX, CSV, JSON, HTML) and its manifest; "
        "'export verify MANIFEST' checks one",
        description="Write the month's charter figures per department and staff member, the "
        "calls, the missed calls and their callbacks and the definitions to --out, with a "
        "manifest (PATH.manifest.json) holding the file's SHA-256.",
    )
    export.add_argument("--month", help="the month, YYYY-MM (Asia/Seoul)")
    export.add_argument("--format", choices=["xlsx", "csv", "json", "html"])
    export.add_argument("--out", type=Path, metavar="PATH", help="the file to write")
    export.add_argument("--department", help="only this department")
    export.add_argument(
        "--recompute",
        action="store_true",
        help="re-judge the stored facts under the current definitions (default: the "
        "verdicts as stored, under their own definitions version)",
    )
    actions = export.add_subparsers(dest="export_command", metavar="verify")
    verify = actions.add_parser(
        "verify",
        help="check a manifest: exit 0 if every file matches, 1 naming the file that does not",
    )
    verify.add_argument("manifest", type=Path, metavar="MANIFEST")
