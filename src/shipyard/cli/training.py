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
    c: Any, name: str, namespace: str | None, replica: str | None, kind: str = ""
) -> list[tuple[str, str, str | None]]:
    """(prefix, pod, container) per replica. Replica Pods removed by cleanPodPolicy, a
    failure or a finished job still have logs (the server keeps them), found by the
    replica Pod names the job's plan gives."""
    pods = replica_pods(c, name, namespace)
    sources = {
        p["metadata"]["labels"]["shipyard.dev/replica"]: (p["metadata"]["name"], _container(p))
        for p in pods
    }
    if kind:
        from shipyard.training.plan import plan_for

        job = _get_job(c, kind, name, namespace)
        if job is not None:
            plan = plan_for(job)
            for r in plan.replicas:
                sources.setdefault(r.key, (r.pod_name, plan.container))
    keys = sorted(sources, key=lambda k: _replica_key_of(k))
    if replica is not None:
        if replica not in sources:
            output.fail(
                f"job {name!r} has no replica {replica!r}; replicas: {', '.join(keys) or 'none'}"
            )
        return [("", *sources[replica])]
    return [(k, *sources[k]) for k in keys]


def _get_job(c: Any, kind: str, name: str, namespace: str | None) -> Obj | None:
    """The job by Kind; TrainJob may be Shipyard's or Trainer v2's."""
    from shipyard.errors import NotFound

    names = [kind] + (["trainjobs.trainer.kubeflow.org"] if kind == "TrainJob" else [])
    for candidate in names:
        try:
            job: Obj = c.get(candidate, name, namespace)
            return job
        except NotFound:
            continue
    return None


def _replica_key_of(key: str) -> tuple[int, int]:
    rtype, _, index = key.rpartition("-")
    return (_ORDER.index(rtype) if rtype in _ORDER else 99, int(index) if index.isdigit() else 0)


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


def _log_sources_for(kind: str) -> Any:
    def sources(
        c: Any, name: str, namespace: str | None, replica: str | None
    ) -> list[tuple[str, str, str | None]]:
        return log_sources(c, name, namespace, replica, kind)

    return sources


for _kind in KINDS:
    LOG_SOURCES[_kind] = _log_sources_for(_kind)
    DESCRIBERS[_kind] = describe_job
