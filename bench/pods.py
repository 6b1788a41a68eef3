"""Foundation benchmark: Pod lifecycle overhead, throughput, list latency, start-up time.

Runs a real ``shipyard up`` in a subprocess (SQLite in a temp folder) and drives it with the
HTTP client, as a user would. Not part of the tests; prints its figures:

  (a) apply -> Succeeded for a Pod running ``true``, median of N, beside plain ``subprocess``
  (b) 500 Pods applied at once, until all have finished: Pods/s (median of 3 bursts, each
      on a fresh ``shipyard up``)
  (c) one page of 100 from 100,000 resources in SQLite: p50/p95 through the REST API,
      beside the same keyset query on the store directly
  (d) time from starting ``shipyard up`` until /healthz answers

    .venv/bin/python bench/pods.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from shipyard.client import Client
from shipyard.core.store import Store
from shipyard.server.serve import free_port

console = Console()
BURST_ROUNDS = 3
SHIPYARD = str(Path(sys.executable).parent / "shipyard")


def pod(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "command": ["true"]}]},
    }


class Server:
    """``shipyard up`` in a subprocess; ``startup`` is Popen -> /healthz 200, in seconds."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, SHIPYARD_DATA_DIR=str(data_dir))
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [SHIPYARD, "up", "--port", str(self.port), "--data-dir", str(data_dir)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        with httpx.Client() as http:
            while True:
                try:
                    if http.get(self.url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError(self.proc.stderr.read().decode() if self.proc.stderr else "")
                time.sleep(0.002)
        self.startup = time.perf_counter() - t0

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@contextlib.contextmanager
def platform(tmp: str | Path, embedded: bool = False) -> Iterator[Client]:
    """A client of a ``shipyard up`` started here (state under ``tmp``; idle once its start-up
    warm-up is done), as users run it, or with ``embedded`` of a platform in this process.
    The pipelines and tuning benchmarks use it too."""
    with platform_and_cpu(tmp, embedded) as (c, _):
        yield c


@contextlib.contextmanager
def platform_and_cpu(
    tmp: str | Path, embedded: bool = False
) -> Iterator[tuple[Client, Callable[[], float]]]:
    """:func:`platform`, and a function that returns the CPU seconds the platform has used so
    far: ``shipyard up`` and every process under it (warm pools, the containers they reaped),
    or with ``embedded`` this process (client included) and its children."""
    if embedded:
        with Client.embedded(Path(tmp) / "sy") as c:
            yield c, lambda: tree_cpu(os.getpid())
        return
    server = Server(Path(tmp) / "sy")
    try:
        settle(server)
        with Client(server.url) as c:
            yield c, lambda: tree_cpu(server.proc.pid)
    finally:
        server.stop()


def tree_cpu(pid: int) -> float:
    """CPU seconds (user and system) of a process and all processes under it, including the
    children they have already reaped."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def bench_single(c: Client, n: int) -> tuple[float, float]:
    for i in range(5):  # warm up the connection, the server's paths and the page cache
        c.apply(pod(f"warm-{i}"))
        c.wait("pod", f"warm-{i}", phase="Succeeded", timeout=30)
    times = []
    for i in range(n):
        t = time.perf_counter()
        c.apply(pod(f"single-{i}"))
        c.wait("pod", f"single-{i}", phase="Succeeded,Failed", timeout=30)
        times.append(time.perf_counter() - t)
    plain = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(["true"], check=True)
        plain.append(time.perf_counter() - t)
    return statistics.median(times), statistics.median(plain)


def settle(server: Server, timeout: float = 60.0) -> None:
    """Wait until ``shipyard up`` and its processes are idle: its start-up warms a Python
    worker with scikit-learn in the background (about 1 CPU-second), which a throughput
    figure should not count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = tree_cpu(server.proc.pid)
        time.sleep(0.5)
        if tree_cpu(server.proc.pid) - before < 0.025:
            return


def bench_burst(url: str, n: int) -> tuple[float, int, float]:
    """Apply ``n`` Pods at once from 8 keep-alive connections; seconds until all have
    finished, Pods not Succeeded, and the CPU seconds this load generator used.

    The load generator shares the 2 cores with the platform, so it is kept lean (as wrk is
    for HTTP servers): plain ``http.client`` POSTs of pre-encoded bodies, and a watch that
    asks the server for only the finished Pods (``phase=Succeeded,Failed``)."""
    import http.client
    import resource
    from urllib.parse import urlsplit

    import orjson

    done: set[str] = set()
    finished = threading.Event()
    watcher = Client(url)
    rv = watcher.list_page("pods", limit=1)["metadata"]["resourceVersion"]

    def watch() -> None:
        for ev in watcher.watch(
            "pods",
            selector="bench=burst",
            resource_version=rv,
            timeout=120,
            phase="Succeeded,Failed",
        ):
            done.add(ev["object"]["metadata"]["name"])
            if len(done) >= n:
                finished.set()
                return

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    host = urlsplit(url)
    bodies = []
    for i in range(n):
        obj = pod(f"burst-{i}")
        obj["metadata"]["labels"] = {"bench": "burst"}
        bodies.append(orjson.dumps(obj))
    headers = {"Content-Type": "application/json"}
    path = "/api/v1/namespaces/default/pods"

    def create(worker: int) -> list[int]:
        conn = http.client.HTTPConnection(host.hostname or "127.0.0.1", host.port)
        codes = []
        for body in bodies[worker::8]:
            conn.request("POST", path, body, headers)
            resp = conn.getresponse()
            resp.read()
            codes.append(resp.status)
        conn.close()
        return codes

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        codes = [c for batch in pool.map(create, range(8)) for c in batch]
    finished.wait(300)
    elapsed = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
    if any(c != 201 for c in codes):
        raise RuntimeError(f"creates answered {sorted(set(codes))}, not all 201")
    failed = sum(
        1
        for p in watcher.list("pods", selector="bench=burst")
        if (p.get("status") or {}).get("phase") != "Succeeded"
    )
    watcher.close()
    return elapsed, failed, cpu


def fill(data_dir: Path, n: int) -> None:
    store = Store(f"sqlite:///{data_dir / 'shipyard.db'}")
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
    if store.try_get("Namespace", "", "default") is None:
        store.create("Namespace", ns)
    with console.status(f"writing {n:,} ConfigMaps") as status:
        for i in range(n):
            store.create(
                "ConfigMap",
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": f"cm-{i:06d}",
                        "namespace": "default",
                        "labels": {"shard": str(i % 10)},
                    },
                    "data": {"key": "value " * 20, "index": str(i)},
                },
            )
            if i % 5000 == 0:
                status.update(f"writing {n:,} ConfigMaps ({i:,})")
    store.close()


