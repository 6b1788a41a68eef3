"""Bad input for training kinds: Kubeflow's webhook checks, with messages naming fields."""

from __future__ import annotations

import copy
import subprocess
from typing import Any

import pytest

from platform_fixtures import shipyard_cmd
from shipyard import errors
from training.jobs import pytorchjob


def _refused(client: Any, obj: dict[str, Any]) -> errors.ShipyardError:
    with pytest.raises(errors.ShipyardError) as info:
        client.apply(obj)
    return info.value


def test_pytorchjob_webhook_checks(client: Any) -> None:
    job = pytorchjob("bad", ["exit", "0"], ["exit", "0"])
    two_masters = copy.deepcopy(job)
    two_masters["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = 2
    err = _refused(client, two_masters)
    assert err.field == "spec.pytorchReplicaSpecs.Master.replicas"
    assert "must be 1 (got 2)" in err.message

    renamed = copy.deepcopy(job)
    renamed["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0][
        "name"
    ] = "main"
    err = _refused(client, renamed)
    assert "container named 'pytorch'" in err.message
    assert err.field == "spec.pytorchReplicaSpecs.Worker.template.spec.containers"

    unknown = copy.deepcopy(job)
    unknown["spec"]["pytorchReplicaSpecs"]["Launcher"] = unknown["spec"]["pytorchReplicaSpecs"][
        "Worker"
    ]
    err = _refused(client, unknown)
    assert "unknown replica type 'Launcher'" in err.message and "Master, Worker" in err.message

    no_image = copy.deepcopy(job)
    del no_image["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0][
        "image"
    ]
    err = _refused(client, no_image)
    assert err.field == "spec.pytorchReplicaSpecs.Master.template.spec.containers[0].image"

    bad_policy = copy.deepcopy(job)
    bad_policy["spec"]["pytorchReplicaSpecs"]["Master"]["restartPolicy"] = "Sometimes"
    err = _refused(client, bad_policy)
    assert "spec.pytorchReplicaSpecs.Master.restartPolicy" in err.message

    elastic = pytorchjob("el", None, ["exit", "0"], workers=2)
    elastic["spec"]["elasticPolicy"] = {"minReplicas": 3, "maxReplicas": 2}
    err = _refused(client, elastic)
    assert err.field == "spec.elasticPolicy.minReplicas"

    bad_name = copy.deepcopy(job)
    bad_name["metadata"]["name"] = "1job"
    err = _refused(client, bad_name)
    assert err.field == "metadata.name"
    assert client.list("pytorchjobs") == []


def test_tfjob_xgboost_and_trainer_v2_checks(client: Any) -> None:
    c = {"name": "tensorflow", "image": "tf", "command": ["true"]}
    tf = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": "tf"},
        "spec": {
            "tfReplicaSpecs": {
                "Chief": {"template": {"spec": {"containers": [c]}}},
                "Master": {"template": {"spec": {"containers": [c]}}},
            }
        },
    }
    assert "either Chief or Master" in _refused(client, tf).message
    xgb = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "XGBoostJob",
        "metadata": {"name": "xgb"},
        "spec": {
            "xgbReplicaSpecs": {
                "Worker": {
                    "template": {
                        "spec": {"containers": [{**c, "name": "xgboost"}]},
                    }
                }
            }
        },
    }
    err = _refused(client, xgb)
    assert err.field == "spec.xgbReplicaSpecs.Master"
    v2 = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "v2"},
        "spec": {"runtimeRef": {"name": "torch-nope"}, "trainer": {"command": ["true"]}},
    }
    err = _refused(client, v2)
    assert err.field == "spec.runtimeRef.name" and "torch-distributed" in err.message
    v2["spec"]["runtimeRef"]["name"] = "torch-distributed"
    v2["spec"]["trainer"]["env"] = [{"name": "PET_NNODES", "value": "3"}]
    err = _refused(client, v2)
    assert err.field == "spec.trainer.env[0].name"
    del v2["spec"]["trainer"]
    assert _refused(client, v2).field == "spec.trainer.command"


def test_cli_prints_one_line_error(client: Any, cli_env: dict[str, str], tmp_path: Any) -> None:
    import yaml

    job = pytorchjob("bad", ["exit", "0"], ["exit", "0"])
    job["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = 3
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    proc = subprocess.run(
        [*shipyard_cmd(), "apply", "-f", str(path)],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stderr
    assert "spec.pytorchReplicaSpecs.Master.replicas must be 1 (got 3)" in lines[0]
