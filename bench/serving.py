"""Serving benchmark: Shipyard's model server (direct and through the gateway) against KServe
0.21's Python server and MLServer 1.7.1, same model, same load generator, same run.

Model: LogisticRegression on iris (joblib). Load: Debian's ``wrk`` with a Lua POST script,
1-row V2 requests to 127.0.0.1 at 1, 8 and 32 connections, 10 s each. KServe and MLServer are
installed by this script into their own venvs under /tmp/shipyard-bench-venvs (never into the
project's venv). Also measured: start to ready (process spawn until the V2 ready endpoint
answers; for Shipyard through the platform, apply until the InferenceService is Ready).

    .venv/bin/python bench/serving.py [--duration 10] [--skip-peers]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

VENVS = Path(os.environ.get("SHIPYARD_BENCH_VENVS", "/tmp/shipyard-bench-venvs"))
ROW = [6.8, 2.8, 4.8, 1.4]
BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [ROW]}]}
CONNECTIONS = (1, 8, 32)
Results = dict[str, dict[int, dict[str, float]]]

KSERVE_SERVER = """
import sys, uuid, joblib, kserve
from kserve import InferResponse, InferOutput

class Iris(kserve.Model):
    def __init__(self, name, path):
        super().__init__(name)
        self.path = path
        self.load()

    def load(self):
        self.model = joblib.load(self.path)
        self.ready = True
        return True

    async def predict(self, payload, headers=None, response_headers=None):
        x = payload.inputs[0].as_numpy()
        y = self.model.predict(x)
        out = InferOutput(name="output-0", shape=list(y.shape), datatype="INT64", data=y.tolist())
        rid = payload.id or str(uuid.uuid4())
        return InferResponse(model_name=self.name, infer_outputs=[out], response_id=rid)

if __name__ == "__main__":
    kserve.ModelServer(http_port=int(sys.argv[2]), grpc_port=int(sys.argv[3]),
                       enable_grpc=False, workers=1).start([Iris("iris", sys.argv[1])])