def bench_list(
    url: str, data_dir: Path, n: int, requests: int
) -> tuple[float, float, float, float]:
    names = [f"cm-{i:06d}" for i in random.Random(1).sample(range(n - 200), requests)]
    import base64

    import orjson

    tokens = [base64.urlsafe_b64encode(orjson.dumps(["default", nm])).decode() for nm in names]
    path = "/api/v1/namespaces/default/configmaps"
    api = []
    with httpx.Client(base_url=url) as http:
        for tok in tokens[:20]:
            http.get(path, params={"limit": "100", "continue": tok})
        for tok in tokens:
            t = time.perf_counter()
            r = http.get(path, params={"limit": "100", "continue": tok})
            api.append(time.perf_counter() - t)
            assert len(r.json()["items"]) == 100
    store = Store(f"sqlite:///{data_dir / 'shipyard.db'}")
    direct = []
    for tok in tokens:
        t = time.perf_counter()
        page = store.list_raw("ConfigMap", "default", limit=100, continue_=tok)
        direct.append(time.perf_counter() - t)
        assert len(page.items) == 100
    store.close()
    return pct(api, 50), pct(api, 95), pct(direct, 50), pct(direct, 95)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = ap.parse_args()
    n_single, n_burst, n_list = (10, 100, 10_000) if args.quick else (50, 500, 100_000)
    ms = 1000.0
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        startups = []
        for i in range(3):
            d = Path(tmp) / f"start-{i}"
            s = Server(d)
            startups.append(s.startup)
            s.stop()
        rows.append(
            (
                "shipyard up -> /healthz (median of 3)",
                f"{statistics.median(startups):.2f} s",
                "<= 1.5 s",
            )
        )

        server = Server(Path(tmp) / "pods")
        try:
            # Both figures are of the platform at rest, after its start-up warm-up (a
            # scikit-learn worker, ~1 CPU-second, whose cost the start-up figure shows).
            settle(server)
            with Client(server.url) as c:
                single, plain = bench_single(c, n_single)
            rows.append(
                (
                    f"(a) apply -> Succeeded, `true` (median of {n_single})",
                    f"{single * ms:.1f} ms",
                    "",
                )
            )
            rows.append(("    plain subprocess.run(['true'])", f"{plain * ms:.2f} ms", ""))
            rows.append(("    platform overhead", f"{(single - plain) * ms:.1f} ms", "<= 20 ms"))
        finally:
            server.stop()

        # (b) on a shared 2-core machine one burst is noisy (the same code gave 360-600
        # Pods/s in back-to-back runs): three bursts, each on a fresh platform at rest,
        # and their median, as the pipelines and tuning benchmarks take medians of rounds.
        bursts: list[tuple[float, int, float]] = []
        for i in range(BURST_ROUNDS):
            server = Server(Path(tmp) / f"burst-{i}")
            try:
                settle(server)
                bursts.append(bench_burst(server.url, n_burst))
            finally:
                server.stop()
        elapsed, _, gen_cpu = sorted(bursts)[len(bursts) // 2]
        rates = ", ".join(f"{n_burst / b[0]:.0f}" for b in bursts)
        rows.append(
            (
                f"(b) {n_burst} Pods at once until all finished (median of {BURST_ROUNDS})",
                f"{elapsed:.2f} s = {n_burst / elapsed:.0f} Pods/s",
                ">= 500 Pods/s",
            )
        )
        rows.append(("    each burst, Pods/s", rates, ""))
        rows.append(
            ("    CPU used by the load generator", f"{gen_cpu / n_burst * ms:.2f} ms/Pod", "")
        )
        failed = sum(b[1] for b in bursts)
        if failed:
            rows.append(("    Pods not Succeeded (all bursts)", str(failed), "0"))

        d = Path(tmp) / "list"
        d.mkdir()
        fill(d, n_list)
        server = Server(d)
        try:
            p50, p95, d50, d95 = bench_list(server.url, d, n_list, 300)
        finally:
            server.stop()
        rows.append(
            (
                f"(c) page of 100 of {n_list:,} via REST p50 / p95",
                f"{p50 * ms:.2f} / {p95 * ms:.2f} ms",
                "p95 <= 15 ms",
            )
        )
        rows.append(
            (
                "    same keyset page on the store directly p50 / p95",
                f"{d50 * ms:.2f} / {d95 * ms:.2f} ms",
                "",
            )
        )

    table = Table(title="Shipyard foundation benchmark")
    table.add_column("measure")
    table.add_column("result", justify="right")
    table.add_column("target")
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
