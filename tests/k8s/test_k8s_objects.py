"""Tier 1 of the Kubernetes runtime (always run by ``make test``).

- Every object the runtime generates, for every kind of Shipyard Pod, and every manifest
  ``kubectl kustomize`` renders from ``deploy/``, validated strictly (unknown fields are
  errors) with ``kubernetes-validate`` against Kubernetes 1.30 and the newest schema it
  bundles.
- The runtime's logic, with the client's API classes patched by the test double in
  ``fake_kube.py`` (the only double here; tier 2 uses a real API server).
- Bad input at start-up, for real: an unreachable API server (a closed port on
  127.0.0.1), a broken kubeconfig, RBAC refusing verbs, a missing namespace; and
  ``shipyard up --runtime kubernetes`` printing one line, no traceback.
"""

from __future__ import annotations

import copy
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes import client as kclient
from kubernetes_validate.utils import latest_version

from k8s.fake_kube import FakeCluster, install
from shipyard.runtime import kube_objects as ko
from shipyard.runtime.base import Assignment
from shipyard.runtime.kubernetes import (
    REQUIRED_ACCESS,
    KubernetesRuntime,
    KubernetesUnavailable,
    pod_status,
)

Obj = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ("1.30.0", latest_version())


def validate(obj: Obj) -> None:
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            pytest.fail(
                f"{obj['kind']} {obj['metadata'].get('name')} invalid for Kubernetes "
                f"{version} at {where}: {exc.message}"
            )


def with_uid(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    out["metadata"]["uid"] = str(uuid.uuid4())
    return out


def shipyard_pod(name: str, labels: dict[str, str], spec: Obj, **annotations: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "uid": str(uuid.uuid4()),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {"apiVersion": "shipyard.dev/v1", "kind": "Owner", "name": "o", "uid": "u1"}
            ],
        },
        "spec": spec,
    }


