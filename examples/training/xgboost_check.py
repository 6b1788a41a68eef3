"""An XGBoostJob replica that checks the operator's variables with a tiny tracker.

The master (RANK 0) listens on MASTER_ADDR:MASTER_PORT like XGBoost's rabit tracker; each
worker connects and sends its RANK and the WORKER_* values it was given. The master checks
WORLD_SIZE - 1 distinct worker ranks 1..N arrived, each agreeing on WORKER_PORT and
WORKER_ADDRS, and fails otherwise.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time


def master(world: int, addr: str, port: int) -> int:
    server = socket.create_server((addr, port))
    server.settimeout(60)
    seen = {}
    while len(seen) < world - 1:
        conn, _ = server.accept()
        with conn:
            msg = json.loads(conn.makefile().readline())
            seen[msg["rank"]] = msg
    ranks = sorted(seen)
    if ranks != list(range(1, world)):
        print(f"error: worker ranks {ranks}, expected 1..{world - 1}", file=sys.stderr)
        return 1
    mine = (os.environ["WORKER_PORT"], os.environ["WORKER_ADDRS"])
    if any((m["worker_port"], m["worker_addrs"]) != mine for m in seen.values()):
        print(f"error: workers disagree on WORKER_PORT/WORKER_ADDRS: {seen}", file=sys.stderr)
        return 1
    if len(os.environ["WORKER_ADDRS"].split(",")) != world - 1:
        print("error: WORKER_ADDRS does not list every worker", file=sys.stderr)
        return 1
    print(f"tracker: {world - 1} workers joined with ranks {ranks}")
    return 0


def worker(rank: int, addr: str, port: int) -> int:
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = socket.create_connection((addr, port), timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline:
                print("error: tracker not reachable", file=sys.stderr)
                return 1
            time.sleep(0.1)
    msg = {
        "rank": rank,
        "worker_port": os.environ["WORKER_PORT"],
        "worker_addrs": os.environ["WORKER_ADDRS"],
    }
    with conn:
        conn.sendall((json.dumps(msg) + "\n").encode())
    print(f"worker rank {rank} joined the tracker")
    return 0


def main() -> int:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    return master(world, addr, port) if rank == 0 else worker(rank, addr, port)


if __name__ == "__main__":
    sys.exit(main())
