"""The deployment files: docker-compose.yml as Compose reads it, the Dockerfile, Asterisk's
compose entrypoint, and the systemd unit as systemd reads it.

Compose is Debian's ``docker-compose`` (v1), which validates and prints the resolved file
without a Docker engine; ``scripts/services`` installs it. Outside CI a missing tool skips
its tests; with ``CI=true`` it fails them (``tests/backends.py``).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from call_monitor.config import load_settings
from tests.backends import unavailable

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
UNIT = REPO / "deploy" / "call-monitor.service"
ASTERISK_ENTRYPOINT = REPO / "deploy" / "asterisk" / "compose-entrypoint.sh"
SECRET_KEY = re.compile(r"PASSWORD|SECRET", re.IGNORECASE)
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)")


def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        unavailable("docker-compose is not installed (scripts/services installs it as root)")
    assert found is not None
    return found


def _env_lines(overrides: dict[str, str | None]) -> str:
    """``.env.example`` with some values replaced (``None``: the line left out)."""
    lines = []
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        key = line.split("=", 1)[0] if "=" in line and not line.startswith("#") else None
        if key in overrides:
            value = overrides[key]
            if value is not None:
                lines.append(f"{key}={value}")
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def _compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``docker-compose`` on the repository's file with ``env_file`` as its ``.env``, in an
    environment without the caller's variables (a stray ``AMI_SECRET`` would win over it)."""
    clean = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    return subprocess.run(
        [
            _docker_compose(),
            "--project-directory",
            str(REPO),
            "--env-file",
            str(env_file),
            "-f",
            str(COMPOSE_FILE),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=clean,
    )


def _example_secrets() -> dict[str, str]:
    values = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.startswith("#")
    )
    return {key: value for key, value in values.items() if SECRET_KEY.search(key)}


@pytest.fixture(scope="module")
def random_secrets() -> dict[str, str]:
    """A fresh value for every secret of ``.env.example``: found in the output, it can only
    have come from the ``.env``."""
    return {key: secrets.token_hex(12) for key in _example_secrets()}


@pytest.fixture(scope="module")
def compose_config(
    tmp_path_factory: pytest.TempPathFactory, random_secrets: dict[str, str]
) -> dict[str, Any]:
    """``docker-compose config``, parsed: the file with ``.env.example`` (its secrets
    replaced by random ones) resolved."""
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    env_file.write_text(_env_lines(dict(random_secrets)), encoding="utf-8")
    done = _compose(env_file, "config", "-q")
    assert done.returncode == 0, done.stderr
    done = _compose(env_file, "config")
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def _services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = config["services"]
    return services


def _published(port: str | dict[str, Any]) -> tuple[str, str]:
    """``(host address, host port)`` of a ``ports`` entry, short or long syntax."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), str(port.get("published", ""))
    spec = port.split("/", 1)[0]
    parts = spec.rsplit(":", 2)
    if len(parts) < 3:
        return "", parts[0] if len(parts) == 2 else ""  # "8089:8089" or "8089": every address
    return parts[0], parts[1]


def _bind_mounts(service: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(source on the host, target)`` of a service's bind mounts."""
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                yield volume["source"], volume["target"]
            continue
        source, target = volume.split(":")[:2]
        if source.startswith(("/", ".")):
            yield source, target


def test_the_compose_file_validates(compose_config: dict[str, Any]) -> None:
    assert {"asterisk", "call-monitor", "postgres", "mosquitto", "prometheus", "grafana"} <= set(
        _services(compose_config)
    )


def test_every_published_port_is_on_loopback(compose_config: dict[str, Any]) -> None:
    published: dict[str, set[str]] = {}
    for name, service in _services(compose_config).items():
        for port in service.get("ports", []):
            address, host_port = _published(port)
            assert address == "127.0.0.1", f"{name} publishes {port!r} beyond the loopback"
            published.setdefault(name, set()).add(host_port)
    # What deploy/README.md tells the reader to open.
    assert published["call-monitor"] == {"8089"}
    assert published["prometheus"] == {"9090"}
    assert published["grafana"] == {"3000"}
    assert "postgres" not in published


def test_the_monitor_is_built_from_the_dockerfile(compose_config: dict[str, Any]) -> None:
    build = _services(compose_config)["call-monitor"]["build"]
    assert Path(build["context"]) == REPO
    assert (Path(build["context"]) / build.get("dockerfile", "Dockerfile")) == DOCKERFILE


