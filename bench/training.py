"""Benchmark: the 2-replica DDP example through Shipyard vs the same script under torchrun.

Peers, measured in the same run, alternating:
- Shipyard: apply examples/training/pytorchjob-ddp.yaml to an embedded platform, until the
  job is Succeeded (also: apply until both replica Pods are Running);
- torchrun: ``torchrun --nproc_per_node=2 ddp.py`` by hand in the same folder.

Prints each figure (median of ROUNDS) and the ratio Shipyard / torchrun.

    .venv/bin/python bench/training.py [ROUNDS]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shipyard.client import Client, read_sources

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "training"
MANIFEST = EXAMPLE / "pytorchjob-ddp.yaml"


def run_torchrun() -> float:
    torchrun = Path(sys.executable).parent / "torchrun"
    start = time.perf_counter()
    subprocess.run(
        [str(torchrun), "--nproc_per_node=2", "ddp.py"],
        cwd=EXAMPLE,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def run_shipyard(c: Client) -> tuple[float, float]:
    docs = read_sources([MANIFEST])
    start = time.perf_counter()
    c.apply_documents(docs)
    both_running = None
    while both_running is None:
        pods = c.list("pods", selector="training.kubeflow.org/job-name=ddp")
        phases = [(p.get("status") or {}).get("phase") for p in pods]
        if len(phases) == 2 and all(ph in ("Running", "Succeeded") for ph in phases):
            both_running = time.perf_counter() - start
        else:
            time.sleep(0.005)
    c.wait("pytorchjob", "ddp", condition="Succeeded", timeout=300)
    total = time.perf_counter() - start
    c.delete("pytorchjob", "ddp", wait=True)
    return total, both_running


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    torchrun_s: list[float] = []
    shipyard_s: list[float] = []
    running_s: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, Client.embedded(tmp) as c:
        run_torchrun()  # warm the page cache for torch's import, for both peers
        for _ in range(rounds):
            torchrun_s.append(run_torchrun())
            total, running = run_shipyard(c)
            shipyard_s.append(total)
            running_s.append(running)
    t, s, r = (statistics.median(x) for x in (torchrun_s, shipyard_s, running_s))
    print(f"rounds: {rounds} (median)")
    print(f"torchrun --nproc_per_node=2 ddp.py : {t:.2f}s")
    print(f"shipyard apply -> Succeeded        : {s:.2f}s")
    print(f"shipyard apply -> both ranks running: {r:.3f}s")
    print(f"ratio shipyard / torchrun          : {s / t:.3f}x")


if __name__ == "__main__":
    main()
