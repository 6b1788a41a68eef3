"""One plan for every training kind: the replicas to run and the rules that apply.

The controller works on a :class:`Plan`, whatever kind the user wrote: Kubeflow v1 jobs,
Shipyard's TrainJob and Trainer v2 TrainJobs all normalise to replicas (type, index, pod
template, restart policy) plus run policy, elastic policy and success rule. Kubeflow's
defaults (replicas 1, the framework's restartPolicy) are applied here, not written back.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from shipyard.core.resource import Obj
from shipyard.training import runtimes
from shipyard.training.api import FRAMEWORKS

# The order replica types get ranks in (Kubeflow: master first, then workers).
_ORDER = ("Master", "Chief", "PS", "Worker", "Evaluator")


@dataclass(frozen=True)
class Replica:
    rtype: str  # Kubeflow's spelling: Master, Worker, PS, Chief, Evaluator, Node
    index: int
    pod_name: str
    template: Obj
    restart_policy: str

    @property
    def key(self) -> str:
        """What ``--replica`` names: ``master-0``, ``worker-1``, ``node-0``."""
        return f"{self.rtype.lower()}-{self.index}"


@dataclass
class Plan:
    kind: str
    name: str
    framework: str  # pytorch | tensorflow | xgboost | torch (Trainer v2)
    container: str  # the framework's container (exit codes are read from it)
    replicas: list[Replica]
    run_policy: Obj = field(default_factory=dict)
    elastic: Obj | None = None
    nproc: str = "auto"
    success_policy: str = ""

    @property
    def types(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.replicas:
            out[r.rtype] = out.get(r.rtype, 0) + 1
        return out

    def by_key(self) -> dict[str, Replica]:
        return {r.key: r for r in self.replicas}


def _v1(obj: Obj, framework: str, specs: Obj, spec: Obj) -> Plan:
    fw = FRAMEWORKS[framework]
    name = obj["metadata"]["name"]
    replicas: list[Replica] = []
    for rtype in sorted(specs, key=lambda t: _ORDER.index(t) if t in _ORDER else 99):
        rspec = specs[rtype]
        for i in range(int(rspec.get("replicas", 1))):
            replicas.append(
                Replica(
                    rtype=rtype,
                    index=i,
                    pod_name=f"{name}-{rtype.lower()}-{i}",
                    template=rspec["template"],
                    restart_policy=rspec.get("restartPolicy") or fw["restart"],
                )
            )
    elastic = spec.get("elasticPolicy")
    nproc = spec.get("nprocPerNode")
    if elastic and elastic.get("nProcPerNode") is not None:
        nproc = elastic["nProcPerNode"]
    return Plan(
        kind=obj["kind"],
        name=name,
        framework=framework,
        container=fw["container"],
        replicas=replicas,
        run_policy=dict(spec.get("runPolicy") or {}),
        elastic=dict(elastic) if elastic else None,
        nproc=str(nproc if nproc is not None else "auto"),
        success_policy=spec.get("successPolicy") or "",
    )


def _v2(obj: Obj) -> Plan:
    spec = obj["spec"]
    runtime = runtimes.BUILTIN[spec["runtimeRef"]["name"]]
    trainer = spec.get("trainer") or {}
    name = obj["metadata"]["name"]
    container: Obj = {
        "name": "node",
        "image": trainer.get("image") or runtime["image"],
        "command": trainer.get("command") or runtime["command"],
    }
    if trainer.get("args"):
        container["args"] = list(trainer["args"])
    if trainer.get("env"):
        container["env"] = copy.deepcopy(trainer["env"])
    if trainer.get("resourcesPerNode"):
        container["resources"] = copy.deepcopy(trainer["resourcesPerNode"])
    template: Obj = {
        "metadata": {
            "labels": dict(spec.get("labels") or {}),
            "annotations": dict(spec.get("annotations") or {}),
        },
        "spec": {"containers": [container]},
    }
    n = int(trainer.get("numNodes") or runtime["numNodes"])
    replicas = [Replica("Node", i, f"{name}-node-0-{i}", template, "Never") for i in range(n)]
    run_policy: Obj = {"suspend": bool(spec.get("suspend"))}
    if spec.get("activeDeadlineSeconds"):
        run_policy["activeDeadlineSeconds"] = spec["activeDeadlineSeconds"]
    return Plan(
        kind=obj["kind"],
        name=name,
        framework=runtime["framework"],
        container="node",
        replicas=replicas,
        run_policy=run_policy,
        nproc=str(trainer.get("numProcPerNode") or runtime["numProcPerNode"]),
        success_policy="AllNodes",
    )


def plan_for(obj: Obj) -> Plan:
    """The plan of any training kind (the object is already validated)."""
    spec = obj["spec"]
    kind, api_version = obj["kind"], obj["apiVersion"]
    if api_version.startswith("trainer.kubeflow.org/"):
        return _v2(obj)
    if kind == "PyTorchJob":
        return _v1(obj, "pytorch", spec["pytorchReplicaSpecs"], spec)
    if kind == "TFJob":
        return _v1(obj, "tensorflow", spec["tfReplicaSpecs"], spec)
    if kind == "XGBoostJob":
        return _v1(obj, "xgboost", spec["xgbReplicaSpecs"], spec)
    framework = spec.get("framework", "pytorch")
    return _v1(obj, framework, spec["replicaSpecs"], spec)


def suspended(plan: Plan) -> bool:
    return bool(plan.run_policy.get("suspend"))


def gang_min(plan: Plan) -> int:
    """How many replicas must start together (schedulingPolicy.minAvailable, elastic min)."""
    sp = plan.run_policy.get("schedulingPolicy") or {}
    if sp.get("minAvailable"):
        return min(len(plan.replicas), int(sp["minAvailable"]))
    if plan.elastic and plan.elastic.get("minReplicas"):
        return min(len(plan.replicas), int(plan.elastic["minReplicas"]))
    return len(plan.replicas)


def nproc_number(plan: Plan) -> int:
    """Processes per node for WORLD_SIZE: the number, or 1 for auto / cpu / gpu."""
    return int(plan.nproc) if plan.nproc.isdigit() else 1


def port_names(plan: Plan) -> list[str]:
    """The ports a job needs on this machine, by name (allocated once, kept in status)."""
    if plan.framework == "tensorflow":
        return [r.key for r in plan.replicas]
    if plan.framework == "xgboost":
        return ["master", "worker"]
    return ["master"]


def replica_from_labels(labels: dict[str, str]) -> str:
    return labels.get("shipyard.dev/replica", "")


def success_rule(plan: Plan) -> str:
    """Which replicas must succeed, in words (for messages)."""
    types = plan.types
    if plan.framework == "tensorflow":
        if "Chief" in types or "Master" in types:
            return "chief"
        return "all workers" if plan.success_policy == "AllWorkers" else "worker 0"
    if "Master" in types:
        return "master"
    if plan.elastic:
        return "any worker"
    return "all replicas"


def succeeded(plan: Plan, phases: dict[str, str]) -> bool:
    """Kubeflow's success rule over the current replicas' Pod phases (by replica key)."""
    ok = {k for k, p in phases.items() if p == "Succeeded"}
    types = plan.types
    if plan.framework == "tensorflow":
        for t in ("Chief", "Master"):
            if t in types:
                return f"{t.lower()}-0" in ok
        workers = [r.key for r in plan.replicas if r.rtype == "Worker"]
        if plan.success_policy == "AllWorkers":
            return bool(workers) and all(w in ok for w in workers)
        return "worker-0" in ok
    if "Master" in types:
        return "master-0" in ok
    if plan.elastic:
        return any(k.startswith("worker-") for k in ok)
    return all(r.key in ok for r in plan.replicas)
