"""The training examples, applied as they are through the CLI; Trainer v2 and client.train."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from platform_fixtures import EXAMPLES, shipyard_cmd
from shipyard.training.sdk import TrainingFailed

pytestmark = pytest.mark.e2e


def _cli(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [*shipyard_cmd(), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_ddp_tfjob_and_xgboost_examples(client: Any, cli_env: dict[str, str]) -> None:
    folder = EXAMPLES / "training"
    for f in ("pytorchjob-ddp.yaml", "tfjob.yaml", "xgboostjob.yaml"):
        _cli(cli_env, "apply", "-f", str(folder / f))
    for ref in ("tfjob/tf-config", "xgboostjob/xgboost-env", "pytorchjob/ddp"):
        _cli(cli_env, "wait", ref, "--for=condition=Succeeded", "--timeout=240s")
    logs = _cli(cli_env, "logs", "pytorchjob/ddp")
    assert "[master-0] rank 0/2: weights identical across ranks: True" in logs
    assert "[worker-0] rank 1/2: weights identical across ranks: True" in logs
    job = client.get("pytorchjob", "ddp")
    assert job["status"]["metrics"]["epoch"] == 4.0
    assert job["status"]["metrics"]["loss"] < 1.0
    tf_logs = _cli(cli_env, "logs", "tfjob/tf-config")
    for key in ("ps-0", "worker-0", "worker-1"):
        assert f"[{key}] task " in tf_logs and "reached 3 tasks" in tf_logs
    xgb = _cli(cli_env, "logs", "xgboostjob/xgboost-env", "--replica", "master-0")
    assert "tracker: 2 workers joined with ranks [1, 2]" in xgb
    # The stored object keeps Kubeflow's form.
    shown = yaml.safe_load(_cli(cli_env, "get", "pytorchjob", "ddp", "-o", "yaml"))
    assert shown["apiVersion"] == "kubeflow.org/v1" and "pytorchReplicaSpecs" in shown["spec"]


def test_trainer_v2_trainjob_with_torch_runtime(client: Any, cli_env: dict[str, str]) -> None:
    script = (
        "import os; keys = ['PET_NNODES', 'PET_NPROC_PER_NODE', 'PET_NODE_RANK', "
        "'PET_MASTER_ADDR', 'PET_MASTER_PORT']; "
        "print(' '.join(k + ':' + os.environ.get(k, '-') for k in keys)); "
        "print('RANK' in os.environ, 'WORLD_SIZE' in os.environ)"
    )
    client.apply(
        {
            "apiVersion": "trainer.kubeflow.org/v1alpha1",
            "kind": "TrainJob",
            "metadata": {"name": "v2"},
            "spec": {
                "runtimeRef": {"name": "torch-distributed"},
                "trainer": {"numNodes": 2, "command": ["python", "-c", script]},
            },
        }
    )
    job = client.wait("trainjobs.trainer.kubeflow.org", "v2", condition="Complete", timeout=60)
    assert [c["type"] for c in job["status"]["conditions"]] == ["Complete"]
    port = job["status"]["ports"]["master"]
    logs = _cli(cli_env, "logs", "trainjobs.trainer.kubeflow.org/v2")
    for rank in (0, 1):
        assert (
            f"[node-{rank}] PET_NNODES:2 PET_NPROC_PER_NODE:auto PET_NODE_RANK:{rank} "
            f"PET_MASTER_ADDR:127.0.0.1 PET_MASTER_PORT:{port}"
        ) in logs
    assert "[node-1] False False" in logs  # only PET_* (torchrun derives the rest)
    pods = client.list("pods", selector="training.kubeflow.org/job-name=v2")
    assert sorted(p["metadata"]["name"] for p in pods) == ["v2-node-0-0", "v2-node-0-1"]
    shown = yaml.safe_load(
        _cli(cli_env, "get", "trainjobs.trainer.kubeflow.org", "v2", "-o", "yaml")
    )
    assert shown["apiVersion"] == "trainer.kubeflow.org/v1alpha1"


def train_fn(steps: int) -> None:
    import os
    import socket

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    if rank == 0:
        server = socket.create_server((addr, port))
        server.settimeout(60)
        for _ in range(world - 1):
            server.accept()[0].close()
        for step in range(steps):
            print(f"step={step} loss={1.0 / (step + 1):.4f}")
    else:
        import time

        for _ in range(600):
            try:
                socket.create_connection((addr, port), timeout=2).close()
                break
            except OSError:
                time.sleep(0.05)
    print(f"rank {rank} of {world} done")


def failing_fn() -> None:
    raise SystemExit(7)


def test_client_train_runs_a_function_on_every_node(client: Any) -> None:
    handle = client.train(train_fn, num_nodes=2, kwargs={"steps": 3}, name="fn")
    assert handle.wait(timeout=60) == "Succeeded"
    assert handle.metrics() == {"step": 2.0, "loss": 0.3333}
    logs = handle.logs()
    assert "[worker-0] rank 0 of 2 done" in logs and "[worker-1] rank 1 of 2 done" in logs
    assert handle.logs("worker-1").strip() == "rank 1 of 2 done"
    bad = client.train(failing_fn, num_nodes=1, name="fails")
    with pytest.raises(TrainingFailed, match="exit code 7"):
        bad.wait(timeout=60)


def test_elastic_job_through_torchrun_rendezvous(client: Any) -> None:
    folder = Path(__file__).resolve().parents[1] / "training"
    client.apply(
        {
            "apiVersion": "shipyard.dev/v1",
            "kind": "TrainJob",
            "metadata": {
                "name": "elastic",
                "annotations": {"shipyard.dev/source-dir": str(folder)},
            },
            "spec": {
                "framework": "pytorch",
                "elasticPolicy": {
                    "minReplicas": 1,
                    "maxReplicas": 2,
                    "maxRestarts": 1,
                    "nProcPerNode": 1,
                },
                "replicaSpecs": {
                    "Worker": {
                        "replicas": 2,
                        "restartPolicy": "OnFailure",
                        "template": {
                            "spec": {
                                "containers": [
                                    {
                                        "name": "pytorch",
                                        "command": ["torchrun", "elastic_prog.py"],
                                    }
                                ]
                            }
                        },
                    }
                },
            },
        }
    )
    job = client.wait("trainjob", "elastic", condition="Succeeded", timeout=150)
    assert job["status"]["metrics"]["sum"] == 2.0  # both nodes joined one rendezvous
    pods = client.list("pods", selector="training.kubeflow.org/job-name=elastic")
    env = {e["name"]: e["value"] for e in pods[0]["spec"]["containers"][0]["env"]}
    assert env["PET_NNODES"] == "1:2" and env["PET_RDZV_BACKEND"] == "c10d"
    assert env["PET_MAX_RESTARTS"] == "1" and "RANK" not in env
