"""The runtime contract, parameterised over runtimes: what a Pod means must not depend on
where it runs. ``local`` runs everywhere; ``kubernetes`` runs under ``make test-k8s``
against the tier 2 cluster (real kube-apiserver, controller-manager and scheduler, with the
test node agent as the one stand-in for a kubelet), as the ``shipyard`` ServiceAccount user
bound by deploy/'s least-privilege Role.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.runtime.base import Assignment

Obj = dict[str, Any]


@pytest.fixture(params=["local", "kubernetes"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "local":
        from shipyard.runtime.local import LocalRuntime

        local = LocalRuntime(tmp_path / "data", backoff_base=0.05, backoff_cap=0.5)
        yield local
        local.shutdown(grace=1.0)
        return
    cluster = request.getfixturevalue("kube_cluster")
    from k8s.kube_cluster import NAMESPACE
    from shipyard.runtime.kubernetes import KubernetesRuntime

    kube = KubernetesRuntime(
        NAMESPACE,
        kubeconfig=str(cluster.kubeconfig("runtime")),
        image="busybox",
        delete_on_shutdown=True,
    )
    kube.preflight()
    kube.begin()
    yield kube
    kube.shutdown()


def make_pod(*containers: Obj, restart_policy: str = "Never", **spec: Any) -> Obj:
    uid = str(uuid.uuid4())
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"c-{uid[:6]}",
            "namespace": "default",
            "uid": uid,
            "labels": {"shipyard.dev/kind": "Contract", "shipyard.dev/owner": "contract"},
        },
        "spec": {"containers": list(containers), "restartPolicy": restart_policy, **spec},
    }


def sh(script: str, name: str = "main") -> Obj:
    return {"name": name, "command": ["sh", "-c", script]}


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def run_to_end(rt: Any, pod: Obj) -> Obj:
    rt.start(pod, Assignment())
    status: Obj = wait_until(
        lambda: (s := rt.status(pod)) and s["phase"] in ("Succeeded", "Failed") and s,
        f"{pod['metadata']['name']} to finish",
    )
    return status


def term(status: Obj, i: int = 0) -> Obj:
    t: Obj = status["containerStatuses"][i]["state"]["terminated"]
    return t


def test_success_reports_exit_code_zero(runtime: Any) -> None:
    status = run_to_end(runtime, make_pod(sh("true")))
    assert status["phase"] == "Succeeded"
    assert term(status)["exitCode"] == 0
    assert term(status)["reason"] == "Completed"


def test_failure_reports_the_exit_code(runtime: Any) -> None:
    status = run_to_end(runtime, make_pod(sh("exit 7")))
    assert status["phase"] == "Failed"
    assert term(status)["exitCode"] == 7
    assert term(status)["reason"] == "Error"
    assert status["containerStatuses"][0]["restartCount"] == 0


def test_on_failure_restarts_until_success(runtime: Any, tmp_path: Path) -> None:
    counter = tmp_path / "n"
    script = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; [ $n -ge 3 ]"
    )
    status = run_to_end(runtime, make_pod(sh(script), restart_policy="OnFailure"))
    assert status["phase"] == "Succeeded"
    cs = status["containerStatuses"][0]
    assert cs["restartCount"] == 2
    assert cs["lastState"]["terminated"]["exitCode"] == 1


def test_logs_hold_stdout_and_stderr(runtime: Any) -> None:
    pod = make_pod(sh("echo to-out; echo to-err >&2"))
    run_to_end(runtime, pod)
    text = wait_until(
        lambda: (t := b"".join(runtime.logs(pod)).decode()) and "to-err" in t and t, "logs"
    )
    assert "to-out" in text


def test_follow_streams_until_the_pod_ends(runtime: Any) -> None:
    pod = make_pod(sh("echo one; sleep 1; echo two"))
    runtime.start(pod, Assignment())
    text = b"".join(runtime.logs(pod, follow=True)).decode()
    assert text.split() == ["one", "two"]


def test_init_containers_run_first_and_in_order(runtime: Any, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    pod = make_pod(
        sh(f"echo main >> {trace}"),
        initContainers=[sh(f"echo one >> {trace}", "one"), sh(f"echo two >> {trace}", "two")],
    )
    status = run_to_end(runtime, pod)
    assert status["phase"] == "Succeeded"
    assert trace.read_text().split() == ["one", "two", "main"]


def test_env_and_platform_env(runtime: Any) -> None:
    c = sh('echo "$GREETING $SHIPYARD_POD_NAME $SHIPYARD_POD_UID"')
    c["env"] = [{"name": "GREETING", "value": "hello"}]
    pod = make_pod(c)
    run_to_end(runtime, pod)
    words = b"".join(runtime.logs(pod)).decode().split()
    assert words == ["hello", pod["metadata"]["name"], pod["metadata"]["uid"]]


def test_env_from_resolved_references(runtime: Any) -> None:
    c = sh('echo "[$TOKEN]"')
    c["env"] = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    pod = make_pod(c)
    runtime.start(pod, Assignment(extra_env={"TOKEN": "s3cret"}))
    wait_until(lambda: (runtime.status(pod) or {}).get("phase") == "Succeeded", "Succeeded")
    assert b"".join(runtime.logs(pod)).decode().strip() == "[s3cret]"


def test_stop_ends_a_running_pod(runtime: Any) -> None:
    pod = make_pod(sh("echo ready; sleep 600"))
    runtime.start(pod, Assignment())
    wait_until(lambda: (runtime.status(pod) or {}).get("phase") == "Running", "Running")
    runtime.stop(pod, 1)
    wait_until(lambda: runtime.stop(pod, 1), "stop to finish")


def test_start_is_idempotent(runtime: Any, tmp_path: Path) -> None:
    marker = tmp_path / "runs"
    pod = make_pod(sh(f"echo x >> {marker}"))
    runtime.start(pod, Assignment())
    run_to_end(runtime, pod)
    assert marker.read_text() == "x\n"


def test_changes_call_back_with_the_pods_namespace_and_name(runtime: Any) -> None:
    seen: list[tuple[str, str]] = []
    runtime.set_on_change(lambda ns, name: seen.append((ns, name)))
    pod = make_pod(sh("true"))
    run_to_end(runtime, pod)
    assert ("default", pod["metadata"]["name"]) in seen