def test_the_monitor_settings_load_and_reach_the_other_services(
    compose_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CALLMON_ variables compose sets are settings call-monitor knows (a misspelt key
    is an error there), and they point at the services of the file."""
    service = _services(compose_config)["call-monitor"]
    environment: dict[str, str] = service["environment"]
    for key in [k for k in os.environ if k.startswith("CALLMON_")]:
        monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, str(value))
    config_target = environment.pop("CALLMON_CONFIG")
    monkeypatch.delenv("CALLMON_CONFIG")
    (config_source,) = [src for src, dst in _bind_mounts(service) if dst == config_target]
    settings = load_settings(Path(config_source))
    services = _services(compose_config)
    assert settings.ami.host in services
    assert settings.ami.secret is not None
    assert settings.store.url.startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in settings.store.url
    assert settings.mqtt.host in services
    assert settings.mqtt.password is not None
    assert settings.web.host == "0.0.0.0"
    assert {_published(p)[1] for p in service["ports"]} == {str(settings.web.port)}
    depends = service["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"


def test_no_secret_is_written_in_the_compose_file(
    compose_config: dict[str, Any], random_secrets: dict[str, str]
) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    resolved = yaml.safe_dump(compose_config)
    assert random_secrets, "no PASSWORD or SECRET in .env.example"
    for key, value in random_secrets.items():
        assert value in resolved, f"{key} from .env is used nowhere"
        assert f"${{{key}:?" in text, f"{key} has a default in docker-compose.yml"
    for key, value in _example_secrets().items():
        assert value.startswith("change-me"), f".env.example ships a real-looking {key}"
    # Every secret-named variable of every service is a reference to .env, never a value.
    raw = yaml.safe_load(text)
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_KEY.search(key):
                assert INTERPOLATION.search(str(value)), f"{name}: {key} is a literal"


def test_a_missing_secret_stops_compose_with_its_name(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(_env_lines({"POSTGRES_PASSWORD": None}), encoding="utf-8")
    done = _compose(env_file, "config", "-q")
    assert done.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in done.stdout + done.stderr


def test_every_mounted_path_is_in_the_repository(compose_config: dict[str, Any]) -> None:
    mounts = [
        (name, source)
        for name, service in _services(compose_config).items()
        for source, _ in _bind_mounts(service)
    ]
    assert mounts
    for name, source in mounts:
        path = Path(source)
        assert path.is_relative_to(REPO), f"{name} mounts {source}, outside the repository"
        assert path.exists(), f"{name} mounts {source}, missing"


def test_grafana_opens_on_a_board_of_the_mounted_folder(compose_config: dict[str, Any]) -> None:
    grafana = _services(compose_config)["grafana"]
    home = Path(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    folders = {Path(dst): Path(src) for src, dst in _bind_mounts(grafana)}
    (inside,) = [dst for dst in folders if home.is_relative_to(dst)]
    assert folders[inside] == REPO / "dashboards" / "grafana" / "dashboards"
    boards = sorted(folders[inside].glob("*.json"))
    assert folders[inside] / home.relative_to(inside) in boards
    # The provisioned dashboards provider reads the folder where the boards are mounted.
    provider = yaml.safe_load(
        (REPO / "dashboards/grafana/provisioning/dashboards/call-monitor.yml").read_text()
    )
    paths = {Path(entry["options"]["path"]) for entry in provider["providers"]}
    assert paths == {inside}


def test_env_files_are_kept_out_of_git() -> None:
    done = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "-q", ".env"], check=False, capture_output=True
    )
    assert done.returncode == 0, ".env is not in .gitignore"
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ignore[ignore.index("*") :][0] == "*", "the build context is not an allowlist"


# -- the Dockerfile ---------------------------------------------------------------------------


def _instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    out = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    return instructions[starts[-1] :]


def test_the_image_runs_as_a_user_of_its_own() -> None:
    final = _final_stage(_instructions(DOCKERFILE))
    assert final[0] == ("FROM", "python:3.11-slim")
    users = [args for word, args in final if word == "USER"]
    assert users, "the image runs as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert any(word == "RUN" and "useradd" in args and user in args for word, args in final)


def test_the_image_installs_the_project_and_checks_readyz() -> None:
    instructions = _instructions(DOCKERFILE)
    assert any(word == "RUN" and re.search(r"pip install \.$", args) for word, args in instructions)
    final = _final_stage(instructions)
    (check,) = [args for word, args in final if word == "HEALTHCHECK"]
    assert "/readyz" in check
    assert "urllib.request" in check
    assert "curl" not in check  # not in the slim image
    assert ("ENTRYPOINT", '["call-monitor"]') in final
    assert ("CMD", '["run"]') in final


# -- Asterisk's compose entrypoint ------------------------------------------------------------


def test_the_asterisk_entrypoint_adds_the_secret_to_a_copy(tmp_path: Path) -> None:
    shipped = tmp_path / "asterisk_conf"
    shipped.mkdir()
    manager = "[general]\nenabled = yes\nbindaddr = 127.0.0.1\n\n[callmon]\nsecret = CHANGE-ME\n"
    (shipped / "manager.conf").write_text(manager, encoding="utf-8")
    etc = tmp_path / "etc-asterisk"
    etc.mkdir()
    (etc / "modules.conf").write_text("[modules]\nautoload = yes\n", encoding="utf-8")
    args_seen = tmp_path / "args"
    image_entrypoint = tmp_path / "entrypoint.sh"  # the image's: notes what it was given
    image_entrypoint.write_text(f'#!/bin/sh\necho "$*" > {args_seen}\n', encoding="utf-8")
    image_entrypoint.chmod(0o755)
    done = subprocess.run(
        ["sh", str(ASTERISK_ENTRYPOINT), "asterisk", "-f"],
        env={
            "PATH": os.environ["PATH"],
            "ASTERISK_CONF_SOURCE": str(shipped),
            "ASTERISK_CONF_DIR": str(etc),
            "IMAGE_ENTRYPOINT": str(image_entrypoint),
            "AMI_USERNAME": "callmon",
            "AMI_SECRET": "s3cret",
            "MONITOR_ADDRESS": "172.30.57.10",
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert (shipped / "manager.conf").read_text(encoding="utf-8") == manager  # untouched
    assert (etc / "modules.conf").exists()  # the stock files stay
    written = (etc / "manager.conf").read_text(encoding="utf-8")
    assert written.startswith(manager)
    added = written[len(manager) :]
    assert "[callmon](+)\nsecret = s3cret\npermit = 172.30.57.10/255.255.255.255" in added
    assert "[general](+)\nbindaddr = 0.0.0.0" in added
    assert args_seen.read_text(encoding="utf-8") == "asterisk -f\n"  # then the image's own


# -- systemd ----------------------------------------------------------------------------------


def _unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_the_unit_runs_the_daemon_unprivileged_with_its_state_directory() -> None:
    unit = _unit_settings()
    (exec_start,) = unit["ExecStart"]
    assert re.fullmatch(
        r"/\S+/bin/call-monitor run --config /etc/call-monitor/call-monitor\.toml", exec_start
    )
    assert unit["User"] == ["call-monitor"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["StateDirectory"] == ["call-monitor"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["NoNewPrivileges"] == ["yes"]
    # ProtectSystem=strict leaves only the state directory writable: the store must be there.
    store = [v for v in unit["Environment"] if v.startswith("CALLMON_STORE__URL=")]
    assert store == ["CALLMON_STORE__URL=sqlite+aiosqlite:///%S/call-monitor/call-monitor.sqlite3"]
    assert any(v.startswith("-/etc/call-monitor/") for v in unit["EnvironmentFile"])


@pytest.fixture
def runnable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart on this checkout's call-monitor: ``verify`` checks that the
    command exists."""
    here = Path(shutil.which("call-monitor") or REPO / ".venv" / "bin" / "call-monitor")
    if not here.exists():
        pytest.skip("call-monitor is not installed in this environment")
    text = UNIT.read_text(encoding="utf-8")
    (exec_start,) = _unit_settings()["ExecStart"]
    binary = exec_start.split()[0]
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(binary, str(here)), encoding="utf-8")
    return copy


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed")
    assert found is not None
    return found


def test_systemd_reads_the_unit_without_a_warning(runnable_unit: Path) -> None:
    done = subprocess.run(
        [_systemd_analyze(), "verify", str(runnable_unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    # verify exits 0 on an unknown key or a bad value, and says so on stderr.
    assert done.returncode == 0, done.stderr
    assert runnable_unit.name not in done.stdout + done.stderr, done.stdout + done.stderr


def test_systemd_rates_the_unit_well_hardened(runnable_unit: Path) -> None:
    done = subprocess.run(
        [_systemd_analyze(), "security", "--offline=yes", str(runnable_unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if "--offline" in done.stderr:
        pytest.skip("this systemd-analyze has no offline security check")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match[1]) <= 2.0, done.stdout  # systemd calls up to 2.0 "OK"
