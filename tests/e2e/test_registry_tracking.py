"""Tracking from real Pods, trials and training replicas; compare and lineage end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from platform_fixtures import shipyard_cmd
from shipyard.client import Client

pytestmark = pytest.mark.e2e
PROG = str(Path(__file__).parents[1] / "tracking" / "track_prog.py")


def _pod(name: str, args: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "python", "command": [sys.executable, *args]}],
        },
    }


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*shipyard_cmd(), *args], env=env, capture_output=True, text=True, timeout=120
    )


def _wait_ok(client: Client, name: str) -> None:
    pod = client.wait("pod", name, phase="Succeeded,Failed", timeout=120)
    assert pod is not None
    assert pod["status"]["phase"] == "Succeeded", "".join(client.logs(name))


def test_pods_log_runs_register_models_compare_and_lineage(
    client: Client, cli_env: dict[str, str], tmp_path: Path
) -> None:
    client.apply(_pod("train-a", [PROG, "1.0", str(tmp_path / "a")]))
    client.apply(_pod("train-b", [PROG, "0.5", str(tmp_path / "b")]))
    _wait_ok(client, "train-a")
    _wait_ok(client, "train-b")

    run = client.get("trackingrun", "train-a")
    st = run["status"]
    assert run["spec"]["execution"]["kind"] == "Pod"
    assert st["params"] == {"C": "1.0", "solver": "lbfgs"}
    assert [(p["step"], p["value"]) for p in st["metrics"]["loss"]] == [
        (0, 0.9),
        (1, 0.5),
        (2, 0.3),
    ]
    assert st["code"]["digest"].startswith("sha256:") and st["code"]["path"] == PROG
    outs = {a["name"]: a for a in st["artifacts"] if a["direction"] == "output"}
    ins = {a["name"]: a for a in st["artifacts"] if a["direction"] == "input"}
    assert set(outs) == {"notes.txt", "clf"} and set(ins) == {"dataset"}
    assert ins["dataset"]["digest"].startswith("sha256:")

    # Two versions of "clf", numbered in registration order, each pointing back at its run.
    versions = {v["spec"]["source"]["run"]: v for v in client.list("modelversions")}
    assert {v["metadata"]["name"] for v in versions.values()} == {"clf-v1", "clf-v2"}
    va = versions["train-a"]
    assert va["spec"]["format"] == "sklearn"
    assert va["spec"]["params"]["C"] == "1.0" and va["spec"]["metrics"]["loss"] == 0.3
    assert va["spec"]["signature"]["inputs"][0]["shape"] == [-1, 3]
    assert (
        va["spec"]["frameworkVersions"]["sklearn"] and "python" in va["spec"]["frameworkVersions"]
    )
    assert st["models"] == [va["metadata"]["name"]]
    model_dir = Path(client.resolve_model(f"models:/clf/{va['spec']['version']}")["location"])
    assert (model_dir / "model.joblib").is_file()

    # compare: side by side, with histories
    cmp = client.compare("train-a", "train-b")
    assert cmp["params"]["C"] == {"train-a": "1.0", "train-b": "0.5"}
    assert cmp["differentParams"] == ["C"]
    assert cmp["metrics"]["loss"]["train-b"]["history"] == [[0, 0.45], [1, 0.25], [2, 0.15]]
    r = _cli(cli_env, "compare", "train-a", "train-b", "--history")
    assert r.returncode == 0, r.stderr
    assert "param C *" in r.stdout and "loss [train-b] 0:0.45 1:0.25 2:0.15" in r.stdout
    bad = _cli(cli_env, "compare", "train-a", "nope")
    assert bad.returncode != 0 and "no tracking run 'nope'" in bad.stderr

    # alias + a service serving it, then lineage both ways
    version = va["spec"]["version"]
    client.set_alias("clf", "production", version)
    client.apply(
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "clf-web"},
            "spec": {
                "predictor": {
                    "minReplicas": 0,
                    "model": {
                        "modelFormat": {"name": "sklearn"},
                        "storageUri": "models:/clf@production",
                    },
                }
            },
        }
    )
    graph = client.lineage("clf", "production")
    types = {n["id"]: n["type"] for n in graph["nodes"]}
    up = {types[i] for i in graph["upstream"]}
    assert {"Artifact", "TrackingRun", "Pod"} <= up
    assert [types[i] for i in graph["downstream"]] == ["InferenceService"]
    datasets = [n for n in graph["nodes"] if n.get("name") == "dataset"]
    assert datasets and datasets[0]["digest"] == ins["dataset"]["digest"]
    out = _cli(cli_env, "lineage", f"model/clf/{version}")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"modelversion clf-v{version}" in text and "aliases production" in text
    assert ins["dataset"]["digest"] in text and st["code"]["digest"] in text
    assert "params C=1.0, solver=lbfgs" in text
    assert "-> [served by] inferenceservice clf-web (models:/clf@production)" in text
    assert text.index("upstream:") < text.index("dataset") < text.index("downstream:")


TRIAL_CODE = (
    "import shipyard; x = float('${trialParameters.x}'); "
    "shipyard.log_param('x', x); shipyard.log_metric('loss', (x - 1) ** 2, step=0); "
    "print(f'loss={(x - 1) ** 2}')"
)


def test_trials_log_into_one_run_each(client: Client) -> None:
    exp = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "tune"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "maxTrialCount": 2,
            "parallelTrialCount": 2,
            "parameters": [
                {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-2", "max": "3"}}
            ],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [{"name": "x", "reference": "x"}],
                "trialSpec": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "main",
                                "image": "python",
                                "command": [sys.executable, "-c", TRIAL_CODE],
                            }
                        ],
                    },
                },
            },
        },
    }
    client.apply(exp)
    client.wait("experiment", "tune", condition="Succeeded", timeout=180)
    trials = {t["metadata"]["name"]: t for t in client.list("trials")}
    runs = {r["metadata"]["name"]: r for r in client.list("trackingruns")}
    assert set(runs) == set(trials) and len(runs) == 2
    for name, run in runs.items():
        assert run["spec"]["execution"]["kind"] == "Trial"
        assert run["spec"]["parent"] == {
            **run["spec"]["parent"],
            "kind": "Experiment",
            "name": "tune",
        }
        assignment = {a["name"]: a["value"] for a in trials[name]["spec"]["parameterAssignments"]}
        x = float(assignment["x"])
        assert float(run["status"]["params"]["x"]) == x
        assert run["status"]["metrics"]["loss"][0]["value"] == pytest.approx((x - 1) ** 2)
    cmp = client.compare(*sorted(runs))
    assert set(cmp["params"]["x"]) == set(runs)


REPLICA_CODE = (
    "import os, shipyard; rank = int(os.environ['RANK']); "
    "shipyard.log_param(f'rank{rank}', os.environ['SHIPYARD_POD_NAME']); "
    "shipyard.log_metric(f'loss_rank{rank}', 1.0 / (rank + 1), step=0)"
)


def test_training_replicas_log_into_the_job_run(client: Client) -> None:
    def replica(n: int) -> dict[str, Any]:
        return {
            "replicas": n,
            "restartPolicy": "Never",
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "pytorch",
                            "image": "pytorch/pytorch",
                            "command": [sys.executable, "-c", REPLICA_CODE],
                        }
                    ]
                }
            },
        }

    client.apply(
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "PyTorchJob",
            "metadata": {"name": "ddp"},
            "spec": {"pytorchReplicaSpecs": {"Master": replica(1), "Worker": replica(1)}},
        }
    )
    client.wait("pytorchjob", "ddp", condition="Succeeded", timeout=180)
    # A PyTorchJob with a Master succeeds when the Master does (Kubeflow's rule): the worker
    # may still be logging then. Its Pod ends soon after.
    for pod in client.list("pods", selector="shipyard.dev/owner=ddp"):
        client.wait("pod", pod["metadata"]["name"], phase="Succeeded", timeout=60)
    run = client.get("trackingrun", "ddp")
    assert run["spec"]["execution"]["kind"] == "PyTorchJob"
    st = run["status"]
    assert set(st["params"]) == {"rank0", "rank1"}
    assert set(st["params"].values()) == set(st["pods"]) and len(st["pods"]) == 2
    assert st["metrics"]["loss_rank1"][0]["value"] == 0.5
