"""Entry of the benchmark's child processes, kept light so a child's RSS is its variant's.

``python -m _ingest.child serve ARGS...``: the AMI server (:mod:`_ingest.server`);
``python -m _ingest.child client VARIANT JSON``: one variant's client, which prints one
``RESULT {json}`` line.
"""

from __future__ import annotations

import importlib
import json
import sys

from _ingest.common import ClientArgs, emit, ru_maxrss_kib


def main(argv: list[str]) -> int:
    role, *rest = argv
    if role == "serve":
        code: int = importlib.import_module("_ingest.server").main(rest)
        return code
    if role != "client" or len(rest) != 2:
        raise SystemExit("usage: python -m _ingest.child serve ARGS | client VARIANT JSON")
    variant, payload = rest
    args = ClientArgs(**json.loads(payload))
    module = importlib.import_module(f"_ingest.variant_{variant.replace('-', '_')}")
    try:
        result = module.run(args)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result.setdefault("ru_maxrss_kib", ru_maxrss_kib())
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