FULL_SPEC: Obj = {
    "restartPolicy": "OnFailure",
    "serviceAccountName": "trainer",
    "imagePullSecrets": [{"name": "regcred"}],
    "nodeSelector": {"accelerator": "a100"},
    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        },
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 50,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {"shipyard.dev/owner": "job"}},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        },
    },
    "volumes": [
        {"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}},
        {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
    ],
    "initContainers": [{"name": "fetch", "command": ["sh", "-c", "true"]}],
    "containers": [
        {
            "name": "main",
            "image": "python:3.11",
            "command": ["python", "-c", "print(1)"],
            "env": [
                {"name": "A", "value": "1"},
                {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
            "envFrom": [{"secretRef": {"name": "creds"}}],
            "resources": {
                "requests": {"cpu": "2", "memory": "4Gi"},
                "limits": {"memory": "8Gi", "nvidia.com/gpu": 2},
            },
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "ports": [{"containerPort": 8080}],
        }
    ],
}

TRAIN_LABELS = {
    "shipyard.dev/namespace": "team-a",
    "shipyard.dev/owner": "mnist",
    "shipyard.dev/kind": "PyTorchJob",
    "training.kubeflow.org/job-name": "mnist",
    "training.kubeflow.org/replica-type": "master",
}


def train_spec() -> Obj:
    return {
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "pytorch",
                "image": "pytorch/pytorch:2.3",
                "command": ["torchrun", "train.py"],
                "env": [
                    {"name": "MASTER_ADDR", "value": "127.0.0.1"},
                    {"name": "MASTER_PORT", "value": "41234"},
                    {"name": "PET_RDZV_ENDPOINT", "value": "127.0.0.1:41234"},
                ],
            }
        ],
    }


def serving_pod() -> Obj:
    return shipyard_pod(
        "sklearn-iris-00001-ab12cd",
        {
            "shipyard.dev/namespace": "team-a",
            "shipyard.dev/owner": "sklearn-iris",
            "shipyard.dev/kind": "InferenceService",
        },
        {
            "restartPolicy": "Never",
            "containers": [
                {"name": "kserve-container", "command": ["python", "-m", "shipyard.serving"]}
            ],
        },
        **{ko.PORT_ANNOTATION: "9001"},
    )


def every_kind() -> list[Obj]:
    master = shipyard_pod(
        "mnist-master-0", {**TRAIN_LABELS, "training.kubeflow.org/job-role": "master"}, train_spec()
    )
    worker_labels = {**TRAIN_LABELS, "training.kubeflow.org/replica-type": "worker"}
    worker = shipyard_pod("mnist-worker-0", worker_labels, train_spec())
    step = shipyard_pod(
        "run-1-train-step",
        {"shipyard.dev/kind": "PipelineRun", "shipyard.dev/owner": "run-1"},
        {"restartPolicy": "Never", "containers": [{"name": "main", "command": ["true"]}]},
    )
    trial = shipyard_pod(
        "tune-gbm-trial-7",
        {"shipyard.dev/kind": "Trial", "shipyard.dev/owner": "tune-gbm-7"},
        {"restartPolicy": "Never", "containers": [{"name": "t", "command": ["python", "x.py"]}]},
    )
    plain = shipyard_pod("1-Weird_Name.with.dots", {}, copy.deepcopy(FULL_SPEC))
    return [master, worker, serving_pod(), step, trial, plain]


@pytest.mark.parametrize("index", range(6))
def test_every_generated_object_validates_strictly(index: int) -> None:
    pod = every_kind()[index]
    objs = ko.build(
        pod,
        namespace="shipyard",
        image="shipyard:0.1.0",
        base_env={"SHIPYARD_URL": "http://shipyard.shipyard.svc:8080"},
        extra_env={"FROM_CM": "v", "creds-KEY": "s"} if index == 5 else None,
    )
    owner = with_uid(objs.workload)
    generated = [objs.workload]
    if objs.service is not None:
        generated.append(ko.owned_by(objs.service, owner))
    if objs.secret is not None:
        generated.append(ko.owned_by(objs.secret, owner))
    for obj in generated:
        validate(obj)
        assert len(obj["metadata"]["name"]) <= 63
        labels = obj["metadata"].get("labels") or {}
        assert labels[ko.MANAGED_BY[0]] == "shipyard"


def test_pod_keeps_scheduling_fields_and_gets_shipyard_labels() -> None:
    pod = every_kind()[5]
    spec_in = pod["spec"]
    objs = ko.build(pod, namespace="shipyard", image="shipyard:0.1.0", extra_env={"FROM_CM": "v"})
    kpod = objs.workload
    assert kpod["kind"] == "Pod"
    md = kpod["metadata"]
    assert md["name"].startswith("s-1-weird-name-with-dots-")
    assert md["labels"][ko.UID_LABEL] == pod["metadata"]["uid"]
    assert md["labels"]["shipyard.dev/namespace"] == "team-a"
    assert md["annotations"][ko.NAME_ANNOTATION] == "team-a/1-Weird_Name.with.dots"
    assert "Owner/o/u1" in md["annotations"][ko.SHIPYARD_OWNER_ANNOTATION]
    spec = kpod["spec"]
    for key in ("nodeSelector", "affinity", "tolerations", "volumes", "imagePullSecrets"):
        assert spec[key] == spec_in[key]
    assert spec["serviceAccountName"] == "trainer"
    main = spec["containers"][0]
    assert main["resources"]["limits"]["nvidia.com/gpu"] == "2"  # quantities are strings
    assert spec["initContainers"][0]["image"] == "shipyard:0.1.0"  # defaulted
    env = {e["name"]: e for e in main["env"]}
    assert env["FROM_CM"]["valueFrom"] == {
        "secretKeyRef": {"name": ko.env_secret_name(pod), "key": "FROM_CM"}
    }
    assert env["POD"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["SHIPYARD_POD_NAME"]["value"] == "1-Weird_Name.with.dots"
    assert main["envFrom"] == [{"secretRef": {"name": ko.env_secret_name(pod)}}]
    assert objs.secret is not None and objs.secret["stringData"] == {"FROM_CM": "v"}


def test_training_master_gets_a_headless_service_and_stable_master_addr() -> None:
    master, worker = every_kind()[:2]
    objs = ko.build(master, namespace="ml", image="i")
    svc = objs.service
    assert svc is not None and svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["ports"][0]["port"] == 41234
    assert svc["spec"]["selector"]["training.kubeflow.org/job-role"] == "master"
    host = f"{svc['metadata']['name']}.ml.svc"
    for pod in (master, worker):
        built = ko.build(pod, namespace="ml", image="i").workload
        env = {e["name"]: e.get("value") for e in built["spec"]["containers"][0]["env"]}
        assert env["MASTER_ADDR"] == host
        assert env["PET_RDZV_ENDPOINT"] == f"{host}:41234"
    assert ko.build(worker, namespace="ml", image="i").service is None


def test_serving_replica_is_a_deployment_with_a_service() -> None:
    pod = serving_pod()
    objs = ko.build(pod, namespace="ml", image="shipyard:0.1.0")
    dep = objs.workload
    assert dep["kind"] == "Deployment"
    assert dep["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    sel = dep["spec"]["selector"]["matchLabels"]
    assert sel == {ko.UID_LABEL: pod["metadata"]["uid"]}
    assert objs.service is not None
    assert objs.service["spec"]["ports"][0]["port"] == 9001
    assert objs.service["spec"]["selector"] == sel


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl not found: run `bash scripts/k8s-tools.sh` (Debian kubernetes-client)")
    return found


@pytest.mark.parametrize("target", ["deploy", "deploy/postgres"])
def test_deploy_manifests_render_and_validate(target: str) -> None:
    out = subprocess.run(
        [_kubectl(), "kustomize", str(ROOT / target)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ServiceAccount", "Role", "RoleBinding", "ConfigMap"} <= kinds
    if target.endswith("postgres"):
        assert "StatefulSet" in kinds
    for doc in docs:
        validate(doc)
    dep = next(d for d in docs if d["kind"] == "Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    argv = c["command"] + c["args"]
    assert argv[:2] == ["shipyard", "up"]
    assert "--runtime=kubernetes" in argv
    assert "--store=$(SHIPYARD_STORE)" in argv and "--artifacts=$(SHIPYARD_ARTIFACTS)" in argv
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == "shipyard"


def test_role_grants_exactly_what_the_runtime_checks() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy/base/rbac.yaml").read_text()))
    role = next(d for d in docs if d["kind"] == "Role")
    granted = {
        (verb, group, res)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for res in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == set(REQUIRED_ACCESS)


# -- runtime logic with the API classes patched ----------------------------------------------


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    cluster = FakeCluster()
    install(monkeypatch, cluster)
    return cluster


def make_runtime(**kw: Any) -> KubernetesRuntime:
    api = kclient.ApiClient(kclient.Configuration())
    return KubernetesRuntime("shipyard", api_client=api, request_timeout=2, **kw)


@pytest.fixture
def rt(fake: FakeCluster) -> Iterator[KubernetesRuntime]:
    runtime = make_runtime()
    runtime.preflight()
    runtime.begin()
    yield runtime
    runtime.shutdown()
    fake.events.put(None)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def test_start_creates_objects_once_and_reports_the_kubelets_status(
    rt: KubernetesRuntime, fake: FakeCluster
) -> None:
    changes: list[tuple[str, str]] = []
    rt.set_on_change(lambda ns, name: changes.append((ns, name)))
    master = every_kind()[0]
    rt.start(master, Assignment(gpus=("0",)))
    rt.start(master, Assignment())
    name = ko.object_name(master)
    creates = [c for c in fake.calls if c[0] == "create"]
    svc = ko.master_service_name(master)
    assert creates == [("create", f"Pod/{name}"), ("create", f"Service/{svc}")]
    service = fake.objects[("Service", svc)]
    assert (
        service["metadata"]["ownerReferences"][0]["uid"]
        == (fake.objects[("Pod", name)]["metadata"]["uid"])
    )
    assert rt.knows(master)
    fake.set_status(
        name,
        {
            "phase": "Running",
            "podIP": "10.1.2.3",
            "containerStatuses": [
                {"name": "pytorch", "ready": True, "restartCount": 0, "state": {"running": {}}}
            ],
        },
    )
    status = wait_for(lambda: (s := rt.status(master)) and s["phase"] == "Running" and s, "Running")
    assert status["containerStatuses"][0]["name"] == "pytorch"
    assert ("team-a", "mnist-master-0") in changes
    assert rt.endpoint(master, 8080) == ("10.1.2.3", 8080)


def test_env_secret_is_created_and_owned_by_the_pod(
    rt: KubernetesRuntime, fake: FakeCluster
) -> None:
    pod = every_kind()[3]
    rt.start(pod, Assignment(extra_env={"TOKEN": "s3cret"}))
    secret = fake.objects[("Secret", ko.env_secret_name(pod))]
    assert secret["stringData"] == {"TOKEN": "s3cret"}
    owner = fake.objects[("Pod", ko.object_name(pod))]
    assert secret["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]


def test_unschedulable_reason_is_lifted_into_status() -> None:
    k8s_pod = {
        "metadata": {"name": "x"},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
                }
            ],
        },
    }
    status = pod_status(k8s_pod)
    assert status["reason"] == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in status["message"]
    assert "reason" not in k8s_pod["status"]  # the cached object is not changed


def test_serving_crash_under_a_deployment_reads_as_failed() -> None:
    k8s_pod = {
        "metadata": {"name": "x"},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "kserve-container",
                    "restartCount": 1,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}},
                }
            ],
        },
    }
    status = pod_status(k8s_pod, serving=True, policy="Never")
    assert status["phase"] == "Failed"
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert pod_status(k8s_pod, serving=True, policy="Always")["phase"] == "Running"


