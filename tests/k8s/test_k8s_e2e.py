"""Tier 2 end to end (``make test-k8s``): a whole Shipyard platform with
``--runtime kubernetes`` against the real API server, controller-manager and scheduler, its
Pods run by the test node agents (the one stand-in, for kubelets: ``node_agent.py``).

The examples are applied as they are, with the CLI: a Pod, a 2-replica PyTorchJob (DDP over
the master's headless Service name) and an InferenceService (a Deployment per replica,
requests through the gateway), and the iris pipeline (each step a Kubernetes Pod).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as kclient

from k8s.kube_cluster import NAMESPACE, Cluster
from platform_fixtures import EXAMPLES, shipyard_cmd
from shipyard.client import Client

pytestmark = pytest.mark.e2e


@pytest.fixture
def platform(
    kube_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Client]:
    monkeypatch.setenv("SHIPYARD_RESTART_BACKOFF", "0.05")
    c = Client.embedded(
        tmp_path / "shipyard",
        runtime="kubernetes",
        kube_namespace=NAMESPACE,
        kubeconfig=str(kube_cluster.kubeconfig("runtime")),
    )
    try:
        yield c
    finally:
        c.close()


def cli(c: Client, *args: str) -> str:
    env = {**os.environ, "SHIPYARD_URL": c.url}
    proc = subprocess.run(
        [*shipyard_cmd(), *args], env=env, capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def k8s_pods(cluster: Cluster, selector: str) -> list[Any]:
    core = kclient.CoreV1Api(cluster.api())
    return list(core.list_namespaced_pod(NAMESPACE, label_selector=selector).items)


def test_pod_example_runs_as_a_kubernetes_pod(platform: Client, kube_cluster: Cluster) -> None:
    cli(platform, "apply", "-f", str(EXAMPLES / "pod.yaml"))
    cli(platform, "wait", "pod/hello", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=120s")
    assert "GREETING=ahoy" in cli(platform, "logs", "pod/hello")
    pods = k8s_pods(kube_cluster, "shipyard.dev/namespace=default")
    hello = [
        p for p in pods if p.metadata.annotations.get("shipyard.dev/pod-name") == "default/hello"
    ]
    assert hello and hello[0].spec.node_name in ("node-gpu", "node-cpu")
    assert hello[0].spec.containers[0].image == "python:3.11-slim"
    status = platform.get("pod", "hello")["status"]
    assert not any(c["type"] == "FieldsNotHonoured" for c in status.get("conditions") or [])
    cli(platform, "delete", "pod", "hello")

    def gone() -> bool:
        return not [
            p
            for p in k8s_pods(kube_cluster, "shipyard.dev/namespace=default")
            if p.metadata.annotations.get("shipyard.dev/pod-name") == "default/hello"
        ]

    import time

    deadline = time.monotonic() + 60
    while not gone():
        assert time.monotonic() < deadline, "the Kubernetes Pod outlived the Shipyard Pod"
        time.sleep(0.2)


def test_two_replica_pytorchjob(platform: Client, kube_cluster: Cluster) -> None:
    pytest.importorskip("torch")
    cli(platform, "apply", "-f", str(EXAMPLES / "training" / "pytorchjob-ddp.yaml"))
    cli(platform, "wait", "pytorchjob/ddp", "--for=condition=Succeeded", "--timeout=300s")
    logs = cli(platform, "logs", "pytorchjob/ddp")
    assert "[master-0] rank 0/2: weights identical across ranks: True" in logs
    assert "[worker-0] rank 1/2: weights identical across ranks: True" in logs
    pods = k8s_pods(kube_cluster, "training.kubeflow.org/job-name=ddp")
    assert len(pods) == 2
    env = {e.name: e.value for e in pods[0].spec.containers[0].env}
    assert env["MASTER_ADDR"].endswith(f".{NAMESPACE}.svc")


def test_inference_service_replica_is_a_deployment(
    platform: Client, kube_cluster: Cluster, tmp_path: Path
) -> None:
    dest = tmp_path / "serving"
    shutil.copytree(EXAMPLES / "serving", dest, ignore=shutil.ignore_patterns("models"))
    subprocess.run([sys.executable, str(dest / "train_iris.py")], check=True, timeout=120)
    cli(platform, "apply", "-f", str(dest / "sklearn-iris.yaml"))
    platform.wait_isvc_ready("iris", timeout=180)
    url = platform.get("isvc", "iris")["status"]["url"]
    body = {
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [6.8, 2.8, 4.8, 1.4]}]
    }
    r = httpx.post(url + "/v2/models/iris/infer", json=body, timeout=30)
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [1]
    apps = kclient.AppsV1Api(kube_cluster.api())
    deps = apps.list_namespaced_deployment(
        NAMESPACE, label_selector="shipyard.dev/kind=InferenceService,shipyard.dev/owner=iris"
    ).items
    assert deps and deps[0].spec.replicas == 1


def test_pipeline_example(platform: Client, kube_cluster: Cluster) -> None:
    cli(platform, "run", str(EXAMPLES / "pipelines" / "iris_train.py"), "--name", "iris", "--watch")
    st = platform.get("pipelineruns", "iris")["status"]
    assert st["phase"] == "Succeeded"
    assert st["tasks"]["evaluate"]["outputs"]["Output"] >= 0.9
    steps = k8s_pods(kube_cluster, "shipyard.dev/kind=PipelineRun,shipyard.dev/owner=iris")
    assert len(steps) >= 2 and all(p.status.phase == "Succeeded" for p in steps)
