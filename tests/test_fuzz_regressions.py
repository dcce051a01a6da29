"""Every input a fuzzer (benchmarks/fuzz_*.py) found crashing, kept and checked again by the
fuzzer's own check: tests/fuzz_regressions/<fuzzer>/<input>."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOUND = sorted((ROOT / "tests" / "fuzz_regressions").glob("*/*"))


def fuzzer(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_inputs_kept() -> None:
    assert FOUND


@pytest.mark.parametrize("path", FOUND, ids=lambda p: f"{p.parent.name}/{p.name[:18]}")
def test_a_crashing_input_no_longer_crashes(path: Path) -> None:
    fuzzer(path.parent.name).check(path.read_bytes())
