"""The ``call-monitor`` command: run · demo · replay."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from call_monitor import service
from call_monitor.calls.correlator import EventRejected
from call_monitor.config import CONFIG_ENV, Settings, load_settings
from call_monitor.pipeline import JudgedCall, replay
from call_monitor.report import call_report
from call_monitor.summary import describe

log = logging.getLogger("call_monitor")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="call-monitor",
        description="전화 친절 서비스 헌장 점검기 — checks the phone charter on Asterisk calls",
    )
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument("--lang", choices=["ko", "en"], default="ko", help="output language")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="the daemon: connect to the configured Asterisk AMI")
    demo = sub.add_parser("demo", help="play the shipped recordings through a local AMI server")
    demo.add_argument("--speed", type=float, default=1.0, help="playback speed (0: flat out)")
    demo.add_argument("--once", action="store_true", help="play the recordings once, then stop")
    rep = sub.add_parser("replay", help="offline: what the monitor concludes from AMI recordings")
    rep.add_argument("files", nargs="+", type=Path)
    rep.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def _replay(files: list[Path], settings: Settings, as_json: bool, lang: str) -> int:
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        print(f"call-monitor: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    rejected = 0
    for result in replay(files, settings):
        if isinstance(result, EventRejected):
            rejected += 1
            log.debug("event %s rejected: %s", result.event, result.reason)
        elif isinstance(result, JudgedCall):
            if as_json:
                print(json.dumps(call_report(result.record, result.verdict), ensure_ascii=False))
            else:
                print(describe(result, lang))
    if rejected:
        print(f"call-monitor: {rejected} events could not be used", file=sys.stderr)
    return 0


def _config_problem(exc: Exception) -> str:
    """A configuration error in a few words, without the values given.

    Pydantic's own text quotes each offending input: a secret put in the wrong place (a
    top-level ``secret = ...``, a misspelt key) would be printed to the terminal and the logs.
    """
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except (OSError, ValueError) as exc:
        # A TOML syntax error is the file's; a bad value may come from the environment.
        source = args.config or os.environ.get(CONFIG_ENV)
        where = f" in {source}" if source and isinstance(exc, tomllib.TOMLDecodeError) else ""
        print(f"call-monitor: configuration error{where}: {_config_problem(exc)}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migration chatter at start
    if args.command == "replay":
        return _replay(args.files, settings, args.json, args.lang)
    if args.command == "run":
        return asyncio.run(service.run(settings, lang=args.lang))
    return asyncio.run(service.demo(settings, speed=args.speed, once=args.once, lang=args.lang))


if __name__ == "__main__":
    sys.exit(main())
