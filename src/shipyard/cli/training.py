"""CLI for training jobs: logs by replica, and a describe view with replicas and metrics.

``shipyard logs pytorchjob/NAME`` prints every replica's log prefixed by its replica
(``[master-0] ...``); ``--replica worker-1`` picks one. ``get`` and ``wait`` need nothing
here (tables come from the kinds' columns).
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table

from shipyard.cli import output
from shipyard.cli.main import DESCRIBERS, LOG_SOURCES

Obj = dict[str, Any]
KINDS = ("TrainJob", "PyTorchJob", "TFJob", "XGBoostJob")
_CONTAINERS = ("pytorch", "tensorflow", "xgboost", "node")
_ORDER = ("master", "chief", "ps", "worker", "evaluator", "node")


def _replica_key(pod: Obj) -> tuple[int, int]:
    labels = pod["metadata"].get("labels") or {}
    rtype = labels.get("training.kubeflow.org/replica-type", "")
    index = int(labels.get("training.kubeflow.org/replica-index", "0"))
    return (_ORDER.index(rtype) if rtype in _ORDER else 99, index)


def replica_pods(c: Any, name: str, namespace: str | None) -> list[Obj]:
    """The job's replica Pods (the latest attempt of each replica), in rank order."""
    pods = c.list("pods", namespace, selector=f"training.kubeflow.org/job-name={name}")
    latest: dict[str, Obj] = {}
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        key = labels.get("shipyard.dev/replica", pod["metadata"]["name"])
        attempt = int(labels.get("shipyard.dev/attempt", "0"))
        have = latest.get(key)
        if have is None or attempt > int(have["metadata"]["labels"]["shipyard.dev/attempt"]):
            latest[key] = pod
    return sorted(latest.values(), key=_replica_key)


def _container(pod: Obj) -> str | None:
    names = [x["name"] for x in pod["spec"]["containers"]]
    return next((n for n in _CONTAINERS if n in names), None)


def log_sources(
    c: Any, name: str, namespace: str | None, replica: str | None
) -> list[tuple[str, str, str | None]]:
    pods = replica_pods(c, name, namespace)
    keys = [p["metadata"]["labels"]["shipyard.dev/replica"] for p in pods]
    if replica is not None:
        if replica not in keys:
            output.fail(
                f"job {name!r} has no replica {replica!r}; replicas: {', '.join(keys) or 'none'}"
            )
        i = keys.index(replica)
        return [("", pods[i]["metadata"]["name"], _container(pods[i]))]
    return [(k, p["metadata"]["name"], _container(p)) for k, p in zip(keys, pods, strict=True)]


def describe_job(c: Any, obj: Obj) -> None:
    output.describe(obj)
    status = obj.get("status") or {}
    name = obj["metadata"]["name"]
    t = Table(title="Replicas", box=box.SIMPLE_HEAD, title_justify="left")
    for col in ("REPLICA", "POD", "PHASE", "EXIT"):
        t.add_column(col)
    for pod in replica_pods(c, name, obj["metadata"].get("namespace")):
        labels = pod["metadata"]["labels"]
        codes = [
            str(cs["state"]["terminated"].get("exitCode"))
            for cs in (pod.get("status") or {}).get("containerStatuses") or []
            if "terminated" in (cs.get("state") or {})
        ]
        t.add_row(
            labels.get("shipyard.dev/replica", ""),
            pod["metadata"]["name"],
            (pod.get("status") or {}).get("phase", "Pending"),
            ",".join(codes),
        )
    output.out.print(t)
    if status.get("ports"):
        ports = ", ".join(f"{k}={v}" for k, v in status["ports"].items())
        output.out.print(f"[bold]{'Ports:':<16}[/bold]{ports}", markup=True)
    output.out.print(f"[bold]{'Restarts:':<16}[/bold]{status.get('restarts', 0)}", markup=True)
    if status.get("metrics"):
        shown = ", ".join(f"{k}={v:g}" for k, v in status["metrics"].items())
        output.out.print(f"[bold]{'Metrics:':<16}[/bold]{shown}", markup=True)


for _kind in KINDS:
    LOG_SOURCES[_kind] = log_sources
    DESCRIBERS[_kind] = describe_job