def test_watch_relists_after_410_gone(rt: KubernetesRuntime, fake: FakeCluster) -> None:
    pod = every_kind()[4]
    rt.start(pod, Assignment())
    before = rt.relists
    # The pod changes while the watch is broken: only a relist can show it.
    fake.objects[("Pod", ko.object_name(pod))]["status"] = {"phase": "Succeeded"}
    fake.events.put({"type": "ERROR", "raw_object": {"code": 410, "message": "too old"}})
    wait_for(lambda: rt.relists > before, "a relist after 410 Gone")
    wait_for(lambda: (rt.status(pod) or {}).get("phase") == "Succeeded", "the relisted status")


def test_stop_deletes_and_is_done_once_the_pod_is_gone(
    rt: KubernetesRuntime, fake: FakeCluster
) -> None:
    pod = every_kind()[3]
    rt.start(pod, Assignment())
    name = ko.object_name(pod)
    wait_for(lambda: rt.status(pod) and rt.status(pod)["phase"] == "Pending", "Pending")  # type: ignore[index]
    wait_for(lambda: rt.stop(pod, 7), "stop to finish")
    assert ("delete", f"Pod/{name}") in fake.calls
    opts = next(c[1] for c in fake.calls if c[0] == "delete-opts")
    assert '"grace_period_seconds": 7' in opts and '"propagation_policy": "Background"' in opts
    rt.forget(pod)
    assert not rt.knows(pod)


