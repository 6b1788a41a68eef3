"""Tier 2 (``make test-k8s``): the Kubernetes runtime against a real API server.

Placement is kube-scheduler's: nodeSelector, node affinity and ``nvidia.com/gpu`` requests
reach the real scheduler, and a Pod that fits no node stays Pending with its reason. The
garbage collector removes a training master's headless Service with its Pod; a serving
replica runs as a Deployment. Start-up errors come from the real API server's RBAC and
namespaces. The node agents are the one stand-in (for kubelets): see ``node_agent.py``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from k8s.kube_cluster import NAMESPACE, Cluster
from shipyard.runtime import kube_objects as ko
from shipyard.runtime.base import Assignment
from shipyard.runtime.kubernetes import KubernetesRuntime, KubernetesUnavailable

Obj = dict[str, Any]


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def rt(kube_cluster: Cluster) -> Iterator[KubernetesRuntime]:
    runtime = KubernetesRuntime(
        NAMESPACE, kubeconfig=str(kube_cluster.kubeconfig("runtime")), delete_on_shutdown=True
    )
    runtime.preflight()
    runtime.begin()
    yield runtime
    runtime.shutdown()


def pod(labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    uid = str(uuid.uuid4())
    container = spec.pop("container", {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"p-{uid[:6]}",
            "namespace": "team-a",
            "uid": uid,
            "labels": {"shipyard.dev/kind": "Test", **(labels or {})},
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "command": ["sh", "-c", "sleep 30"], **container}],
            **spec,
        },
    }


def node_of(kube_cluster: Cluster, p: Obj) -> str:
    core = client.CoreV1Api(kube_cluster.api())

    def bound() -> str | None:
        k = core.read_namespaced_pod(ko.object_name(p), NAMESPACE)
        return k.spec.node_name

    return str(wait_until(bound, "the scheduler to bind the Pod"))


def test_node_selector_reaches_the_scheduler(rt: KubernetesRuntime, kube_cluster: Cluster) -> None:
    p = pod(nodeSelector={"accelerator": "a100"})
    rt.start(p, Assignment())
    assert node_of(kube_cluster, p) == "node-gpu"
    wait_until(lambda: (rt.status(p) or {}).get("phase") == "Running", "Running")
    assert rt.stop(p, 0) or wait_until(lambda: rt.stop(p, 0), "stop")


def test_node_affinity_reaches_the_scheduler(rt: KubernetesRuntime, kube_cluster: Cluster) -> None:
    term = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
        }
    }
    p = pod(affinity=affinity)
    rt.start(p, Assignment())
    assert node_of(kube_cluster, p) == "node-cpu"
    wait_until(lambda: rt.stop(p, 0), "stop")


def test_gpu_request_lands_on_the_gpu_node(rt: KubernetesRuntime, kube_cluster: Cluster) -> None:
    p = pod(container={"resources": {"limits": {"nvidia.com/gpu": 1}}})
    rt.start(p, Assignment())
    assert node_of(kube_cluster, p) == "node-gpu"
    wait_until(lambda: rt.stop(p, 0), "stop")


def test_a_pod_fitting_no_node_stays_pending_with_the_schedulers_reason(
    rt: KubernetesRuntime,
) -> None:
    p = pod(container={"resources": {"limits": {"nvidia.com/gpu": 4}}})
    rt.start(p, Assignment())
    status = wait_until(
        lambda: (s := rt.status(p)) and s.get("reason") == "Unschedulable" and s,
        "the scheduler's verdict",
    )
    assert status["phase"] == "Pending"
    assert "Insufficient nvidia.com/gpu" in status["message"]
    time.sleep(2)
    assert (rt.status(p) or {}).get("phase") == "Pending"
    wait_until(lambda: rt.stop(p, 0), "stop")


def test_master_service_is_garbage_collected_with_its_pod(
    rt: KubernetesRuntime, kube_cluster: Cluster
) -> None:
    labels = {
        "training.kubeflow.org/job-name": f"job-{uuid.uuid4().hex[:6]}",
        "training.kubeflow.org/job-role": "master",
        "shipyard.dev/kind": "PyTorchJob",
    }
    p = pod(labels)
    p["spec"]["containers"][0]["env"] = [
        {"name": "MASTER_ADDR", "value": "127.0.0.1"},
        {"name": "MASTER_PORT", "value": "29500"},
    ]
    rt.start(p, Assignment())
    core = client.CoreV1Api(kube_cluster.api())
    svc = ko.master_service_name(p)
    assert core.read_namespaced_service(svc, NAMESPACE).spec.cluster_ip == "None"
    kpod = core.read_namespaced_pod(ko.object_name(p), NAMESPACE)
    env = {e.name: e.value for e in kpod.spec.containers[0].env}
    assert env["MASTER_ADDR"] == f"{svc}.{NAMESPACE}.svc"
    wait_until(lambda: rt.stop(p, 0), "stop")

    def gone() -> bool:
        try:
            core.read_namespaced_service(svc, NAMESPACE)
            return False
        except client.exceptions.ApiException as exc:
            return exc.status == 404

    wait_until(gone, "the garbage collector to delete the Service")


def test_serving_replica_runs_as_a_deployment(rt: KubernetesRuntime, kube_cluster: Cluster) -> None:
    p = pod({"shipyard.dev/kind": "InferenceService"})
    p["metadata"]["annotations"] = {ko.PORT_ANNOTATION: "9000"}
    rt.start(p, Assignment())
    wait_until(lambda: (rt.status(p) or {}).get("phase") == "Running", "the replica to run")
    apps = client.AppsV1Api(kube_cluster.api())
    assert apps.read_namespaced_deployment(ko.object_name(p), NAMESPACE).spec.replicas == 1
    wait_until(lambda: rt.stop(p, 0), "the Deployment's Pods to go")


def test_rbac_forbidden_is_named_at_start_up(kube_cluster: Cluster) -> None:
    runtime = KubernetesRuntime(NAMESPACE, kubeconfig=str(kube_cluster.kubeconfig("nobody")))
    with pytest.raises(KubernetesUnavailable, match=r"RBAC forbids .* create pods"):
        runtime.preflight()


def test_missing_namespace_is_named_at_start_up(kube_cluster: Cluster) -> None:
    runtime = KubernetesRuntime("no-such-ns", kubeconfig=str(kube_cluster.kubeconfig("admin")))
    with pytest.raises(KubernetesUnavailable, match="'no-such-ns' does not exist"):
        runtime.preflight()
