"""Pods through an embedded platform: the REST API, the Pod controller, the scheduler and
the local runtime together (status in the store, deletion, logs, GPUs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard import errors
from shipyard.client import Client
from shipyard.runtime.local import proc_start_ticks
from waiting import wait_until

Obj = dict[str, Any]


def pod(name: str, *command: str, restart: str = "Never", **container: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": restart,
            "containers": [{"name": "main", "command": list(command), **container}],
        },
    }


def pid_of(obj: Obj) -> int:
    cid = obj["status"]["containerStatuses"][0]["containerID"]
    return int(cid[len("local://") :].split("/")[0])


def alive(pid: int) -> bool:
    return proc_start_ticks(pid) is not None


def logs(client: Client, name: str) -> str:
    return "".join(client.logs(name))


def condition(obj: Obj, ctype: str) -> Obj:
    found = [c for c in obj["status"].get("conditions") or [] if c["type"] == ctype]
    assert found, f"no {ctype} condition in {obj['status']}"
    cond: Obj = found[0]
    return cond


def test_pod_runs_to_success_with_kubernetes_status(client: Client) -> None:
    client.apply(pod("ok", "sh", "-c", "echo hello"))
    obj = client.wait("pod", "ok", phase="Succeeded,Failed", timeout=30)
    assert obj is not None
    assert obj["status"]["phase"] == "Succeeded"
    term = obj["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (0, "Completed")
    assert condition(obj, "PodScheduled")["status"] == "True"
    assert condition(obj, "Ready")["status"] == "False"
    assert logs(client, "ok") == "hello\n"


def test_failed_pod_reports_exit_code_in_store(client: Client) -> None:
    client.apply(pod("bad", "sh", "-c", "exit 3"))
    obj = client.wait("pod", "bad", phase="Failed", timeout=30)
    assert obj is not None
    term = obj["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (3, "Error")


def test_on_failure_restart_count_reaches_the_store(client: Client, tmp_path: Path) -> None:
    counter = tmp_path / "n"
    script = f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; "
    client.apply(pod("retry", "sh", "-c", script + '[ "$n" -ge 3 ]', restart="OnFailure"))
    obj = client.wait("pod", "retry", phase="Succeeded", timeout=30)
    assert obj is not None
    cs = obj["status"]["containerStatuses"][0]
    assert cs["restartCount"] == 2
    assert cs["lastState"]["terminated"]["exitCode"] == 1


def test_delete_stops_the_process_and_the_log_outlives_the_pod(client: Client) -> None:
    client.apply(pod("long", "sh", "-c", "echo started; exec sleep 60"))
    obj = client.wait("pod", "long", phase="Running", timeout=30)
    assert obj is not None
    wait_until(lambda: "started" in logs(client, "long"), what="the first log line")
    pid = pid_of(obj)
    assert alive(pid)
    client.delete("pod", "long", wait=True, timeout=30)
    assert not alive(pid)
    with pytest.raises(errors.NotFound):
        client.get("pod", "long")
    text = b"".join(client.platform.runtime.logs(obj)).decode()
    assert text == "started\n"


def test_missing_command_fails_with_a_clear_message(client: Client) -> None:
    client.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "nocmd"},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]},
        }
    )
    obj = client.wait("pod", "nocmd", phase="Failed", timeout=30)
    assert obj is not None
    term = obj["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "StartError"
    assert "command" in term["message"]


def test_env_field_refs_and_platform_env(client: Client) -> None:
    body = pod(
        "envs",
        "sh",
        "-c",
        'echo "$ME $NS $TEAM $SHIPYARD_POD_NAME $SHIPYARD_URL"',
        env=[
            {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
        ],
    )
    body["metadata"]["labels"] = {"team": "blue"}
    client.apply(body)
    client.wait("pod", "envs", phase="Succeeded", timeout=30)
    assert logs(client, "envs").split() == ["envs", "default", "blue", "envs", client.url]


def test_fields_not_honoured_are_reported(client: Client) -> None:
    body = pod("probe", "true", livenessProbe={"exec": {"command": ["true"]}})
    body["spec"]["nodeSelector"] = {"disk": "ssd"}
    client.apply(body)
    obj = client.wait("pod", "probe", phase="Succeeded", timeout=30)
    assert obj is not None
    message = condition(obj, "FieldsNotHonoured")["message"]
    assert "spec.nodeSelector" in message
    assert "spec.containers[0].livenessProbe" in message


# -- GPUs (capacity overridden: this machine has none) ----------------------------------------


@pytest.fixture
def gpu_client(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    monkeypatch.setenv("SHIPYARD_GPUS", "2")
    monkeypatch.setenv("SHIPYARD_RESTART_BACKOFF", "0.05")
    c = Client.embedded(data_dir)
    try:
        yield c
    finally:
        c.close()


def gpu_pod(name: str, gpus: int = 1) -> Obj:
    return pod(
        name,
        "sh",
        "-c",
        'echo "[$CUDA_VISIBLE_DEVICES]"; exec sleep 60',
        resources={"limits": {"nvidia.com/gpu": gpus}},
    )


def test_gpu_pods_get_distinct_devices_and_extra_ones_wait(gpu_client: Client) -> None:
    c = gpu_client
    c.apply(gpu_pod("g1"))
    c.apply(gpu_pod("g2"))
    for name in ("g1", "g2"):
        c.wait("pod", name, phase="Running", timeout=30)
    seen = [
        wait_until(lambda n=n: logs(c, n).strip(), what=f"{n} output")  # type: ignore[misc]
        for n in ("g1", "g2")
    ]
    assert sorted(seen) == ["[0]", "[1]"]
    c.apply(gpu_pod("g3"))
    obj = c.wait("pod", "g3", condition="PodScheduled=False", timeout=30)
    assert obj is not None
    assert obj["status"]["phase"] == "Pending"
    message = condition(obj, "PodScheduled")["message"]
    assert "insufficient nvidia.com/gpu" in message
    assert "free 0" in message
    # Freeing one GPU lets the waiting Pod start on it.
    freed = seen.index("[0]")
    c.delete("pod", ("g1", "g2")[freed], wait=True, timeout=30)
    c.wait("pod", "g3", phase="Running", timeout=30)
    assert wait_until(lambda: logs(c, "g3").strip()) == "[0]"


def test_pod_without_gpu_requests_sees_no_gpus(gpu_client: Client) -> None:
    gpu_client.apply(pod("cpu", "sh", "-c", 'echo "[${CUDA_VISIBLE_DEVICES-unset}]"'))
    gpu_client.wait("pod", "cpu", phase="Succeeded", timeout=30)
    assert logs(gpu_client, "cpu").strip() == "[]"


def test_gpu_request_beyond_capacity_names_the_capacity(gpu_client: Client) -> None:
    gpu_client.apply(gpu_pod("big", gpus=3))
    obj = gpu_client.wait("pod", "big", condition="PodScheduled=False", timeout=30)
    assert obj is not None
    assert condition(obj, "PodScheduled")["message"] == (
        "insufficient nvidia.com/gpu: requested 3, capacity 2"
    )
