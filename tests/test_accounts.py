"""The web's accounts in the store (SQLite and PostgreSQL) and ``call-monitor user``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from call_monitor.cli import main
from call_monitor.store.accounts import (
    AccountError,
    add_user,
    audit,
    audit_entries,
    create_token,
    find_user,
    hash_password,
    set_disabled,
    set_password,
    user_for_token,
    verify_password,
)


async def test_users_tokens_and_the_audit_log(engine: AsyncEngine) -> None:
    kim = await add_user(
        engine,
        login="kim",
        display_name="김팀장",
        role="supervisor",
        password_hash=hash_password("first password"),
        departments=["민원여권과", "총무과"],
    )
    assert (kim.role, kim.disabled) == ("supervisor", False)
    assert kim.departments == ("민원여권과", "총무과")
    found = await find_user(engine, "kim")
    assert found is not None
    assert verify_password(found[1], "first password")
    assert not verify_password(found[1], "first passworD")
    assert "first password" not in found[1]
    with pytest.raises(AccountError, match="exists already"):
        await add_user(engine, login="kim", display_name="", role="admin", password_hash="x")
    with pytest.raises(AccountError, match="extension"):
        await add_user(engine, login="lee", display_name="", role="staff", password_hash="x")

    token = await create_token(engine, "kim", "integration")
    assert (await user_for_token(engine, token)) == kim
    assert await user_for_token(engine, token + "x") is None
    await set_password(engine, "kim", hash_password("second password"))
    found = await find_user(engine, "kim")
    assert found is not None
    assert verify_password(found[1], "second password")
    await set_disabled(engine, "kim")
    assert await user_for_token(engine, token) is None  # a disabled account's tokens stop
    with pytest.raises(AccountError, match="no user"):
        await set_disabled(engine, "nobody")

    await audit(engine, "memo", actor="kim", target="memo-1", details={"owner": "201"})
    await audit(engine, "login_refused", actor=None, target="x\x01<script>")
    entries = await audit_entries(engine)
    assert [(e["action"], e["actor"], e["target"]) for e in entries] == [
        ("login_refused", None, "x\x01<script>"),
        ("memo", "kim", "memo-1"),
    ]
    assert entries[1]["details"] == {"owner": "201"}


def test_the_user_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALLMON_STORE__URL", f"sqlite+aiosqlite:///{tmp_path / 'u.sqlite3'}")
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["user", "add", "park", "--role", "staff", "--extension", "203"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["user", "add", "choi", "--role", "admin"]) == 2
    assert "at least 8 characters" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["user", "add", "lee", "--role", "supervisor"]) == 2
    assert "at least one department" in capsys.readouterr().err
    assert main(["user", "token", "park"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("cm_")
    assert main(["user", "disable", "park"]) == 0
    assert main(["user", "list"]) == 0
    listed = capsys.readouterr().out
    assert "park\tstaff\t203\tpark (disabled)" in listed
    assert token not in listed
    assert "a long password" not in listed
