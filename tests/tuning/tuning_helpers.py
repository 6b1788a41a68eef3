"""Experiments for the tuning tests: Katib-shaped, with trivial Python trials."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

# A trial that prints the objective of a 2-D quadratic with its minimum at (1, 0.5).
QUADRATIC = (
    "x = float('${trialParameters.x}'); y = float('${trialParameters.y}'); "
    "print(f'loss={(x - 1) ** 2 + (y - 0.5) ** 2}')"
)


def experiment(
    name: str,
    *,
    algorithm: str = "random",
    settings: dict[str, str] | None = None,
    code: str = QUADRATIC,
    parameters: list[Obj] | None = None,
    max_trials: int = 4,
    parallel: int = 2,
    api_version: str = "kubeflow.org/v1beta1",
    kind: str = "Job",
    **spec: Any,
) -> Obj:
    params = parameters or [
        {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-2", "max": "3"}},
        {"name": "y", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
    ]
    container = {"name": "main", "image": "python", "command": ["python", "-c", code]}
    pod_spec = {"restartPolicy": "Never", "containers": [container]}
    trial_spec: Obj = (
        {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": pod_spec}}}
        if kind == "Job"
        else {"apiVersion": "v1", "kind": "Pod", "spec": pod_spec}
    )
    body: Obj = {
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "algorithm": {
            "algorithmName": algorithm,
            "algorithmSettings": [{"name": k, "value": v} for k, v in (settings or {}).items()],
        },
        "maxTrialCount": max_trials,
        "parallelTrialCount": parallel,
        "parameters": params,
        "trialTemplate": {
            "primaryContainerName": "main",
            "trialParameters": [{"name": p["name"], "reference": p["name"]} for p in params],
            "trialSpec": trial_spec,
        },
    }
    body.update(spec)
    return {
        "apiVersion": api_version,
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": body,
    }


def condition(obj: Obj, ctype: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == ctype and c["status"] == "True":
            return c
    return None


def phase(obj: Obj) -> str:
    for ctype in ("Succeeded", "Failed", "Killed", "MetricsUnavailable", "EarlyStopped", "Running"):
        if condition(obj, ctype):
            return ctype
    return "Pending"


def objective(trial: Obj, name: str = "loss") -> float | None:
    for m in ((trial.get("status") or {}).get("observation") or {}).get("metrics") or []:
        if m["name"] == name:
            return float(m["latest"])
    return None