"""

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '%s'
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


def venv(name: str, packages: list[str]) -> Path:
    """A venv of its own for a peer, created once and reused."""
    path = VENVS / name
    py = path / "bin" / "python"
    marker = path / ".installed"
    wanted = " ".join(packages)
    if marker.exists() and marker.read_text() == wanted:
        return py
    if path.exists():
        shutil.rmtree(path)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    print(f"installing {wanted} into {path} ...", flush=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *packages], check=True)
    marker.write_text(wanted)
    return py


def train(folder: Path) -> Path:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    folder.mkdir(parents=True, exist_ok=True)
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), folder / "model.joblib")
    return folder


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 120) -> float:
    start = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} not ready in {timeout}s")


def wrk(url: str, connections: int, duration: int, lua: Path) -> dict[str, float]:
    threads = min(connections, 2)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(lua),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=duration + 30,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99_ms = float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p99_ms": p99_ms,
        "requests": total,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": 1 if errors else 0,
    }


def check(url: str) -> None:
    r = httpx.post(url, json=BODY, timeout=10)
    r.raise_for_status()
    assert r.json()["outputs"][0]["data"] == [1], r.text


def run_load(name: str, url: str, duration: int, lua: Path, results: Results) -> None:
    check(url)
    for c in CONNECTIONS:
        res = wrk(url, c, duration, lua)
        results.setdefault(name, {})[c] = res
        print(
            f"  {name:<20} c={c:<3} {res['rps']:>9.0f} req/s  p99 {res['p99_ms']:>7.2f} ms  "
            f"non-2xx {res['non2xx']}",
            flush=True,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bench_shipyard_direct(model: Path, duration: int, lua: Path, results: Results) -> float:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shipyard.serving.server",
            "--model",
            f"iris:sklearn:{model}",
            "--http-port",
            str(port),
            "--max-batch-size",
            "32",
            "--max-latency-ms",
            "5",
        ],
    )
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}", proc)
        run_load(
            "shipyard-direct",
            f"http://127.0.0.1:{port}/v2/models/iris/infer",
            duration,
            lua,
            results,
        )
    finally:
        stop(proc)
    return ready


def bench_shipyard_gateway(
    model: Path, duration: int, lua: Path, results: Results
) -> tuple[float, float]:
    """(apply -> Ready for the first service on a fresh platform, which also starts the
    warm pool's zygote; apply -> Ready for the next one, forked warm)."""
    from shipyard.client import Client

    data = Path(tempfile.mkdtemp(prefix="shipyard-bench-"))
    opts: dict[str, Any] = {"batcher": {"maxBatchSize": 32, "maxLatency": 5}, "timeout": 120}
    with Client.embedded(data) as c:
        start = time.perf_counter()
        c.serve(model, "iris", minReplicas=1, maxReplicas=1, **opts)
        first = time.perf_counter() - start
        start = time.perf_counter()
        c.serve(model, "iris-warm", minReplicas=1, maxReplicas=1, **opts)
        warm = time.perf_counter() - start
        c.delete("isvc", "iris-warm")
        url = c.get("isvc", "iris")["status"]["url"] + "/v2/models/iris/infer"
        run_load("shipyard-gateway", url, duration, lua, results)
    shutil.rmtree(data, ignore_errors=True)
    return first, warm


def bench_kserve(model: Path, duration: int, lua: Path, results: Results, tmp: Path) -> float:
    py = venv("kserve", ["kserve==0.21.*", f"scikit-learn=={sklearn_version()}", "joblib"])
    script = tmp / "kserve_iris.py"
    script.write_text(KSERVE_SERVER)
    port = free_port()
    proc = subprocess.Popen(
        [str(py), str(script), str(model / "model.joblib"), str(port), str(free_port())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}", proc)
        run_load(
            "kserve-0.21", f"http://127.0.0.1:{port}/v2/models/iris/infer", duration, lua, results
        )
    finally:
        stop(proc)
    return ready


def bench_mlserver(model: Path, duration: int, lua: Path, results: Results, tmp: Path) -> float:
    py = venv(
        "mlserver",
        [
            "mlserver==1.7.1",
            "mlserver-sklearn==1.7.1",
            "uvloop<0.22",
            f"scikit-learn=={sklearn_version()}",
            "joblib",
        ],
    )
    folder = tmp / "mlserver"
    (folder / "iris").mkdir(parents=True)
    shutil.copy(model / "model.joblib", folder / "iris" / "model.joblib")
    (folder / "iris" / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "iris",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            }
        )
    )
    port = free_port()
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "host": "127.0.0.1",
            }
        )
    )
    proc = subprocess.Popen(
        [str(py.parent / "mlserver"), "start", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}", proc)
        run_load(
            "mlserver-1.7.1",
            f"http://127.0.0.1:{port}/v2/models/iris/infer",
            duration,
            lua,
            results,
        )
    finally:
        stop(proc)
    return ready


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--skip-peers", action="store_true")
    args = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    model = train(tmp / "iris")
    lua = tmp / "post.lua"
    lua.write_text(LUA % json.dumps(BODY))
    results: dict[str, dict[int, dict[str, float]]] = {}
    ready: dict[str, float] = {}
    ready["shipyard-direct (cold process)"] = bench_shipyard_direct(
        model, args.duration, lua, results
    )
    first, warm = bench_shipyard_gateway(model, args.duration, lua, results)
    ready["shipyard apply -> Ready (first, cold pool)"] = first
    ready["shipyard apply -> Ready (warm)"] = warm
    if not args.skip_peers:
        ready["kserve-0.21"] = bench_kserve(model, args.duration, lua, results, tmp)
        ready["mlserver-1.7.1"] = bench_mlserver(model, args.duration, lua, results, tmp)
    print("\nthroughput (1-row V2 requests, wrk, 127.0.0.1)")
    print(f"{'server':<20} {'conns':>5} {'req/s':>9} {'p99 ms':>8} {'non-2xx':>8} {'vs kserve':>9}")
    base = results.get("kserve-0.21", {})
    for name, rows in results.items():
        for c, r in rows.items():
            ratio = r["rps"] / base[c]["rps"] if c in base else float("nan")
            print(
                f"{name:<20} {c:>5} {r['rps']:>9.0f} {r['p99_ms']:>8.2f} "
                f"{r['non2xx']:>8} {ratio:>8.2f}x"
            )
    print("\nstart to ready")
    for name, secs in ready.items():
        print(f"  {name:<34} {secs:6.2f} s")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
