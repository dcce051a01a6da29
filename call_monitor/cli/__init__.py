"""The ``call-monitor`` command: run · demo · replay · memo · check-asterisk · user · export.

:mod:`.parser` declares the subcommands, :mod:`.replay` and :mod:`.memo` are two of them;
the daemon (``run``), the demo and ``check-asterisk`` live in their own packages. Here: the
configuration loaded (its errors in one line), logging, and the dispatch.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from call_monitor.cli.export import run_export
from call_monitor.cli.memo import send_memo
from call_monitor.cli.parser import build_parser
from call_monitor.cli.replay import run_replay
from call_monitor.cli.users import run_user
from call_monitor.config import CONFIG_ENV, Settings, explain, load_settings
from call_monitor.daemon import service
from call_monitor.demo import runner
from call_monitor.pbxconf.files import check_asterisk


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    source = args.config or os.environ.get(CONFIG_ENV)
    try:
        settings = load_settings(args.config)
    except (OSError, ValueError) as exc:
        # A TOML syntax error is the file's; a bad value may come from the environment.
        where = "" if isinstance(exc, OSError) else _where(source)
        print(f"call-monitor: configuration error{where}: {_config_problem(exc)}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level)
    if args.command == "replay":
        return _replay(args.files, settings, args.json, args.lang, args.store)
    if args.command == "memo":
        return send_memo(args, settings)
    if args.command == "user":
        return run_user(args, settings)
    if args.command == "export":
        return run_export(args, settings)
    if args.command == "check-asterisk":
        return check_asterisk(args.dir, settings, args.lang)
    return _daemon(args, settings, str(source) if source else None)


def _replay(files: list[Path], settings: Settings, as_json: bool, lang: str, store: bool) -> int:
    try:
        return run_replay(files, settings, as_json, lang, store)
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        # Python flushes stdout again at exit: point it at /dev/null so that flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _daemon(args: argparse.Namespace, settings: Settings, source: str | None) -> int:
    """``run`` or ``demo``: the daemon in this process, until stopped."""
    try:
        if args.command == "run":
            return asyncio.run(service.run(settings, lang=args.lang, config_source=source))
        return asyncio.run(runner.demo(settings, speed=args.speed, once=args.once, lang=args.lang))
    except service.StartupError as exc:
        print(f"call-monitor: {exc}", file=sys.stderr)
        return 1


def _config_problem(exc: Exception) -> str:
    """A configuration error in a few words, without the values given (``config.explain``)."""
    if isinstance(exc, ValidationError):
        return explain(exc)
    return str(exc)


def _where(source: object) -> str:
    """Where a configuration came from, for its error: the file, the environment or both."""
    from_env = any(k.startswith("CALLMON_") and k != CONFIG_ENV for k in os.environ)
    places = [str(source)] if source else []
    places += ["the CALLMON_ environment"] if from_env else []
    return f" in {' or '.join(places)}" if places else ""


def _web_server_name(record: logging.LogRecord) -> bool:
    """uvicorn logs as ``uvicorn.error`` (for everything, errors or not): under our name, an
    admin filtering ``call_monitor`` sees the web server's lines too."""
    if record.name.startswith("uvicorn"):
        record.name = "call_monitor.web.server"
    return True


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_web_server_name)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migration chatter at start
