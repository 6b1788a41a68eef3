"""Pipelines benchmark: Shipyard's warm path against kfp.local, side by side, one run.

Peer: kfp.local from the ``kfp`` SDK in a separate venv (created here with pip when missing:
$KFP_BENCH_VENV, default /tmp/kfp-bench-venv), SubprocessRunner(use_venv=False), components
with install_kfp_package=False (its fastest configuration).

Workloads: (a) 10 trivial steps in a line (each adds 1); (b) 20 independent steps then a join;
(c) 3 steps passing a small Dataset; then a fan-out of 100 (every round) and 1,000 tasks
(in the first three rounds) on Shipyard.
Caching is off everywhere. Run: ``.venv/bin/python bench/pipelines.py [ROUNDS] [--embedded]``.
Shipyard runs as users run it: ``shipyard up`` in its own process (SQLite in a temporary
folder), driven by the Python client from this one; ``--embedded`` runs the platform in this
process instead (``Client.embedded``: client and control plane then share one interpreter).

On a shared machine single runs are noisy: (a)-(c) run ROUNDS times (default 5), each round
running kfp.local and then Shipyard, so both see the same load; the medians are compared.
The growth ratio compares medians too: of the 100-task fan-outs (one per round) and of the
1,000-task ones (one in each of the first three rounds, so that one load spike does not
decide it). The load average is printed with the figures.

It also prints the CPU time per step of (a) on both sides, all processes counted (for Shipyard
the control plane, its warm pool and the containers, and this client; for kfp.local its
process and the task processes it started): on two cores a step's processes compete, so the
CPU a step takes bounds its wall time.

Nothing is deleted until every round is measured: kfp.local's folders of all rounds stay
until the end. A Shipyard step needs three new files (its log, its working folder, its
outputs), and on ext4 without a journal (this machine's disk) making one scans past every
inode freed in the same block group in the last minutes: after a burst of deletions under
/tmp (a test run, an earlier run of this benchmark, which removes its folder as it ends)
making a file there took ~0.75 ms instead of ~0.015 ms. The warm pool makes them ahead
while it is idle (runtime/warm.py, _Stock): 64 steps' worth, which covers (a)-(c) of a
round but not the fan-outs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from pods import platform_and_cpu
from shipyard import dsl
from shipyard.client import Client
from shipyard.dsl import Dataset, Input, Output

VENV = Path(os.environ.get("KFP_BENCH_VENV", "/tmp/kfp-bench-venv"))

KFP_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, tempfile, time
    from kfp import dsl, local
    from kfp.dsl import Dataset, Input, Output

    local.init(runner=local.SubprocessRunner(use_venv=False),
               pipeline_root=tempfile.mkdtemp(), enable_caching=False)

    @dsl.component(install_kfp_package=False)
    def add(x: int) -> int:
        return x + 1

    @dsl.component(install_kfp_package=False)
    def join() -> int:
        return 0

    @dsl.component(install_kfp_package=False)
    def make(out: Output[Dataset]):
        open(out.path, "w").write("1,2,3")

    @dsl.component(install_kfp_package=False)
    def transform(inp: Input[Dataset], out: Output[Dataset]):
        open(out.path, "w").write(open(inp.path).read() + ",4")

    @dsl.component(install_kfp_package=False)
    def count(inp: Input[Dataset]) -> int:
        return len(open(inp.path).read().split(","))

    @dsl.pipeline
    def line() -> int:
        t = add(x=0)
        for _ in range(9):
            t = add(x=t.output)
        return t.output

    @dsl.pipeline
    def fan() -> int:
        tasks = [add(x=i) for i in range(20)]
        return join().after(*tasks).output

    @dsl.pipeline
    def data() -> int:
        m = make()
        t = transform(inp=m.outputs["out"])
        return count(inp=t.outputs["out"]).output

    def cpu():
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + kids.ru_utime + kids.ru_stime

    out = {}
    for name, p in (("a", line), ("b", fan), ("c", data)):
        t0, c0 = time.perf_counter(), cpu()
        p()
        out[name] = time.perf_counter() - t0
        out[name + "_cpu"] = cpu() - c0
    print(json.dumps(out))
    """
)


@dsl.component
def add(x: int) -> int:
    return x + 1


@dsl.component
def join() -> int:
    return 0


@dsl.component
def make(out: Output[Dataset]):
    with open(out.path, "w") as fh:
        fh.write("1,2,3")


@dsl.component
def transform(inp: Input[Dataset], out: Output[Dataset]):
    with open(inp.path) as src, open(out.path, "w") as dst:
        dst.write(src.read() + ",4")


@dsl.component
def count(inp: Input[Dataset]) -> int:
    with open(inp.path) as fh:
        return len(fh.read().split(","))


@dsl.pipeline
def line() -> int:
    t = add(x=0)
    for _ in range(9):
        t = add(x=t.output)
    return t.output


@dsl.pipeline
def fan() -> int:
    tasks = [add(x=i) for i in range(20)]
    return join().after(*tasks).output


@dsl.pipeline
def data() -> int:
    m = make()
    t = transform(inp=m.outputs["out"])
    return count(inp=t.outputs["out"]).output


