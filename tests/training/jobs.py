"""Builders of training job manifests for the tests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

PROG = str(Path(__file__).with_name("replica_prog.py"))


def container(args: list[str], env: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": "pytorch",
        "image": "pytorch/pytorch:2.7.1",
        "command": [sys.executable, PROG, *args],
    }
    if env:
        c["env"] = [{"name": k, "value": v} for k, v in env.items()]
    c.update(extra)
    return c


def pytorchjob(
    name: str,
    master: list[str] | None,
    worker: list[str] | None,
    *,
    workers: int = 1,
    restart: str = "Never",
    run_policy: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    master_extra: dict[str, Any] | None = None,
    worker_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    specs: dict[str, Any] = {}
    if master is not None:
        specs["Master"] = {
            "replicas": 1,
            "restartPolicy": restart,
            "template": {"spec": {"containers": [container(master, env, **(master_extra or {}))]}},
        }
    if worker is not None:
        specs["Worker"] = {
            "replicas": workers,
            "restartPolicy": restart,
            "template": {"spec": {"containers": [container(worker, env, **(worker_extra or {}))]}},
        }
    spec: dict[str, Any] = {"pytorchReplicaSpecs": specs}
    if run_policy:
        spec["runPolicy"] = run_policy
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": spec,
    }


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return dict(c)
    return None
