"""``call-monitor user add|passwd|disable|list|token``: the web's accounts, in the store.

A password is read from the terminal (asked twice) or, when standard input is not a
terminal, from its first line (``printf '%s\\n' "$PW" | call-monitor user add ...``): never
from the command line, which other users of the machine can read in the process list. An API
token is printed once; the store keeps only its hash.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from sqlalchemy.exc import SQLAlchemyError

from call_monitor.config import Settings
from call_monitor.store.accounts import (
    ROLES,
    AccountError,
    add_user,
    check_account,
    create_token,
    hash_password,
    list_users,
    set_disabled,
    set_password,
)
from call_monitor.store.engine import create_engine
from call_monitor.store.schema import upgrade


def add_parser(sub: argparse._SubParsersAction, common: list[argparse.ArgumentParser]) -> None:  # type: ignore[type-arg]
    user = sub.add_parser("user", parents=common, help="web accounts: add, passwd, disable, list")
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="a new account (the password is asked for)")
    add.add_argument("login")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--name", default="", help="the name shown (default: the login)")
    add.add_argument("--extension", help="staff: the staff member's extension")
    add.add_argument(
        "--department",
        action="append",
        default=[],
        dest="departments",
        help="supervisor: a department they answer for (repeat for several)",
    )
    actions.add_parser("passwd", help="set a new password").add_argument("login")
    disable = actions.add_parser("disable", help="no more logins or tokens for this account")
    disable.add_argument("login")
    disable.add_argument("--enable", action="store_true", help="enable it again instead")
    actions.add_parser("list", help="every account")
    token = actions.add_parser("token", help="a new API token (shown once)")
    token.add_argument("login")
    token.add_argument("--label", default="", help="what the token is for")


def _password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise AccountError("the two passwords differ")
    return first


async def _run(args: argparse.Namespace, settings: Settings) -> None:
    await upgrade(settings.store.url)
    engine = create_engine(settings.store.url)
    try:
        command = args.user_command
        if command == "add":
            check_account(args.role, args.extension, args.departments)  # before the prompt
            user = await add_user(
                engine,
                login=args.login,
                display_name=args.name,
                role=args.role,
                password_hash=hash_password(_password()),
                extension=args.extension,
                departments=args.departments,
            )
            print(f"added {user.login} ({user.role})")
        elif command == "passwd":
            await set_password(engine, args.login, hash_password(_password()))
            print(f"password of {args.login} changed")
        elif command == "disable":
            await set_disabled(engine, args.login, not args.enable)
            print(f"{args.login} {'enabled' if args.enable else 'disabled'}")
        elif command == "token":
            print(await create_token(engine, args.login, args.label))
        else:
            for user in await list_users(engine):
                where = user.extension or ",".join(user.departments) or "-"
                state = " (disabled)" if user.disabled else ""
                print(f"{user.login}\t{user.role}\t{where}\t{user.display_name}{state}")
    finally:
        await engine.dispose()


def run_user(args: argparse.Namespace, settings: Settings) -> int:
    try:
        asyncio.run(_run(args, settings))
    except AccountError as exc:
        print(f"call-monitor: {exc}", file=sys.stderr)
        return 2
    except (OSError, SQLAlchemyError) as exc:
        print(f"call-monitor: store.url: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