@dsl.pipeline
def wide(items: list) -> None:
    with dsl.ParallelFor(items) as item:
        add(x=item)


def kfp_peer(tmp: str) -> dict[str, float] | None:
    """One round of kfp.local, in the new folder ``tmp`` (removed by the caller, only once
    all rounds of both sides are measured: see main)."""
    py = VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {VENV} with kfp (pip)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "kfp"], check=True)
    os.makedirs(tmp)
    script = Path(tmp) / "kfp_bench.py"
    script.write_text(KFP_SCRIPT)
    # TMPDIR: kfp.local leaves its pipeline root and a folder per task under the temp
    # folder; pointing it at this one removes them with it, at the end.
    env = {**os.environ, "TMPDIR": tmp}
    r = subprocess.run([str(py), str(script)], capture_output=True, text=True, cwd=tmp, env=env)
    if r.returncode != 0:
        print("kfp.local failed:", r.stderr[-2000:])
        return None
    result: dict[str, float] = json.loads(r.stdout.strip().splitlines()[-1])
    return result


def timed(c: Client, pipeline: object, params: dict[str, object] | None = None) -> float:
    t0 = time.perf_counter()
    st = c.run_pipeline(pipeline, params or {}, cache=False).wait(1800)
    elapsed = time.perf_counter() - t0
    if st["phase"] != "Succeeded":
        raise SystemExit(f"run failed: {st.get('message')}")
    return elapsed


def load() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    embedded = "--embedded" in sys.argv[1:]
    rounds = int(args[0]) if args else 5
    theirs_all: dict[str, list[float]] = {"a": [], "b": [], "c": [], "a_cpu": []}
    ours_all: dict[str, list[float]] = {"a": [], "b": [], "c": [], "a_cpu": []}
    fan_100s: list[float] = []
    fan_1000s: list[float] = []
    print(f"load average at start: {load()}")
    print("shipyard: " + ("embedded in this process" if embedded else "`shipyard up`, own process"))
    with tempfile.TemporaryDirectory() as tmp, platform_and_cpu(tmp, embedded) as (c, cpu):
        timed(c, line)  # warm-up: starts the zygote (imports once), not measured
        for i in range(rounds):
            got = kfp_peer(os.path.join(tmp, f"kfp-{i}"))
            for key in theirs_all:
                theirs_all[key].append(got[key] if got else float("nan"))
            # CPU: the platform's processes (and, when it runs apart, this client's), until
            # the last container is reaped and the warm pool has remade what (a) used of
            # the entries it makes ahead (see runtime/warm.py): both are (a)'s work.
            before = cpu() + (0.0 if embedded else time.process_time())
            ours_all["a"].append(timed(c, line))
            time.sleep(0.2)
            after = cpu() + (0.0 if embedded else time.process_time())
            ours_all["a_cpu"].append(after - before)
            ours_all["b"].append(timed(c, fan))
            ours_all["c"].append(timed(c, data))
            # The 100-task fan-out takes under a second, so one load spike moves it (and the
            # growth ratio) by half: it runs every round and its median counts.
            fan_100s.append(timed(c, wide, {"items": list(range(100))}))
            if len(fan_1000s) < 3:
                fan_1000s.append(timed(c, wide, {"items": list(range(1000))}))
        fan_100 = statistics.median(fan_100s)
        fan_1000 = statistics.median(fan_1000s)
    ours = {k: statistics.median(v) for k, v in ours_all.items()}
    peer = {k: statistics.median(v) for k, v in theirs_all.items()}
    steps = {"a": 10, "b": 21, "c": 3}
    print(f"load average at end: {load()}  (medians of {rounds} rounds)")
    print("\nworkload                         shipyard    kfp.local   speed-up")
    for key, label in (("a", "(a) 10 steps in a line"), ("b", "(b) 20 independent + join"),
                       ("c", "(c) 3 steps passing a Dataset")):  # fmt: skip
        theirs = peer[key]
        print(f"{label:<32} {ours[key]:8.3f}s   {theirs:8.3f}s   {theirs / ours[key]:6.1f}x")
    for key in ("a", "b", "c"):
        print(f"shipyard per-step wall time ({key}): {ours[key] / steps[key] * 1000:.1f} ms")
    # On two cores a step's processes and threads compete: CPU per step bounds the wall time.
    print(
        f"CPU per step (a), all processes: shipyard {ours['a_cpu'] / 10 * 1000:.1f} ms, "
        f"kfp.local {peer['a_cpu'] / 10 * 1000:.1f} ms ({peer['a_cpu'] / ours['a_cpu']:.1f}x)"
    )
    print(
        f"fan-out 100 tasks:   {fan_100:.2f}s ({fan_100 / 100 * 1000:.1f} ms/task, median of "
        f"{rounds})"
    )
    print(
        f"fan-out 1000 tasks:  {fan_1000:.2f}s ({fan_1000 / 1000 * 1000:.1f} ms/task, median of "
        f"{len(fan_1000s)}: {', '.join(f'{t:.2f}' for t in fan_1000s)})"
    )
    print(f"growth 100 -> 1000 tasks: {fan_1000 / fan_100:.1f}x for 10x the tasks")


if __name__ == "__main__":
    main()
