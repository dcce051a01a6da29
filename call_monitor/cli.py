"""The ``call-monitor`` command: run · demo · replay · memo · check-asterisk."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from call_monitor import __version__
from call_monitor.ami.recording import NotARecording, read_recording_bytes
from call_monitor.calls.correlator import EventRejected
from call_monitor.charter.callbacks import CallbackTracker
from call_monitor.charter.judged import JudgedCall, call_report
from call_monitor.charter.lines import Summary, describe
from call_monitor.charter.obligations import Obligation, ObligationChange, callback_report
from call_monitor.charter.working_hours import WorkingHours
from call_monitor.config import CONFIG_ENV, Settings, explain, load_settings
from call_monitor.daemon import service
from call_monitor.daemon.pipeline import Consumer, StageFailed, deliver, log_failure, replay
from call_monitor.demo import runner
from call_monitor.directory import Directory
from call_monitor.pbxconf.files import check_asterisk
from call_monitor.timefmt import SEOUL

log = logging.getLogger("call_monitor")

MEMO_TIMEOUT_SECONDS = 15.0


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="call-monitor",
        description="전화 친절 서비스 헌장 점검기 — checks the phone charter on Asterisk calls",
        parents=[_common_options(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"call-monitor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_common_options(suppress=True)]
    sub.add_parser(
        "run",
        parents=common,
        help="the daemon: connect to the configured Asterisk AMI",
        description="Run the monitor against the Asterisk AMI of the configuration "
        "(ami.host), serve /metrics and the API (web.host:web.port), until SIGTERM.",
    )
    demo = sub.add_parser(
        "demo",
        parents=common,
        help="play the shipped recordings through a local AMI server",
        description="Recorded Asterisk calls played over a real local AMI socket into the "
        "real daemon; the calls are printed as they end.",
    )
    demo.add_argument("--speed", type=float, default=1.0, help="playback speed (0: flat out)")
    demo.add_argument("--once", action="store_true", help="play the recordings once, then stop")
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
    pbx = sub.add_parser(
        "check-asterisk",
        parents=common,
        help="check an Asterisk configuration directory for what the monitor needs",
        description="Read DIR (e.g. /etc/asterisk: manager.conf, indications.conf, "
        "extensions.conf, pjsip.conf) and print, with file and line, what is wrong for the "
        "monitor. Exit status: 0 nothing found, 1 problems found, 2 DIR cannot be read.",
    )
    pbx.add_argument("dir", type=Path, metavar="DIR")
    return parser


def _replay(files: list[Path], settings: Settings, as_json: bool, lang: str) -> int:
    """Print what the monitor concludes from ``files``. A bug one call triggers costs that
    call (logged with its traceback; exit status 1 once everything else is printed)."""
    problem = _not_replayable(files)
    if problem:
        print(f"call-monitor: {problem}", file=sys.stderr)
        return 2
    rejected = failed = 0
    directory = Directory(settings.directory)
    callbacks = CallbackTracker(settings.callbacks, WorkingHours(settings.working_hours), directory)
    obligations: dict[str, Obligation] = {}  # the latest snapshot of each, first created first
    lines: list[tuple[float, int, str]] = []  # (started_at, order ended, line)
    summary = Summary()
    caused: list[ObligationChange] = []  # the callback changes of the call being delivered

    def owe(judged: JudgedCall) -> None:
        caused[:] = callbacks.on_call(judged.record)
        for change in caused:
            obligations[change.obligation.id] = change.obligation

    json_lines: list[str] = []  # printed after delivery: a closed stdout is not the call's bug

    def show(judged: JudgedCall) -> None:
        if as_json:
            json_lines.append(
                json.dumps(call_report(judged.record, judged.verdict), ensure_ascii=False)
            )
            return
        line = describe(judged, lang, directory=directory, changes=caused)
        lines.append((judged.record.started_at, len(lines), line))
        summary.add(judged, caused)

    # Applied in the order the calls end, as the daemon does; lines printed by start below.
    consumers: list[Consumer] = [("callbacks", owe), ("report", show)]
    last_end: float | None = None
    for result in replay(files, settings):
        failures: list[StageFailed] = []
        if isinstance(result, EventRejected):
            rejected += 1
            log.debug("event %s rejected: %s", result.event, result.reason)
        elif isinstance(result, StageFailed):
            failures.append(result)
        else:
            caused.clear()
            failures += deliver(result, consumers)
            for line in json_lines:
                print(line)
            json_lines.clear()
            record = result.record
            end = record.ended_at if record.ended_at is not None else record.started_at
            last_end = end if last_end is None else max(last_end, end)
        for failure in failures:
            log_failure(failure)
        failed += len(failures)
    if last_end is not None:
        # States as of the end of the recording (the PBX's clock, not ours).
        for change in callbacks.due_events(datetime.fromtimestamp(last_end, SEOUL)):
            obligations[change.obligation.id] = change.obligation
            summary.note(change)
    if as_json:
        for obligation in obligations.values():
            print(json.dumps(callback_report(obligation), ensure_ascii=False))
    else:
        for _, _, line in sorted(lines):
            print(line)
        print(summary.text(lang))
    if rejected:
        print(f"call-monitor: {rejected} events could not be used", file=sys.stderr)
    if failed:
        print(
            f"call-monitor: {failed} internal errors (logged above); the calls they hit are "
            "shown incomplete or unjudged, or left out",
            file=sys.stderr,
        )
        return 1
    return 0


def _not_replayable(files: list[Path]) -> str | None:
    """What is wrong with the first file that is not a recording, if one is not: every file
    is checked before the first line is printed, so a wrong file among several leaves no
    half replay behind it (the pipeline reads each again, lazily)."""
    for path in files:
        try:
            read_recording_bytes(path)
        except FileNotFoundError:
            return f"no such file: {path}"
        except NotARecording as exc:
            return str(exc)
        except OSError as exc:
            return f"cannot read {path}: {exc.strerror or exc}"
    return None


def _daemon_url(settings: Settings) -> str:
    host = settings.web.host
    # A wildcard listen address is not one to connect to: its loopback is.
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.web.port}"


def _error_detail(body: bytes) -> str:
    try:
        detail = json.loads(body)["detail"]
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", errors="replace")[:500]
    if isinstance(detail, list):  # FastAPI's validation errors
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg')}" for e in detail
        )
    return str(detail)


def _memo(args: argparse.Namespace, settings: Settings) -> int:
    """POST the memo to the running daemon's API and print its answer (one JSON line)."""
    base = _daemon_url(settings)
    body: dict[str, Any] = {
        "number": args.number,
        "owner": args.owner,
        "taken_by": args.taken_by,
        "caller_name": args.name,
        "matter": args.matter,
        "memo_id": args.memo_id or uuid.uuid4().hex,
    }
    request = urllib.request.Request(
        f"{base}/api/callbacks/memo",
        data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    # No proxy: the daemon is local, and an http_proxy in the environment would get the memo.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=MEMO_TIMEOUT_SECONDS) as response:
            status, answer = response.status, response.read()
    except urllib.error.HTTPError as exc:
        detail = _error_detail(exc.read())
        print(f"call-monitor: memo refused ({exc.code}): {detail}", file=sys.stderr)
        return 2 if 400 <= exc.code < 500 else 1
    except TimeoutError:
        print(
            f"call-monitor: the daemon at {base} did not answer within "
            f"{MEMO_TIMEOUT_SECONDS:.0f} s",
            file=sys.stderr,
        )
        return 1
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(
            f"call-monitor: the daemon is not running (nothing answers at {base}: {reason}); "
            "start it with `call-monitor run`",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(json.loads(answer), ensure_ascii=False))
    if status == 202:
        print(
            "call-monitor: memo accepted but not stored yet (the daemon keeps retrying)",
            file=sys.stderr,
        )
    return 0


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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except (OSError, ValueError) as exc:
        # A TOML syntax error is the file's; a bad value may come from the environment.
        source = args.config or os.environ.get(CONFIG_ENV)
        where = "" if isinstance(exc, OSError) else _where(source)
        print(f"call-monitor: configuration error{where}: {_config_problem(exc)}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level)
    source = args.config or os.environ.get(CONFIG_ENV)
    if args.command == "replay":
        try:
            return _replay(args.files, settings, args.json, args.lang)
        except BrokenPipeError:  # `| head`: the reader has what it wanted
            # Python flushes stdout again at exit: point it at /dev/null so that flush is quiet.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    if args.command == "memo":
        return _memo(args, settings)
    if args.command == "check-asterisk":
        return check_asterisk(args.dir, settings, args.lang)
    try:
        if args.command == "run":
            return asyncio.run(
                service.run(settings, lang=args.lang, config_source=str(source) if source else None)
            )
        return asyncio.run(runner.demo(settings, speed=args.speed, once=args.once, lang=args.lang))
    except service.StartupError as exc:
        print(f"call-monitor: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
