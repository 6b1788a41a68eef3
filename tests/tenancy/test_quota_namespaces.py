"""Namespaces and ResourceQuota through an embedded platform: 403s with Kubernetes' message,
quota status, terminal Pods not counted, namespace deletion, missing namespaces."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shipyard import errors
from shipyard.client import Client
from shipyard.runtime.local import proc_start_ticks
from waiting import wait_until

Obj = dict[str, Any]


def namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def quota(name: str, ns: str, **hard: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"hard": hard},
    }


def pod(name: str, ns: str, cpu: str = "500m", command: tuple[str, ...] = ("sleep", "60")) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "command": list(command),
                    "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}},
                }
            ],
        },
    }


def quota_used(c: Client, name: str, ns: str) -> dict[str, str]:
    used: dict[str, str] = (c.get("resourcequota", name, ns).get("status") or {}).get("used") or {}
    return used


def test_over_quota_create_is_403_naming_quota_and_figures(client: Client) -> None:
    client.apply(namespace("team-a"))
    client.apply(quota("compute", "team-a", **{"requests.cpu": "1", "pods": "5"}))
    client.apply(pod("p1", "team-a", cpu="600m"))
    with pytest.raises(errors.Forbidden) as exc:
        client.apply(pod("p2", "team-a", cpu="600m"))
    message = str(exc.value)
    assert "exceeded quota: compute" in message
    assert "requested: requests.cpu=600m" in message
    assert "used: requests.cpu=600m" in message
    assert "limited: requests.cpu=1" in message
    # The HTTP status and error body, as a Kubernetes client would see them.
    resp = httpx.post(
        f"{client.url}/api/v1/namespaces/team-a/pods", json=pod("p3", "team-a", cpu="600m")
    )
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "Forbidden"
    assert "exceeded quota: compute" in resp.json()["error"]["message"]
    with pytest.raises(errors.NotFound):
        client.get("pod", "p2", "team-a")  # nothing half-written


def test_quota_status_tracks_usage(client: Client) -> None:
    client.apply(namespace("team-b"))
    client.apply(quota("q", "team-b", pods="3", **{"requests.cpu": "2", "requests.memory": "1Gi"}))
    wait_until(lambda: quota_used(client, "q", "team-b").get("pods") == "0", what="used pods=0")
    client.apply(pod("a", "team-b", cpu="500m"))
    client.apply(pod("b", "team-b", cpu="250m"))
    wait_until(
        lambda: (
            quota_used(client, "q", "team-b")
            == {"pods": "2", "requests.cpu": "750m", "requests.memory": "128Mi"}
        ),
        what="used to count both Pods",
    )
    hard = client.get("resourcequota", "q", "team-b")["status"]["hard"]
    assert hard == {"pods": "3", "requests.cpu": "2", "requests.memory": "1Gi"}
    client.delete("pod", "a", "team-b", wait=True)
    wait_until(
        lambda: quota_used(client, "q", "team-b").get("pods") == "1",
        what="used to drop after a delete",
    )


def test_terminal_pods_do_not_count(client: Client) -> None:
    client.apply(namespace("team-c"))
    client.apply(quota("one", "team-c", pods="1"))
    client.apply(pod("first", "team-c", command=("true",)))
    client.wait("pod", "first", namespace="team-c", phase="Succeeded", timeout=30)
    client.apply(pod("second", "team-c", command=("sh", "-c", "exit 2")))
    client.wait("pod", "second", namespace="team-c", phase="Failed", timeout=30)
    client.apply(pod("third", "team-c"))
    with pytest.raises(errors.Forbidden, match="exceeded quota: one"):
        client.apply(pod("fourth", "team-c"))
    wait_until(lambda: quota_used(client, "one", "team-c").get("pods") == "1")


def test_namespace_delete_removes_everything_in_it(client: Client) -> None:
    client.apply(namespace("doomed"))
    client.apply(quota("q", "doomed", pods="10"))
    client.apply(pod("runner", "doomed"))
    obj = client.wait("pod", "runner", namespace="doomed", phase="Running", timeout=30)
    assert obj is not None
    cid = obj["status"]["containerStatuses"][0]["containerID"]
    pid, _, ticks = cid[len("local://") :].partition("/")
    client.apply(namespace("kept"))
    client.apply(pod("other", "kept"))
    client.delete("namespace", "doomed")
    client.wait("namespace", "doomed", delete=True, timeout=30)
    assert client.list("pods", "doomed") == []
    assert client.list("resourcequotas", "doomed") == []
    assert proc_start_ticks(int(pid)) != int(ticks), "the Pod's process outlived its namespace"
    assert client.get("pod", "other", "kept")["metadata"]["name"] == "other"


def test_create_in_terminating_namespace_is_refused(client: Client) -> None:
    client.apply(namespace("closing"))
    held = pod("held", "closing", command=("true",))
    held["metadata"]["finalizers"] = ["example.com/hold"]  # keeps the namespace Terminating
    client.apply(held)
    client.wait("pod", "held", namespace="closing", phase="Succeeded", timeout=30)
    client.delete("namespace", "closing")
    client.wait("namespace", "closing", jsonpath="{.status.phase}=Terminating", timeout=30)
    with pytest.raises(errors.Forbidden, match="being deleted"):
        client.apply(pod("late", "closing"))
    client.patch("pod", "held", {"metadata": {"finalizers": []}}, "closing")
    client.wait("namespace", "closing", delete=True, timeout=30)


def test_create_in_missing_namespace_is_404_naming_it(client: Client) -> None:
    with pytest.raises(errors.NotFound) as exc:
        client.apply(pod("p", "nowhere"))
    assert "nowhere" in str(exc.value)
    resp = httpx.post(f"{client.url}/api/v1/namespaces/nowhere/pods", json=pod("p", "nowhere"))
    assert resp.status_code == 404
    assert "nowhere" in resp.json()["error"]["message"]


def test_quota_refuses_unknown_resource_names(client: Client) -> None:
    client.apply(namespace("team-d"))
    with pytest.raises(errors.Invalid) as exc:
        client.apply(quota("bad", "team-d", gpus="1"))
    assert "gpus" in str(exc.value)


def test_concurrent_creates_never_exceed_the_quota(client: Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client.apply(namespace("race"))
    client.apply(quota("q", "race", pods="3"))

    def create(i: int) -> bool:
        with Client(client.url) as c:
            try:
                c.create(pod(f"p{i}", "race", command=("sleep", "30")))
            except errors.Forbidden:
                return False
            return True

    with ThreadPoolExecutor(8) as pool:
        admitted = sum(pool.map(create, range(12)))
    assert admitted == 3
    assert len(client.list("pods", "race")) == 3
