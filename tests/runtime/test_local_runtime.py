"""The local runtime's contract, exercised directly on :class:`LocalRuntime` with real
processes: phases and exit codes, restart policies, deadlines, memory limits, logs, init
containers, env, start errors and killing whole process groups."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from shipyard.runtime import local
from shipyard.runtime.base import Assignment
from shipyard.runtime.local import LocalRuntime, proc_start_ticks
from waiting import wait_until

Obj = dict[str, Any]


def make_pod(
    *containers: Obj,
    name: str = "p",
    restart_policy: str = "Never",
    init: list[Obj] | None = None,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> Obj:
    body: Obj = {"containers": list(containers), "restartPolicy": restart_policy, **spec}
    if init:
        body["initContainers"] = init
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": str(uuid.uuid4()),
            "labels": labels or {},
        },
        "spec": body,
    }


def sh(script: str, name: str = "main", **extra: Any) -> Obj:
    return {"name": name, "command": ["sh", "-c", script], **extra}


def alive(pid: int) -> bool:
    """A live, non-zombie process with this pid."""
    return proc_start_ticks(pid) is not None


def wait_gone(pid: int) -> None:
    wait_until(lambda: not alive(pid), what=f"process {pid} to be gone")


def wait_phase(rt: LocalRuntime, pod: Obj, *phases: str, timeout: float = 15.0) -> Obj:
    def check() -> Obj | None:
        s = rt.status(pod)
        return s if s and s["phase"] in phases else None

    status: Obj = wait_until(check, timeout, f"pod {pod['metadata']['name']} to be {phases}")
    return status


def pid_of(status: Obj, index: int = 0) -> int:
    return int(status["containerStatuses"][index]["containerID"][len("local://") :].split("/")[0])


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[LocalRuntime]:
    runtime = LocalRuntime(tmp_path / "data", backoff_base=0.05, backoff_cap=0.2)
    try:
        yield runtime
    finally:
        runtime.shutdown(grace=1.0)


def run_to_end(rt: LocalRuntime, pod: Obj, timeout: float = 20.0) -> Obj:
    rt.start(pod, Assignment())
    return wait_phase(rt, pod, "Succeeded", "Failed", timeout=timeout)


def main_status(status: Obj) -> Obj:
    cs: Obj = status["containerStatuses"][0]
    return cs


def log_text(rt: LocalRuntime, pod: Obj, container: str | None = None) -> str:
    return b"".join(rt.logs(pod, container)).decode()


def test_true_succeeds_with_exit_code_zero(rt: LocalRuntime) -> None:
    status = run_to_end(rt, make_pod({"name": "main", "command": ["true"]}))
    assert status["phase"] == "Succeeded"
    term = main_status(status)["state"]["terminated"]
    assert term["exitCode"] == 0
    assert term["reason"] == "Completed"
    assert term["startedAt"] and term["finishedAt"]
    assert main_status(status)["containerID"].startswith("local://")


def test_exit_code_is_reported_with_reason_error(rt: LocalRuntime) -> None:
    status = run_to_end(rt, make_pod(sh("exit 7")))
    assert status["phase"] == "Failed"
    cs = main_status(status)
    assert cs["state"]["terminated"]["exitCode"] == 7
    assert cs["state"]["terminated"]["reason"] == "Error"
    assert cs["restartCount"] == 0  # restartPolicy Never


def test_on_failure_restarts_until_success(rt: LocalRuntime, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    script = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; "
        'echo "attempt $n"; [ "$n" -ge 3 ]'
    )
    pod = make_pod(sh(script), restart_policy="OnFailure")
    seen: list[int] = []
    rt.set_on_change(
        lambda ns, name: (
            seen.append(main_status(s)["restartCount"]) if (s := rt.status(pod)) else None
        )
    )
    status = run_to_end(rt, pod)
    assert status["phase"] == "Succeeded"
    cs = main_status(status)
    assert cs["restartCount"] == 2
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert cs["state"]["terminated"]["exitCode"] == 0
    assert seen == sorted(seen), "restartCount never goes down"
    assert log_text(rt, pod).splitlines() == ["attempt 1", "attempt 2", "attempt 3"]


def test_never_does_not_restart(rt: LocalRuntime, tmp_path: Path) -> None:
    marker = tmp_path / "runs"
    status = run_to_end(rt, make_pod(sh(f"echo x >> {marker}; exit 1")))
    assert status["phase"] == "Failed"
    assert main_status(status)["restartCount"] == 0
    assert marker.read_text() == "x\n"


def test_always_restarts_even_after_success(rt: LocalRuntime) -> None:
    pod = make_pod(sh("echo run"), restart_policy="Always")
    rt.start(pod, Assignment())
    status = wait_until(
        lambda: (s := rt.status(pod)) and main_status(s)["restartCount"] >= 2 and s,
        what="restartCount >= 2",
    )
    assert status["phase"] == "Running"
    assert main_status(status)["lastState"]["terminated"]["exitCode"] == 0
    assert rt.stop(pod, 1.0) or wait_until(lambda: rt.stop(pod), what="stop")


def test_active_deadline_kills_the_process_group(rt: LocalRuntime) -> None:
    pod = make_pod(sh("sleep 60 & sleep 60; wait"), activeDeadlineSeconds=1)
    rt.start(pod, Assignment())
    pid = pid_of(wait_phase(rt, pod, "Running"))
    family = wait_until(
        lambda: (kids := psutil.Process(pid).children(recursive=True)) and len(kids) >= 2 and kids,
        what="the sleeps to start",
    )
    status = wait_phase(rt, pod, "Failed")
    assert status["reason"] == "DeadlineExceeded"
    assert "deadline" in status["message"]
    assert main_status(status)["state"]["terminated"]["reason"] == "DeadlineExceeded"
    for gone in [pid, *(p.pid for p in family)]:
        wait_gone(gone)


def test_memory_limit_is_reported_as_oomkilled(rt: LocalRuntime) -> None:
    hog = (
        "import time\nchunks = []\nwhile True:\n"
        "    chunks.append(bytearray(4 * 2**20))\n    time.sleep(0.01)\n"
    )
    container = {
        "name": "hog",
        "command": [sys.executable, "-c", hog],
        "resources": {"limits": {"memory": "60Mi"}},
    }
    status = run_to_end(rt, make_pod(container))
    assert status["phase"] == "Failed"
    term = main_status(status)["state"]["terminated"]
    assert term["reason"] == "OOMKilled"
    assert term["exitCode"] == 137
    assert "60Mi" in term["message"]


def test_the_memory_watchdog_looks_only_at_pods_with_a_memory_limit(rt: LocalRuntime) -> None:
    """A control plane knows every Pod it ran until it is deleted (thousands after a large
    pipeline): the watchdog, five times a second under the runtime's lock, must not scan
    them all."""
    plain = make_pod(sh("true"))
    limited = make_pod({**sh("true"), "resources": {"limits": {"memory": "1Gi"}}})
    for pod in (plain, limited):
        run_to_end(rt, pod)
    assert set(rt._limited) == {limited["metadata"]["uid"]}
    rt.forget(limited)
    assert rt._limited == {}


def test_stdout_and_stderr_go_to_the_log_which_outlives_the_pod(rt: LocalRuntime) -> None:
    pod = make_pod(sh("echo to-stdout; echo to-stderr >&2"))
    run_to_end(rt, pod)
    rt.forget(pod)
    assert not rt.knows(pod)
    text = log_text(rt, pod)
    assert "to-stdout" in text
    assert "to-stderr" in text
    assert list(rt.logs(pod, tail=1)) and b"".join(rt.logs(pod, tail=1)).strip() in (
        b"to-stdout",
        b"to-stderr",
    )


def test_logs_lie_flat_per_namespace_and_the_newest_pod_of_a_name_is_archived(
    rt: LocalRuntime,
) -> None:
    first = make_pod(sh("echo first"))
    run_to_end(rt, first)
    rt.forget(first)
    # The newest is told by the logs' modification times, which the kernel keeps to a tick
    # (a few ms): two Pods of one name a tick apart would tie. Here they are a minute apart.
    old = time.time() - 60
    os.utime(rt.log_path(first), (old, old))
    name = first["metadata"]["name"]
    second = make_pod(sh("echo second"))
    second["metadata"]["name"] = name
    run_to_end(rt, second)
    rt.forget(second)
    # A Pod whose name starts with the same letters is another Pod.
    other = make_pod(sh("echo other"))
    other["metadata"]["name"] = name + "-other"
    run_to_end(rt, other)
    ns_dir = rt.logs_dir / "default"
    # No folder per Pod: one log file per container in the namespace's folder.
    assert [p for p in ns_dir.iterdir() if p.is_dir()] == []
    assert rt.log_path(second) == ns_dir / f"{name}_{second['metadata']['uid'][:8]}_main.log"
    archived = rt.archived_pod("default", name)
    assert archived is not None
    assert archived["metadata"]["uid"] == second["metadata"]["uid"][:8]
    assert [c["name"] for c in archived["spec"]["containers"]] == ["main"]
    assert log_text(rt, archived) == "second\n"
    assert rt.archived_pod("default", "never-was") is None


def test_logs_in_the_earlier_folder_layout_are_still_served(rt: LocalRuntime) -> None:
    pod = make_pod(sh("true"))
    md = pod["metadata"]
    old = rt.logs_dir / "default" / md["name"] / md["uid"][:8]
    old.mkdir(parents=True)
    (old / "main.log").write_text("from an earlier version\n")
    assert log_text(rt, pod) == "from an earlier version\n"
    archived = rt.archived_pod("default", md["name"])
    assert archived is not None and log_text(rt, archived) == "from an earlier version\n"


def test_init_containers_run_in_order_before_containers(rt: LocalRuntime, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    pod = make_pod(
        sh(f"echo main >> {trace}"),
        init=[sh(f"echo one >> {trace}", name="one"), sh(f"echo two >> {trace}", name="two")],
    )
    status = run_to_end(rt, pod)
    assert status["phase"] == "Succeeded"
    assert trace.read_text().split() == ["one", "two", "main"]
    assert [c["state"]["terminated"]["exitCode"] for c in status["initContainerStatuses"]] == [
        0,
        0,
    ]


def test_failing_init_container_fails_the_pod_and_containers_never_start(
    rt: LocalRuntime, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    pod = make_pod(
        sh(f"echo main >> {trace}"),
        init=[sh("exit 4", name="setup"), sh(f"echo two >> {trace}", name="two")],
    )
    status = run_to_end(rt, pod)
    assert status["phase"] == "Failed"
    assert status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 4
    assert "waiting" in status["initContainerStatuses"][1]["state"]
    assert "waiting" in main_status(status)["state"]
    assert not trace.exists()


def test_missing_executable_is_a_start_error(rt: LocalRuntime) -> None:
    status = run_to_end(rt, make_pod({"name": "main", "command": ["no-such-binary-xyz", "-v"]}))
    assert status["phase"] == "Failed"
    term = main_status(status)["state"]["terminated"]
    assert term["reason"] == "StartError"
    assert "no-such-binary-xyz" in term["message"]
    assert "not found" in term["message"]


def test_missing_command_is_a_clear_start_error(rt: LocalRuntime) -> None:
    status = run_to_end(rt, make_pod({"name": "main", "image": "python:3.11"}))
    assert status["phase"] == "Failed"
    term = main_status(status)["state"]["terminated"]
    assert term["reason"] == "StartError"
    assert "command" in term["message"]


def test_env_values_expansion_and_field_refs(rt: LocalRuntime) -> None:
    container = {
        "name": "main",
        "command": ["sh", "-c", 'echo "$1|$GREETING|$POD|$NS|$APP|$MISSING_REF"', "sh"],
        "args": ["$(GREETING)-$(POD)-$$(GREETING)"],
        "env": [
            {"name": "GREETING", "value": "hello"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {
                "name": "APP",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}},
            },
            {"name": "MISSING_REF", "value": "$(NOT_DEFINED)"},
        ],
    }
    pod = make_pod(container, name="envpod", labels={"app": "demo"})
    status = run_to_end(rt, pod)
    assert status["phase"] == "Succeeded", log_text(rt, pod)
    assert (
        log_text(rt, pod).strip()
        == "hello-envpod-$(GREETING)|hello|envpod|default|demo|$(NOT_DEFINED)"
    )


def test_platform_env_is_set(rt: LocalRuntime) -> None:
    pod = make_pod(sh('echo "$SHIPYARD_POD_NAME $SHIPYARD_POD_NAMESPACE $SHIPYARD_POD_UID"'))
    run_to_end(rt, pod)
    assert log_text(rt, pod).split() == ["p", "default", pod["metadata"]["uid"]]


def test_stop_kills_children_and_grandchildren(rt: LocalRuntime) -> None:
    # The container's shell starts a child shell, which starts a grandchild sleep.
    pod = make_pod(sh("sh -c 'sleep 60; echo never' & wait"))
    rt.start(pod, Assignment())
    pid = pid_of(wait_phase(rt, pod, "Running"))
    family = wait_until(
        lambda: (
            (kids := psutil.Process(pid).children(recursive=True))
            and any(k.name() == "sleep" for k in kids)
            and kids
        ),
        what="the grandchild sleep",
    )
    rt.stop(pod, grace_seconds=5)
    wait_until(lambda: rt.stop(pod), what="stop to finish")
    for gone in [pid, *(p.pid for p in family)]:
        wait_gone(gone)
    status = rt.status(pod)
    assert status is not None
    assert status["phase"] == "Failed"
    assert main_status(status)["state"]["terminated"]["exitCode"] == 128 + 15


def test_stop_escalates_to_sigkill_after_the_grace_period(rt: LocalRuntime) -> None:
    pod = make_pod(sh("trap '' TERM; echo ready; while true; do sleep 0.1; done"))
    rt.start(pod, Assignment())
    wait_until(lambda: "ready" in log_text(rt, pod), what="the trap to be set")
    assert rt.stop(pod, grace_seconds=0.3) is False
    wait_until(lambda: rt.stop(pod), what="SIGKILL after the grace period")
    status = rt.status(pod)
    assert status is not None
    assert main_status(status)["state"]["terminated"]["exitCode"] == 137


def test_gpu_assignment_sets_cuda_visible_devices(tmp_path: Path) -> None:
    rt = LocalRuntime(tmp_path / "data", node_has_gpus=True)
    try:
        gpu_pod = make_pod(
            sh('echo "[$CUDA_VISIBLE_DEVICES]"', resources={"limits": {"nvidia.com/gpu": 2}})
        )
        cpu_pod = make_pod(sh('echo "[${CUDA_VISIBLE_DEVICES-unset}]"'))
        rt.start(gpu_pod, Assignment(gpus=("1", "3")))
        rt.start(cpu_pod, Assignment())
        wait_phase(rt, gpu_pod, "Succeeded")
        wait_phase(rt, cpu_pod, "Succeeded")
        assert log_text(rt, gpu_pod).strip() == "[1,3]"
        assert log_text(rt, cpu_pod).strip() == "[]"
        assert rt.status(gpu_pod)["assignedGPUs"] == ["1", "3"]  # type: ignore[index]
    finally:
        rt.shutdown(grace=1.0)


def test_a_start_is_told_after_running_notice_unless_the_pod_ends_first(
    rt: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    heard: list[tuple[str, str | None]] = []

    def on_change(_ns: str, name: str) -> None:
        heard.append((name, (rt.status({"metadata": uids[name]}) or {}).get("phase")))

    uids: dict[str, Obj] = {}
    rt.set_on_change(on_change)
    monkeypatch.setattr(local, "RUNNING_NOTICE", 1.0)
    quick = make_pod(sh("true"))
    uids[quick["metadata"]["name"]] = quick["metadata"]
    run_to_end(rt, quick)
    time.sleep(1.3)  # past the notice it would have had
    # One call, with the end: the start and the end are in the same status.
    assert heard == [(quick["metadata"]["name"], "Succeeded")]

    monkeypatch.setattr(local, "RUNNING_NOTICE", 0.05)
    slow = make_pod(sh("sleep 30"))
    uids[slow["metadata"]["name"]] = slow["metadata"]
    rt.start(slow, Assignment())
    wait_until(lambda: (slow["metadata"]["name"], "Running") in heard, what="the start")
    rt.stop(slow, grace_seconds=1.0)


def test_start_is_idempotent(rt: LocalRuntime, tmp_path: Path) -> None:
    marker = tmp_path / "runs"
    pod = make_pod(sh(f"echo x >> {marker}"))
    rt.start(pod, Assignment())
    rt.start(pod, Assignment())
    run_to_end(rt, pod)
    assert marker.read_text() == "x\n"


def test_shutdown_stops_every_pod(tmp_path: Path) -> None:
    rt = LocalRuntime(tmp_path / "data")
    pods = [make_pod(sh("sleep 60"), name=f"p{i}") for i in range(2)]
    pids = []
    for pod in pods:
        rt.start(pod, Assignment())
        pids.append(pid_of(wait_phase(rt, pod, "Running")))
    rt.shutdown(grace=2.0)
    for pid in pids:
        wait_gone(pid)


def test_a_pod_started_while_shutting_down_does_not_outlive_the_runtime(tmp_path: Path) -> None:
    """A start() that comes during shutdown's grace period (a controller still at work)
    leaves no process running after shutdown() returns."""
    rt = LocalRuntime(tmp_path / "data")
    stubborn = make_pod(sh("trap '' TERM; echo ready; while :; do sleep 0.1; done"), name="a")
    rt.start(stubborn, Assignment())
    wait_until(lambda: "ready" in log_text(rt, stubborn), what="the trap to be set")
    mark = tmp_path / "late.pid"
    late = make_pod(sh(f"echo $$ > {mark}.tmp && mv {mark}.tmp {mark} && exec sleep 60"), name="b")
    done = threading.Event()
    stopper = threading.Thread(target=lambda: (rt.shutdown(grace=1.5), done.set()))
    stopper.start()
    uid = stubborn["metadata"]["uid"]
    wait_until(lambda: rt._pods[uid].stopping, what="the shutdown to have begun")
    rt.start(late, Assignment())
    stopper.join(timeout=30)
    assert done.is_set()
    time.sleep(0.5)  # a process started late would have written its pid by now
    if mark.exists():
        wait_gone(int(mark.read_text()))


def test_graceful_stop_reports_the_commands_own_exit_code(rt: LocalRuntime) -> None:
    pod = make_pod(sh("trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.1; done"))
    rt.start(pod, Assignment())
    wait_until(lambda: "ready" in log_text(rt, pod), what="the trap to be set")
    rt.stop(pod, grace_seconds=10)
    wait_until(lambda: rt.stop(pod), what="the graceful exit")
    status = rt.status(pod)
    assert status is not None
    assert main_status(status)["state"]["terminated"]["exitCode"] == 0
    assert "bye" in log_text(rt, pod)


def test_processes_left_behind_die_with_the_container(rt: LocalRuntime, tmp_path: Path) -> None:
    pidfile = tmp_path / "bg.pid"
    status = run_to_end(rt, make_pod(sh(f"sleep 60 & echo $! > {pidfile}; exit 0")))
    assert status["phase"] == "Succeeded"
    wait_gone(int(pidfile.read_text()))


def test_init_containers_and_containers_each_get_the_pods_gpus(tmp_path: Path) -> None:
    rt = LocalRuntime(tmp_path / "data", node_has_gpus=True)
    gpu: Obj = {"limits": {"nvidia.com/gpu": 1}}
    pod = make_pod(
        sh('echo "main=[$CUDA_VISIBLE_DEVICES]"', resources=gpu),
        init=[sh('echo "init=[$CUDA_VISIBLE_DEVICES]"', name="prep", resources=gpu)],
    )
    try:
        rt.start(pod, Assignment(gpus=("1",)))  # the Pod's effective request is 1 GPU
        wait_phase(rt, pod, "Succeeded")
        assert log_text(rt, pod, "prep").strip() == "init=[1]"
        assert log_text(rt, pod).strip() == "main=[1]"
    finally:
        rt.shutdown(grace=1.0)


def test_adopting_a_container_in_restart_backoff_restarts_it(tmp_path: Path) -> None:
    """A control plane killed while a container waited out its restart back-off: the next
    one restarts it as the policy says, rather than calling the Pod finished."""
    first = LocalRuntime(tmp_path / "data", backoff_base=3600)
    pod = make_pod(sh("echo run; exit 1"), restart_policy="OnFailure")
    try:
        first.start(pod, Assignment())
        status = wait_until(
            lambda: (s := first.status(pod)) and "terminated" in main_status(s)["state"] and s,
            what="the first exit",
        )
        assert status["phase"] == "Running"  # waiting out the back-off
    finally:
        first.shutdown(grace=0)  # nothing of the Pod runs: this only ends its threads
    second = LocalRuntime(tmp_path / "data", backoff_base=0.05, backoff_cap=0.05)
    try:
        assert second.adopt({**pod, "status": status})
        restarted = wait_until(
            lambda: (s := second.status(pod)) and main_status(s)["restartCount"] >= 1 and s,
            what="the restart after adoption",
        )
        assert restarted["phase"] == "Running"
        assert main_status(restarted)["lastState"]["terminated"]["exitCode"] == 1
    finally:
        second.shutdown(grace=1.0)
