"""Training job semantics on real processes: env contract, gang start, restart policies,
deadlines, TTL, cleanPodPolicy, suspend/resume, logs and metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from platform_fixtures import shipyard_cmd
from training.jobs import condition, pytorchjob

pytestmark = pytest.mark.e2e


def _pods(client: Any, job: str) -> dict[str, dict[str, Any]]:
    pods = client.list("pods", selector=f"training.kubeflow.org/job-name={job}")
    return {p["metadata"]["labels"]["shipyard.dev/replica"]: p for p in pods}


def _wait_pods(client: Any, job: str, phase: str, n: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = _pods(client, job)
        if len([p for p in pods.values() if (p.get("status") or {}).get("phase") == phase]) >= n:
            return pods
        time.sleep(0.05)
    raise AssertionError(f"{job}: not {n} pods {phase}: {_pods(client, job)}")


def _wait_gone(client: Any, job: str, key: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while key in _pods(client, job):
        assert time.monotonic() < deadline, f"{job}/{key} still exists"
        time.sleep(0.05)


def _kill(pod: dict[str, Any]) -> None:
    cid = pod["status"]["containerStatuses"][0]["containerID"]
    pid = int(cid.removeprefix("local://").split("/")[0])
    os.killpg(pid, signal.SIGKILL)


def _log_env(client: Any, pod: str) -> dict[str, str]:
    text = "".join(client.logs(pod))
    line = next(x for x in text.splitlines() if x.startswith("env "))
    env: dict[str, str] = json.loads(line[4:])
    return env


def test_env_contract_and_rendezvous_two_jobs_at_once(client: Any) -> None:
    for name in ("envs-a", "envs-b"):
        client.apply(pytorchjob(name, ["rendezvous"], ["rendezvous"], workers=2))
    ports = set()
    for name in ("envs-a", "envs-b"):
        job = client.wait("pytorchjob", name, condition="Succeeded", timeout=60)
        port = job["status"]["ports"]["master"]
        ports.add(port)
        pods = _pods(client, name)
        assert sorted(pods) == ["master-0", "worker-0", "worker-1"]
        for key, rank in (("master-0", "0"), ("worker-0", "1"), ("worker-1", "2")):
            env = _log_env(client, pods[key]["metadata"]["name"])
            assert env == {
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "WORLD_SIZE": "3",
                "RANK": rank,
                "PET_NNODES": "3",
                "PET_NPROC_PER_NODE": "auto",
                "PET_NODE_RANK": rank,
                "PET_MASTER_ADDR": "127.0.0.1",
                "PET_MASTER_PORT": str(port),
                "PYTHONUNBUFFERED": "1",
            }
        job = client.wait(
            "pytorchjob",
            name,
            jsonpath="{.status.replicaStatuses.Worker.succeeded}=2",
            timeout=30,
        )
        assert job["status"]["replicaStatuses"] == {
            "Master": {"active": 0, "succeeded": 1, "failed": 0},
            "Worker": {"active": 0, "succeeded": 2, "failed": 0},
        }
        assert job["status"]["metrics"] == {"loss": 0.25, "accuracy": 0.75}
        assert [c["type"] for c in job["status"]["conditions"]] == [
            "Created",
            "Running",
            "Succeeded",
        ]
    assert len(ports) == 2


def test_never_worker_killed_fails_job_and_stops_master(client: Any) -> None:
    client.apply(pytorchjob("killed", ["sleep"], ["sleep"]))
    pods = _wait_pods(client, "killed", "Running", 2)
    client.wait("pytorchjob", "killed", condition="Running", timeout=30)
    _kill(pods["worker-0"])
    job = client.wait("pytorchjob", "killed", condition="Failed", timeout=30)
    failed = condition(job, "Failed")
    assert failed and failed["reason"] == "PyTorchJobFailed"
    assert "worker-0" in failed["message"] and "exit code 137" in failed["message"]
    assert condition(job, "Running")["status"] == "False"  # type: ignore[index]
    _wait_gone(client, "killed", "master-0")  # no master left running after a worker died
    assert (job["status"].get("restarts") or 0) == 0


def test_exit_code_policy_retries_signals_and_fails_on_program_errors(
    client: Any, tmp_path: Path
) -> None:
    env = {"MARKERS": str(tmp_path)}
    created = client.apply(
        pytorchjob(
            "exitcode",
            ["sleep"],
            ["fail-once", "w", "kill", "3"],
            restart="ExitCode",
            env=env,
        )
    )
    job = client.wait("pytorchjob", "exitcode", condition="Failed", timeout=60)
    assert job["status"]["restarts"] == 1  # 137 (SIGKILL) was retried
    seen = []  # every Restarting message the job showed, replayed from its creation
    for event in client.watch(
        "pytorchjob",
        name="exitcode",
        resource_version=created["metadata"]["resourceVersion"],
        timeout=1,
    ):
        cond = condition(event["object"], "Restarting")
        if cond and cond["status"] == "True":
            seen.append(cond["message"])
    assert seen and "worker-0 failed (exit code 137)" in seen[0]
    failed = condition(job, "Failed")
    assert failed and "exit code 3" in failed["message"] and "ExitCode" in failed["message"]
    _wait_gone(client, "exitcode", "master-0")


def test_on_failure_restarts_the_gang_and_replicas_rejoin(client: Any, tmp_path: Path) -> None:
    client.apply(
        pytorchjob(
            "rejoin",
            ["rendezvous"],
            ["fail-once", "w", "1"],
            restart="OnFailure",
            env={"MARKERS": str(tmp_path)},
        )
    )
    job = client.wait("pytorchjob", "rejoin", condition="Succeeded", timeout=60)
    assert job["status"]["restarts"] == 1
    assert condition(job, "Restarting")["status"] == "False"  # type: ignore[index]
    pods = _pods(client, "rejoin")
    assert {p["metadata"]["labels"]["shipyard.dev/attempt"] for p in pods.values()} == {"1"}
    log = "".join(client.logs(pods["master-0"]["metadata"]["name"]))
    assert "rendezvous complete with ranks [1]" in log


def test_backoff_limit(client: Any) -> None:
    client.apply(
        pytorchjob(
            "backoff", ["sleep"], ["exit", "1"], restart="OnFailure", run_policy={"backoffLimit": 1}
        )
    )
    job = client.wait("pytorchjob", "backoff", condition="Failed", timeout=60)
    failed = condition(job, "Failed")
    assert failed and failed["reason"] == "BackoffLimitExceeded"
    assert job["status"]["restarts"] == 1
    _wait_gone(client, "backoff", "master-0")


def test_active_deadline_seconds(client: Any) -> None:
    client.apply(
        pytorchjob("deadline", ["sleep"], ["sleep"], run_policy={"activeDeadlineSeconds": 2})
    )
    _wait_pods(client, "deadline", "Running", 2)
    job = client.wait("pytorchjob", "deadline", condition="Failed", timeout=30)
    assert condition(job, "Failed")["reason"] == "DeadlineExceeded"  # type: ignore[index]
    _wait_gone(client, "deadline", "master-0")
    _wait_gone(client, "deadline", "worker-0")


def test_clean_pod_policy_and_ttl(client: Any) -> None:
    client.apply(
        pytorchjob("keep", ["rendezvous"], ["rendezvous"], run_policy={"cleanPodPolicy": "None"})
    )
    client.apply(
        pytorchjob(
            "ttl",
            ["rendezvous"],
            ["rendezvous"],
            run_policy={"cleanPodPolicy": "All", "ttlSecondsAfterFinished": 1},
        )
    )
    client.wait("pytorchjob", "keep", condition="Succeeded", timeout=60)
    client.wait("pytorchjob", "ttl", delete=True, timeout=60)
    assert _pods(client, "ttl") == {}
    assert sorted(_pods(client, "keep")) == ["master-0", "worker-0"]


def test_suspend_and_resume(client: Any) -> None:
    job = pytorchjob("susp", ["sleep"], ["sleep"], run_policy={"suspend": True})
    client.apply(job)
    obj = client.wait("pytorchjob", "susp", condition="Suspended", timeout=30)
    assert _pods(client, "susp") == {}
    assert "startTime" not in obj["status"]
    client.patch("pytorchjob", "susp", {"spec": {"runPolicy": {"suspend": False}}})
    _wait_pods(client, "susp", "Running", 2)
    obj = client.wait("pytorchjob", "susp", condition="Running", timeout=30)
    assert condition(obj, "Suspended")["reason"] == "PyTorchJobResumed"  # type: ignore[index]
    client.patch("pytorchjob", "susp", {"spec": {"runPolicy": {"suspend": True}}})
    client.wait("pytorchjob", "susp", condition="Suspended", timeout=30)
    _wait_gone(client, "susp", "master-0")
    _wait_gone(client, "susp", "worker-0")


def test_gang_that_cannot_fit_stays_pending_with_reason(client: Any) -> None:
    client.apply(
        pytorchjob(
            "huge",
            ["sleep"],
            ["sleep"],
            master_extra={"resources": {"requests": {"cpu": "100m"}}},
            worker_extra={"resources": {"requests": {"cpu": "64"}}},
        )
    )
    deadline = time.monotonic() + 30
    while True:
        job = client.get("pytorchjob", "huge")
        running = condition(job, "Running")
        if running and running["reason"] == "Unschedulable":
            break
        assert time.monotonic() < deadline, job.get("status")
        time.sleep(0.05)
    assert "insufficient cpu: requested 64" in running["message"]
    pods = _pods(client, "huge")
    # all or nothing: the master, which would fit alone, was not started either
    assert all(p["status"]["phase"] == "Pending" for p in pods.values())
    assert not any(
        cs.get("containerID")
        for p in pods.values()
        for cs in p["status"].get("containerStatuses") or []
    )


def test_logs_by_replica_and_describe(client: Any, cli_env: dict[str, str]) -> None:
    client.apply(pytorchjob("logs", ["rendezvous"], ["rendezvous"], workers=2))
    client.wait("pytorchjob", "logs", condition="Succeeded", timeout=60)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*shipyard_cmd(), *args], env=cli_env, capture_output=True, text=True, timeout=60
        )

    proc = cli("logs", "pytorchjob/logs")
    merged = proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert "[master-0] rendezvous complete with ranks [1, 2]" in merged
    assert "[worker-1] rank 2 joined" in merged
    one = cli("logs", "pytorchjob/logs", "--replica", "worker-1").stdout
    assert "rank 2 joined" in one and "[" not in one.replace("env {", "")
    bad = cli("logs", "pytorchjob/logs", "--replica", "worker-7")
    assert bad.returncode == 1 and "master-0, worker-0, worker-1" in bad.stderr
    described = cli("describe", "pytorchjob", "logs").stdout
    assert "worker-1" in described and "loss=0.25" in described
    table = cli("get", "pytorchjobs", "-o", "wide").stdout
    assert "Succeeded" in table and "accuracy=0.75" in table


def test_logs_survive_clean_pod_policy_all(client: Any, cli_env: dict[str, str]) -> None:
    """cleanPodPolicy All deletes the replica Pods; their logs stay readable
    (kubeflow/training-operator#877 loses them)."""
    client.apply(
        pytorchjob("cleaned", ["rendezvous"], ["rendezvous"], run_policy={"cleanPodPolicy": "All"})
    )
    client.wait("pytorchjob", "cleaned", condition="Succeeded", timeout=60)
    deadline = time.monotonic() + 30
    while _pods(client, "cleaned") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _pods(client, "cleaned") == {}
    proc = subprocess.run(
        [*shipyard_cmd(), "logs", "pytorchjob/cleaned"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "[master-0] rendezvous complete" in proc.stdout
    assert "[worker-0] rank 1 joined" in proc.stdout


def test_fields_not_acted_on_are_reported_in_status(client: Any) -> None:
    client.apply(
        pytorchjob(
            "sched",
            ["rendezvous"],
            ["rendezvous"],
            run_policy={"schedulingPolicy": {"minAvailable": 2, "queue": "research"}},
        )
    )
    job = client.wait("pytorchjob", "sched", condition="FieldsNotHonoured", timeout=60)
    assert job is not None
    cond = condition(job, "FieldsNotHonoured")
    assert cond is not None
    assert "spec.runPolicy.schedulingPolicy.queue" in cond["message"]
    assert "minAvailable" not in cond["message"]
    client.wait("pytorchjob", "sched", condition="Succeeded", timeout=60)
