"""The soak's AMI server, in its own process: it generates the traffic as it sends it.

A million calls of the monitor user's recordings are ~16 GB (the ``read=all`` ones ~40 GB):
too much for a file, so each round is made from the template when it is due
(:meth:`Traffic.round_bytes`: two ``bytes.replace`` calls) and sent whole.

It accepts one connection and

1. sends the AMI banner;
2. waits for ``Login`` and answers it with the client's ``ActionID``;
3. sends rounds 1..``rounds`` as fast as the socket takes them, answering ``Ping`` (and
   anything else) between two rounds, so replies only ever go out between whole messages;
4. closes its side (FIN after every byte), waits for the client to close, exits.

It prints ``PORT <n>`` once listening and ``SENT <rounds> <bytes> <seconds>`` at the end.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

from _ingest.common import EOL, HOST
from _ingest.server import _Peer

from _soak.traffic import bench_directory, build_traffic

LINGER_SECONDS = 60.0


def serve(
    rounds: int,
    *,
    staff: int,
    departments: int,
    first_extension: int,
    kind: str,
    accept_timeout: float,
) -> int:
    directory = bench_directory(staff, departments, first_extension)
    traffic = build_traffic(list(directory.staff), kind="full" if kind == "full" else "ami")
    with socket.create_server((HOST, 0)) as listener:
        listener.settimeout(accept_timeout)
        print(f"PORT {listener.getsockname()[1]}", flush=True)
        conn, _ = listener.accept()
    conn.settimeout(None)
    peer = _Peer(conn)
    sent_bytes = 0
    sent_rounds = 0
    started = time.perf_counter()
    with conn:
        conn.sendall(traffic.banner.rstrip(EOL) + EOL)
        if not peer.log_in(accept_timeout):
            print("the client left before logging in", file=sys.stderr)
            return 1
        started = time.perf_counter()
        try:
            for round_no in range(1, rounds + 1):
                if peer.gone or peer.logged_off:
                    break
                data = traffic.round_bytes(round_no)
                conn.sendall(data)
                sent_bytes += len(data)
                sent_rounds = round_no
                peer.service(0.0)
        except OSError as exc:  # the client went away mid-stream
            print(f"send failed: {exc}", file=sys.stderr)
            peer.gone = True
        elapsed = time.perf_counter() - started
        peer.hang_up(LINGER_SECONDS)
    print(f"SENT {sent_rounds} {sent_bytes} {elapsed:.6f}", flush=True)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m _soak.child serve")
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--staff", type=int, required=True)
    parser.add_argument("--departments", type=int, required=True)
    parser.add_argument("--first-extension", type=int, required=True)
    parser.add_argument("--kind", choices=["ami", "full"], default="ami")
    parser.add_argument("--accept-timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    return serve(
        args.rounds,
        staff=args.staff,
        departments=args.departments,
        first_extension=args.first_extension,
        kind=args.kind,
        accept_timeout=args.accept_timeout,
    )
