"""The environment contract each replica gets, exactly as Kubeflow's operators inject it.

Locally every replica runs on this machine, so addresses are ``127.0.0.1`` and ports are
allocated free per job (kept in the job's status so every reconcile agrees); on Kubernetes
they would be the replicas' service names and Kubeflow's fixed ports.
"""

from __future__ import annotations

import json
import socket

from shipyard.training.plan import Plan, Replica, nproc_number

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def allocate(names: list[str], taken: set[int]) -> dict[str, int]:
    """A free port per name, different from each other and from ``taken``."""
    out: dict[str, int] = {}
    while len(out) < len(names):
        port = free_port()
        if port not in taken and port not in out.values():
            out[names[len(out)]] = port
    return out


def _rank(plan: Plan, replica: Replica) -> int:
    if replica.rtype == "Worker" and "Master" in plan.types:
        return replica.index + 1
    return replica.index


def _torch(plan: Plan, replica: Replica, ports: dict[str, int]) -> dict[str, str]:
    port = str(ports["master"])
    rank = str(_rank(plan, replica))
    nodes = len(plan.replicas)
    env = {
        "PYTHONUNBUFFERED": "1",
        "MASTER_ADDR": HOST,
        "MASTER_PORT": port,
        "PET_MASTER_ADDR": HOST,
        "PET_MASTER_PORT": port,
        "PET_NPROC_PER_NODE": plan.nproc,
    }
    if plan.elastic:
        ep = plan.elastic
        lo, hi = ep.get("minReplicas") or nodes, ep.get("maxReplicas") or nodes
        env.update(
            PET_NNODES=f"{lo}:{hi}",
            PET_RDZV_BACKEND=ep.get("rdzvBackend") or "c10d",
            PET_RDZV_ENDPOINT=f"{HOST}:{port}",
            PET_RDZV_ID=ep.get("rdzvId") or plan.name,
        )
        if ep.get("maxRestarts") is not None:
            env["PET_MAX_RESTARTS"] = str(ep["maxRestarts"])
        if ep.get("rdzvConf"):
            env["PET_RDZV_CONF"] = ",".join(f"{c['key']}={c['value']}" for c in ep["rdzvConf"])
        if ep.get("standalone"):
            env["PET_STANDALONE"] = "1"
        return env
    env.update(
        WORLD_SIZE=str(nodes * nproc_number(plan)),
        RANK=rank,
        PET_NNODES=str(nodes),
        PET_NODE_RANK=rank,
    )
    return env


def _torch_v2(plan: Plan, replica: Replica, ports: dict[str, int]) -> dict[str, str]:
    """Trainer v2's torch runtime: only the PET_* variables; torchrun derives the rest."""
    return {
        "PYTHONUNBUFFERED": "1",
        "PET_NNODES": str(len(plan.replicas)),
        "PET_NPROC_PER_NODE": plan.nproc,
        "PET_NODE_RANK": str(replica.index),
        "PET_MASTER_ADDR": HOST,
        "PET_MASTER_PORT": str(ports["master"]),
    }


def tf_config(plan: Plan, replica: Replica, ports: dict[str, int]) -> str:
    cluster: dict[str, list[str]] = {}
    for r in plan.replicas:
        if r.rtype == "Evaluator":  # Kubeflow leaves the evaluator out of the cluster
            continue
        cluster.setdefault(r.rtype.lower(), []).append(f"{HOST}:{ports[r.key]}")
    return json.dumps(
        {
            "cluster": cluster,
            "task": {"type": replica.rtype.lower(), "index": replica.index},
            "environment": "cloud",
        }
    )


def _xgboost(plan: Plan, replica: Replica, ports: dict[str, int]) -> dict[str, str]:
    workers = [r for r in plan.replicas if r.rtype == "Worker"]
    return {
        "PYTHONUNBUFFERED": "1",
        "MASTER_ADDR": HOST,
        "MASTER_PORT": str(ports["master"]),
        "WORLD_SIZE": str(len(plan.replicas)),
        "RANK": str(_rank(plan, replica)),
        "WORKER_PORT": str(ports["worker"]),
        "WORKER_ADDRS": ",".join(HOST for _ in workers),
    }


def env_for(plan: Plan, replica: Replica, ports: dict[str, int]) -> dict[str, str]:
    if plan.framework == "torch":
        return _torch_v2(plan, replica, ports)
    if plan.framework == "tensorflow":
        return {"PYTHONUNBUFFERED": "1", "TF_CONFIG": tf_config(plan, replica, ports)}
    if plan.framework == "xgboost":
        return _xgboost(plan, replica, ports)
    return _torch(plan, replica, ports)
