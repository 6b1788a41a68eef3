"""The program the training tests run as replicas (a real process, no torch needed).

Modes (argv[1]):
- ``rendezvous``: rank 0 listens on MASTER_ADDR:MASTER_PORT until WORLD_SIZE - 1 peers have
  connected; the others connect (retrying) and send their RANK, as a process group would.
  Prints the env contract as JSON first.
- ``sleep``: print ``started`` and sleep (to be killed or stopped).
- ``fail-once KEY CODE``: on the first run for KEY (marker in $MARKERS), exit with CODE, or
  kill itself with SIGKILL when CODE is ``kill``; later runs behave as ``rendezvous``.
- ``exit CODE``: exit with CODE.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

CONTRACT = [
    "MASTER_ADDR",
    "MASTER_PORT",
    "WORLD_SIZE",
    "RANK",
    "PET_NNODES",
    "PET_NPROC_PER_NODE",
    "PET_NODE_RANK",
    "PET_MASTER_ADDR",
    "PET_MASTER_PORT",
    "PYTHONUNBUFFERED",
]


def rendezvous() -> int:
    print("env " + json.dumps({k: os.environ.get(k) for k in CONTRACT}))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    if rank == 0:
        server = socket.create_server((addr, port))
        server.settimeout(60)
        peers = set()
        while len(peers) < world - 1:
            conn, _ = server.accept()
            with conn:
                peers.add(int(conn.makefile().readline()))
        print(f"rendezvous complete with ranks {sorted(peers)}")
        print("loss=0.25 accuracy=0.75")
        return 0
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection((addr, port), timeout=2) as conn:
                conn.sendall(f"{rank}\n".encode())
            print(f"rank {rank} joined")
            return 0
        except OSError:
            if time.monotonic() > deadline:
                return 1
            time.sleep(0.05)


def main() -> int:
    mode = sys.argv[1]
    if mode == "sleep":
        print("started", flush=True)
        time.sleep(300)
        return 0
    if mode == "exit":
        return int(sys.argv[2])
    if mode == "fail-once":
        marker = Path(os.environ["MARKERS"]) / sys.argv[2]
        if not marker.exists():
            marker.write_text("x")
            if sys.argv[3] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            return int(sys.argv[3])
        if len(sys.argv) > 4:  # a second behaviour for later runs
            return int(sys.argv[4])
    return rendezvous()


if __name__ == "__main__":
    sys.exit(main())
