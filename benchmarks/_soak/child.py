"""Entry of the soak's child processes.

``python -m _soak.child serve ARGS...``: the generating AMI server (:mod:`_soak.server`);
``python -m _soak.child daemon JSON``: the daemon under test (:mod:`_soak.daemon`).
"""

from __future__ import annotations

import importlib
import json
import sys


def main(argv: list[str]) -> int:
    role, *rest = argv
    if role == "serve":
        code: int = importlib.import_module("_soak.server").main(rest)
        return code
    if role != "daemon" or len(rest) != 1:
        raise SystemExit("usage: python -m _soak.child serve ARGS | daemon JSON")
    module = importlib.import_module("_soak.daemon")
    done: int = module.run(module.DaemonArgs(**json.loads(rest[0])))
    return done


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