def test_serving_stop_deletes_the_deployment(rt: KubernetesRuntime, fake: FakeCluster) -> None:
    pod = serving_pod()
    rt.start(pod, Assignment())
    assert ("Deployment", ko.object_name(pod)) in fake.objects
    assert ("Service", ko.object_name(pod)) in fake.objects
    assert rt.stop(pod, 0)
    assert ("Deployment", ko.object_name(pod)) not in fake.objects


def test_adopt_finds_a_workload_an_earlier_control_plane_started(
    rt: KubernetesRuntime, fake: FakeCluster
) -> None:
    pod = every_kind()[3]
    rt.start(pod, Assignment())
    other = make_runtime().begin()
    try:
        assert other.adopt(pod)
        assert other.knows(pod)  # its Kubernetes Pod is in the namespace
        later = every_kind()[4]
        assert not other.knows(later) and not other.adopt(later)
        # A finished Pod from before the restart is still this runtime's to delete.
        third = make_runtime().begin()
        try:
            assert third.knows(pod)
            third.stop(pod, 0)
            assert ("delete", f"Pod/{ko.object_name(pod)}") in fake.calls
        finally:
            third.shutdown()
    finally:
        other.shutdown()


def test_rejected_create_is_a_failed_status_naming_the_cause(
    rt: KubernetesRuntime, fake: FakeCluster
) -> None:
    fake.namespace_exists = False
    pod = every_kind()[3]
    rt.start(pod, Assignment())
    status = rt.status(pod)
    assert status is not None and status["phase"] == "Failed"
    assert status["reason"] == "KubernetesRejected"
    assert "not found" in status["message"]


