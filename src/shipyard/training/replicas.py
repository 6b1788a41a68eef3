"""Replica Pods: built from a plan, and read back (phase, exit code, scheduling reason)."""

from __future__ import annotations

import copy
from typing import Any

from shipyard.core.resource import Obj, owner_ref
from shipyard.core.scheduler import GANG_LABEL, GANG_SIZE
from shipyard.training.envs import env_for
from shipyard.training.plan import Plan, Replica

REPLICA_LABEL = "shipyard.dev/replica"
ATTEMPT_LABEL = "shipyard.dev/attempt"
SOURCE_DIR = "shipyard.dev/source-dir"


def build_pod(
    job: Obj, plan: Plan, replica: Replica, ports: dict[str, int], attempt: int, gang_size: int
) -> Obj:
    """The Pod of one replica, in Kubernetes' v1 shape.

    restartPolicy is always Never: the job controller decides restarts (whole-gang
    recreation, or per replica for elastic jobs), so ExitCode and backoffLimit can be honoured
    and a restarted replica always rejoins a fresh rendezvous.
    """
    md = job["metadata"]
    template = copy.deepcopy(replica.template)
    tmd: Obj = template.get("metadata") or {}
    spec: Obj = template["spec"]
    spec["restartPolicy"] = "Never"
    env = env_for(plan, replica, ports)
    for c in spec["containers"]:
        kept = [e for e in c.get("env") or [] if e["name"] not in env]
        c["env"] = kept + [{"name": k, "value": v} for k, v in env.items()]
    labels: dict[str, str] = {
        **(tmd.get("labels") or {}),
        "shipyard.dev/namespace": md.get("namespace", ""),
        "shipyard.dev/owner": md["name"],
        "shipyard.dev/kind": job["kind"],
        "training.kubeflow.org/job-name": md["name"],
        "training.kubeflow.org/replica-type": replica.rtype.lower(),
        "training.kubeflow.org/replica-index": str(replica.index),
        REPLICA_LABEL: replica.key,
        ATTEMPT_LABEL: str(attempt),
        GANG_LABEL: md["uid"],
    }
    if replica.rtype in ("Master", "Chief") or (replica.rtype == "Node" and replica.index == 0):
        labels["training.kubeflow.org/job-role"] = "master"
    annotations: dict[str, str] = {
        **(tmd.get("annotations") or {}),
        GANG_SIZE: str(gang_size),
    }
    source = (md.get("annotations") or {}).get(SOURCE_DIR)
    if source:
        annotations[SOURCE_DIR] = source
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": replica.pod_name,
            "namespace": md.get("namespace", ""),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_ref(job)],
        },
        "spec": spec,
    }


def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def exit_code(pod: Obj, container: str) -> int | None:
    """The exit code of the framework's container (or the first one that ended)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    ordered = sorted(statuses, key=lambda cs: cs.get("name") != container)
    for cs in ordered:
        term = (cs.get("state") or {}).get("terminated")
        if term and term.get("exitCode") is not None:
            return int(term["exitCode"])
    return None


def failure_text(pod: Obj, container: str) -> str:
    status = pod.get("status") or {}
    code = exit_code(pod, container)
    for cs in status.get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated") or {}
        if term.get("reason") and term.get("reason") not in ("Error", "Completed"):
            return f"{term['reason']}, exit code {code}"
    if status.get("reason"):
        return str(status["reason"])
    return f"exit code {code}"


def pending_reason(pod: Obj) -> str | None:
    """Why a Pod is not admitted yet (the scheduler's message), if it says."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return str(cond.get("message") or cond.get("reason") or "")
    return None


def retryable(policy: str, code: int | None) -> bool:
    """Kubeflow's restart rule for a failed replica."""
    if policy in ("OnFailure", "Always"):
        return True
    if policy == "ExitCode":
        # 1-127: permanent (the program failed); >= 128: retryable (killed by a signal,
        # OOM, eviction). An unknown code means the process was lost: retryable.
        return code is None or code >= 128
    return False


def labels_of(pod: Obj) -> dict[str, Any]:
    return dict(pod["metadata"].get("labels") or {})
