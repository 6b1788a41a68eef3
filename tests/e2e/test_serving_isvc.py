"""InferenceServices on a real embedded platform: replicas are real model server processes,
requests go through the gateway on the platform's port."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import psutil
import pytest
import tritonclient.http as triton

from platform_fixtures import EXAMPLES, shipyard_cmd
from shipyard.client import Client

pytestmark = pytest.mark.e2e
ROW = [6.8, 2.8, 4.8, 1.4]
V2_BODY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROW}]}


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A copy of examples/serving with its models trained by its own script."""
    dest = tmp_path / "serving"
    shutil.copytree(EXAMPLES / "serving", dest, ignore=shutil.ignore_patterns("models"))
    subprocess.run([sys.executable, str(dest / "train_iris.py")], check=True, timeout=120)
    return dest


def eventually(check: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}; last: {last}")


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*shipyard_cmd(), *args], env=env, capture_output=True, text=True, timeout=120
    )


def predictor(c: Client, name: str) -> dict[str, Any]:
    status = c.get("isvc", name).get("status") or {}
    return dict((status.get("components") or {}).get("predictor") or {})


def traffic(c: Client, name: str) -> dict[str, int]:
    return {t["revisionName"]: t["percent"] for t in predictor(c, name).get("traffic") or []}


def replicas(c: Client, name: str) -> list[str]:
    pods = c.list("pods", selector=f"serving.kserve.io/inferenceservice={name}")
    return [
        p["metadata"]["name"]
        for p in pods
        if (p.get("status") or {}).get("phase") in ("Pending", "Running")
        and not p["metadata"].get("deletionTimestamp")
    ]