def test_logs_name_the_container_and_pass_follow_and_tail(
    rt: KubernetesRuntime, fake: FakeCluster
) -> None:
    pod = every_kind()[3]
    rt.start(pod, Assignment())
    wait_for(lambda: rt.status(pod), "status")
    assert b"".join(rt.logs(pod, tail=5)) == f"log of {ko.object_name(pod)}/main\n".encode()
    log_call = [c[1] for c in fake.calls if c[0] == "log"][-1]
    assert '"tail_lines": 5' in log_call
    from shipyard.errors import BadRequest

    with pytest.raises(BadRequest, match="choose one of: main"):
        list(rt.logs(pod, "nope"))


# -- bad input at start-up ---------------------------------------------------------------------


def test_rbac_forbidden_names_every_missing_verb(fake: FakeCluster) -> None:
    fake.allowed = set(REQUIRED_ACCESS) - {("create", "", "pods"), ("get", "", "pods/log")}
    with pytest.raises(KubernetesUnavailable) as err:
        make_runtime().preflight()
    msg = err.value.message
    assert "RBAC forbids" in msg and "'shipyard'" in msg
    assert "create pods" in msg and "get pods/log" in msg and "delete pods" not in msg


def test_missing_namespace_is_named(fake: FakeCluster) -> None:
    fake.namespace_exists = False
    with pytest.raises(KubernetesUnavailable, match="namespace 'shipyard' does not exist"):
        make_runtime().preflight()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_kubeconfig(path: Path, server: str, token: str = "t") -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [
                    {"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "ml"}}
                ],
                "current-context": "x",
            }
        )
    )
    return path


def test_unreachable_cluster_is_one_clear_error(tmp_path: Path) -> None:
    cfg = write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{_closed_port()}")
    rt = KubernetesRuntime(kubeconfig=str(cfg), request_timeout=2)
    assert rt.namespace == "ml"  # from the kubeconfig's context
    with pytest.raises(KubernetesUnavailable, match="no Kubernetes cluster reachable at"):
        rt.preflight()


def test_bad_kubeconfig_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "kc"
    bad.write_text("apiVersion: v1\nclusters: [}\n")
    with pytest.raises(KubernetesUnavailable, match="bad kubeconfig"):
        KubernetesRuntime(kubeconfig=str(bad))
    with pytest.raises(KubernetesUnavailable, match="no kubeconfig at"):
        KubernetesRuntime(kubeconfig=str(tmp_path / "missing"))


@pytest.mark.parametrize("case", ["unreachable", "bad-kubeconfig"])
def test_shipyard_up_reports_the_cause_in_one_line(tmp_path: Path, case: str) -> None:
    if case == "unreachable":
        cfg = write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{_closed_port()}")
        want = "no Kubernetes cluster reachable"
    else:
        cfg = tmp_path / "kc"
        cfg.write_text(": not yaml: [")
        want = "bad kubeconfig"
    env = {**os.environ, "SHIPYARD_DATA_DIR": str(tmp_path / "data")}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "shipyard.cli.main",
            "up",
            "--port",
            str(_closed_port()),
            "--runtime",
            "kubernetes",
            "--kubeconfig",
            str(cfg),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode != 0
    assert want in out.stderr + out.stdout
    assert "Traceback" not in out.stderr + out.stdout