def test_sklearn_example_through_the_gateway(
    client: Client, cli_env: dict[str, str], examples: Path
) -> None:
    r = cli(cli_env, "apply", "-f", str(examples / "sklearn-iris.yaml"))
    assert r.returncode == 0, r.stderr
    client.wait_isvc_ready("iris", timeout=60)
    url = client.get("isvc", "iris")["status"]["url"]
    assert url == f"{client.url}/serving/default/iris"
    # tritonclient, JSON and binary tensors, through the gateway.
    tc = triton.InferenceServerClient(url.removeprefix("http://"))
    assert tc.is_server_ready() and tc.is_model_ready("iris")
    for binary in (False, True):
        inp = triton.InferInput("x", [2, 4], "FP64")
        inp.set_data_from_numpy(np.array([ROW, [5.1, 3.5, 1.4, 0.2]]), binary_data=binary)
        res = tc.infer("iris", [inp], outputs=[triton.InferRequestedOutput("output-0", binary)])
        assert res.as_numpy("output-0").tolist() == [1, 0]
    # Host-header routing reaches the same service.
    r2 = httpx.post(
        f"{client.url}/serving/v2/models/iris/infer",
        json=V2_BODY,
        headers={"Host": "iris.default.example.com"},
    )
    assert r2.status_code == 200 and r2.json()["outputs"][0]["data"] == [1]
    # CLI: get isvc, predict from a file (V1 and V2).
    got = cli(cli_env, "get", "isvc")
    assert got.returncode == 0 and "iris" in got.stdout and "True" in got.stdout
    out = cli(cli_env, "predict", "iris", "-d", f"@{examples / 'input-v2.json'}")
    assert out.returncode == 0, out.stderr
    assert orjson.loads(out.stdout)["outputs"][0]["data"] == [1, 1]
    out = cli(cli_env, "predict", "iris", "-d", f"@{examples / 'input-v1.json'}")
    assert orjson.loads(out.stdout) == {"predictions": [1, 1]}
    # Errors: unknown service 404, bad input 400 naming the input, both in protocol shape.
    r3 = httpx.post(f"{client.url}/serving/default/nope/v2/models/nope/infer", json=V2_BODY)
    assert r3.status_code == 404 and "nope" in r3.json()["error"]
    bad = {"inputs": [{"name": "feats", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}
    r4 = httpx.post(url + "/v2/models/iris/infer", json=bad)
    assert r4.status_code == 400 and "feats" in r4.json()["error"]


def test_custom_model_example(client: Client, cli_env: dict[str, str], examples: Path) -> None:
    r = cli(cli_env, "apply", "-f", str(examples / "custom-model.yaml"))
    assert r.returncode == 0, r.stderr
    client.wait_isvc_ready("wordcount", timeout=60)
    res = client.predict("wordcount", {"instances": ["a b c", "hello"]})
    assert res == {"predictions": {"word_count": [3, 1]}}


def _split(url: str, n: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    with httpx.Client() as h:
        for _ in range(n):
            r = h.post(url + "/v2/models/iris/infer", json=V2_BODY)
            assert r.status_code == 200
            seen[r.headers["x-shipyard-revision"]] += 1
    return seen


def test_canary_split_rollback_and_promote(client: Client, examples: Path) -> None:
    client.apply(examples / "sklearn-iris.yaml")
    client.wait_isvc_ready("iris", timeout=60)
    v1 = predictor(client, "iris")["latestRolledoutRevision"]
    canary = examples / "canary" / "iris-v2.yaml"
    client.apply(canary)
    eventually(lambda: len(traffic(client, "iris")) == 2, what="the canary split")
    split = traffic(client, "iris")
    v2 = predictor(client, "iris")["latestCreatedRevision"]
    assert v2 != v1 and split == {v1: 80, v2: 20}
    url = client.get("isvc", "iris")["status"]["url"]
    seen = _split(url, 1000)
    assert abs(seen[v2] / 1000 - 0.20) <= 0.05 and seen[v1] + seen[v2] == 1000
    # Rollback: canaryTrafficPercent 0 pins traffic to the last rolled-out revision.
    text = canary.read_text().replace("canaryTrafficPercent: 20", "canaryTrafficPercent: 0")
    canary.write_text(text)
    client.apply(canary)
    eventually(lambda: traffic(client, "iris") == {v1: 100, v2: 0}, what="rollback")
    assert set(_split(url, 50)) == {v1}
    # Promote: removing canaryTrafficPercent sends everything to the new revision.
    canary.write_text(text.replace("    canaryTrafficPercent: 0\n", ""))
    client.apply(canary)
    eventually(lambda: traffic(client, "iris") == {v2: 100}, what="promotion")
    pred = predictor(client, "iris")
    assert pred["latestRolledoutRevision"] == v2 and pred["previousRolledoutRevision"] == v1
    assert set(_split(url, 50)) == {v2}
    eventually(lambda: all(v2 in p for p in replicas(client, "iris")), what="old replicas gone")


def test_stats_endpoint_reports_rate_and_latency_per_revision(
    client: Client, examples: Path
) -> None:
    client.apply(examples / "sklearn-iris.yaml")
    client.wait_isvc_ready("iris", timeout=60)
    v1 = predictor(client, "iris")["latestRolledoutRevision"]
    url = client.get("isvc", "iris")["status"]["url"]
    before = httpx.get(url + "/_stats").json()
    assert before["requests"]["count"] == 0 and before["requests"]["rate"] == 0
    client.apply(examples / "canary" / "iris-v2.yaml")
    eventually(lambda: len(traffic(client, "iris")) == 2, what="the canary split")
    v2 = predictor(client, "iris")["latestCreatedRevision"]
    n = 40
    seen = _split(url, n)
    got = httpx.get(url + "/_stats", params={"window": 300})
    assert got.status_code == 200, got.text
    stats = got.json()
    req = stats["requests"]
    assert req["count"] == req["total"] == n and req["errors"] == 0
    assert req["rate"] > 0 and 0 < req["latencyMs"]["p50"] <= req["latencyMs"]["p95"]
    step = stats["series"]["stepSeconds"]
    assert round(sum(p["rate"] * step for p in stats["series"]["points"])) == n
    revs = {r["revision"]: r for r in stats["revisions"]}
    assert {v1, v2} <= set(revs) and (revs[v1]["percent"], revs[v2]["percent"]) == (80, 20)
    for rev, count in seen.items():
        assert revs[rev]["count"] == count and revs[rev]["rate"] > 0
        assert revs[rev]["latencyMs"]["p95"] > 0 and revs[rev]["replicas"] >= 1
    assert sum(r["count"] for r in revs.values()) == n
    # The endpoint sits beside the model's paths, which still answer; bad input is a 4xx.
    assert httpx.get(url + "/v2/models/iris").status_code == 200
    assert httpx.get(url + "/_stats", params={"window": "x"}).status_code == 400
    assert httpx.post(url + "/_stats").status_code == 405
    nope = httpx.get(f"{client.url}/serving/default/nope/_stats")
    assert nope.status_code == 404 and "nope" in nope.json()["error"]


def test_failed_load_keeps_the_previous_revision_serving(
    client: Client, examples: Path, tmp_path: Path
) -> None:
    client.serve(examples / "models" / "iris-v1", "iris", timeout=60)
    v1 = predictor(client, "iris")["latestRolledoutRevision"]
    empty = tmp_path / "no-model-here"
    empty.mkdir()
    client.serve(empty, "iris", wait=False)

    def blocked() -> dict[str, Any] | None:
        ms = (client.get("isvc", "iris").get("status") or {}).get("modelStatus") or {}
        return ms if ms.get("transitionStatus") == "BlockedByFailedLoad" else None

    ms = eventually(blocked, what="BlockedByFailedLoad")
    assert "no sklearn model" in ms["lastFailureInfo"]["message"]
    assert traffic(client, "iris") == {v1: 100}
    status = client.get("isvc", "iris")["status"]
    ready = {c["type"]: c["status"] for c in status["conditions"]}
    assert ready["Ready"] == "True" and ready["LatestDeploymentReady"] == "False"
    assert client.predict("iris", V2_BODY)["outputs"][0]["data"] == [1]
    with pytest.raises(Exception, match="no sklearn model"):
        client.wait_isvc_ready("iris", timeout=10)


CRASHING_MODEL = """
import os, threading
from shipyard.serving.model import Model

class Crashing(Model):
    def load(self):  # never ready: the server starts, then dies
        threading.Timer(0.5, os._exit, (3,)).start()

    def predict(self, inputs):
        return inputs
"""


def test_a_server_that_dies_before_ready_says_how_it_ended(client: Client, tmp_path: Path) -> None:
    (tmp_path / "crashing").mkdir()
    (tmp_path / "crashing" / "model.py").write_text(CRASHING_MODEL)
    client.serve(tmp_path / "crashing", "crashing", model_format="custom", wait=False)
    with pytest.raises(Exception, match="failed") as info:
        client.wait_isvc_ready("crashing", timeout=60)
    message = str(info.value)
    assert "exited with code 3" in message
    assert "its last log line: serving crashing on 127.0.0.1:" in message


BIG_ANSWER_MODEL = """
from shipyard.serving.model import Model

class Big(Model):
    def load(self):
        self.ready = True

    def predict(self, inputs):
        return [[0.5] * 1000 for _ in range(2000)]
"""


def test_a_client_that_hangs_up_mid_answer_does_not_kill_the_model_server(
    client: Client, tmp_path: Path
) -> None:
    """Clients give up (timeouts, Ctrl-C) while a large answer is being written: the model
    server gets a broken pipe on that connection and goes on serving."""
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "model.py").write_text(BIG_ANSWER_MODEL)
    client.serve(tmp_path / "big", "big", model_format="custom", timeout=60)
    (pod,) = client.list("pods", selector="serving.kserve.io/inferenceservice=big")
    port = int(pod["metadata"]["annotations"]["serving.shipyard.dev/port"])
    body = b'{"instances": [[1, 2]]}'
    request = (
        b"POST /v1/models/big:predict HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    ) + body
    server_pid = int(pod["status"]["containerStatuses"][0]["containerID"].split("/")[2])
    for _ in range(80):
        assert psutil.pid_exists(server_pid), "the model server died"
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(request)
            assert sock.recv(100).startswith(b"HTTP/1.1 200")  # the answer has begun...
            # ...and the client resets the connection.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        time.sleep(0.02)
    assert psutil.pid_exists(server_pid), "the model server died"
    now = client.get("pod", pod["metadata"]["name"])
    assert now["status"]["phase"] == "Running", now["status"]
    url = client.get("isvc", "big")["status"]["url"] + "/v1/models/big:predict"
    answer = httpx.post(url, json={"instances": [[1, 2]]}, timeout=30)
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2000


def test_scale_to_zero_and_first_request_after_succeeds(client: Client, examples: Path) -> None:
    client.apply(
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "iris", "annotations": {"autoscaling.knative.dev/window": "1s"}},
            "spec": {
                "predictor": {
                    "minReplicas": 0,
                    "model": {
                        "modelFormat": {"name": "sklearn"},
                        "storageUri": str(examples / "models" / "iris-v1"),
                    },
                }
            },
        }
    )
    client.wait_isvc_ready("iris", timeout=60)
    eventually(lambda: not replicas(client, "iris"), what="scale to zero")
    url = client.get("isvc", "iris")["status"]["url"]
    results: list[int] = []

    def call() -> None:
        results.append(
            httpx.post(url + "/v2/models/iris/infer", json=V2_BODY, timeout=60).status_code
        )

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 5
    assert replicas(client, "iris")


SLOW_MODEL = """
import time
from shipyard.serving.model import Model

class Slow(Model):
    def predict(self, inputs):
        time.sleep(0.25)
        return [len(inputs)]
"""


def test_autoscaling_up_and_down_on_concurrency(client: Client, tmp_path: Path) -> None:
    (tmp_path / "slow").mkdir()
    (tmp_path / "slow" / "model.py").write_text(SLOW_MODEL)
    client.apply(
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "slow", "annotations": {"autoscaling.knative.dev/window": "3s"}},
            "spec": {
                "predictor": {
                    "minReplicas": 1,
                    "maxReplicas": 3,
                    "scaleMetric": "concurrency",
                    "scaleTarget": 1,
                    "model": {
                        "modelFormat": {"name": "custom"},
                        "storageUri": str(tmp_path / "slow"),
                    },
                }
            },
        }
    )
    client.wait_isvc_ready("slow", timeout=60)
    assert len(replicas(client, "slow")) == 1
    url = client.get("isvc", "slow")["status"]["url"] + "/v1/models/slow:predict"
    stop = threading.Event()
    codes: Counter[int] = Counter()

    def load() -> None:
        with httpx.Client(timeout=60) as h:
            while not stop.is_set():
                codes[h.post(url, json={"instances": [1]}).status_code] += 1

    threads = [threading.Thread(target=load) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        most = eventually(lambda: len(replicas(client, "slow")) >= 3, what="scale up")
        assert most
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert set(codes) == {200}
    assert len(replicas(client, "slow")) <= 3
    eventually(lambda: len(replicas(client, "slow")) == 1, what="scale down to minReplicas")
