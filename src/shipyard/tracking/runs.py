"""Server side of tracking: which run a Pod logs into, and recording what it logs.

Writes are read-modify-write of the run's status under one lock per platform (the control
plane is one process), retried on a stale resourceVersion.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from typing import Any

from shipyard.core.resource import Obj, controller_of, owner_ref
from shipyard.errors import AlreadyExists, BadRequest, Conflict, Forbidden, NotFound
from shipyard.tracking.api import AGGREGATES, RUN_LABEL, TRACKING_RUN, VERSION

MAX_HISTORY = 10_000  # points kept per metric (the oldest are dropped beyond it)
MAX_CHAIN = 10


def _ref(obj: Obj) -> Obj:
    md = obj["metadata"]
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": md["name"],
        "uid": md["uid"],
    }


class Tracker:
    def __init__(self, platform: Any) -> None:
        self.platform = platform
        self.store = platform.store
        self._lock = threading.Lock()

    # -- identity ---------------------------------------------------------------------------

    def pod(self, namespace: str, name: str, uid: str | None) -> Obj:
        pod = self.store.try_get("Pod", namespace, name)
        if pod is None:
            raise NotFound(
                f"pod {namespace}/{name} not found: tracking works from a Pod's own "
                "environment (SHIPYARD_POD_NAME/NAMESPACE/UID)",
                field="pod",
            )
        if uid and pod["metadata"]["uid"] != uid:
            raise Forbidden(
                f"pod {namespace}/{name} has uid {pod['metadata']['uid']}, not {uid}: "
                "this process belongs to an older Pod of that name",
                field="uid",
            )
        return dict(pod)

    def owner_chain(self, obj: Obj) -> list[Obj]:
        """``obj`` and its controllers, upwards (as far as they still exist)."""
        chain = [obj]
        while len(chain) < MAX_CHAIN:
            ref = controller_of(chain[-1])
            if ref is None:
                break
            found = self.store.get_by_uid(ref["uid"])
            if found is None:
                break
            chain.append(found[1])
        return chain

    def execution_of(self, pod: Obj) -> tuple[Obj, Obj | None]:
        """(execution, parent aggregate or None) for a Pod."""
        chain = self.owner_chain(pod)
        execution, parent = chain[0], None
        for obj in chain[1:]:
            if obj["kind"] in AGGREGATES:
                parent = obj
                break
            execution = obj
        return execution, parent

    # -- runs -------------------------------------------------------------------------------

    def run_for_pod(self, namespace: str, pod_name: str, uid: str | None) -> Obj:
        pod = self.pod(namespace, pod_name, uid)
        execution, parent = self.execution_of(pod)
        name = execution["metadata"]["name"]
        for candidate in (name, f"{name}-{execution['metadata']['uid'][:5]}"):
            run = self.store.try_get(TRACKING_RUN.key, namespace, candidate)
            if run is None:
                return self._create_run(namespace, candidate, pod, execution, parent)
            if run["spec"]["execution"].get("uid") == execution["metadata"]["uid"]:
                return dict(run)
        raise Conflict(f"tracking run names {name!r} are taken by other executions")

    def _create_run(
        self, namespace: str, name: str, pod: Obj, execution: Obj, parent: Obj | None
    ) -> Obj:
        spec: Obj = {"execution": _ref(execution)}
        if parent is not None:
            spec["parent"] = _ref(parent)
        labels = pod["metadata"].get("labels") or {}
        task = next((v for k, v in labels.items() if k == "task" or k.endswith("/task")), None)
        if task:
            spec["task"] = task
        owner = parent if parent is not None else execution if execution["kind"] != "Pod" else None
        md: Obj = {"name": name, "namespace": namespace, "labels": {RUN_LABEL: name}}
        if owner is not None:
            md["ownerReferences"] = [owner_ref(owner, controller=False)]
        obj = {
            "apiVersion": f"{TRACKING_RUN.group}/{VERSION}",
            "kind": TRACKING_RUN.kind,
            "metadata": md,
            "spec": spec,
        }
        with contextlib.suppress(AlreadyExists):
            return dict(self.platform.service.create(obj))
        return dict(self.store.get(TRACKING_RUN.key, namespace, name))

    def get_run(self, namespace: str, name: str) -> Obj:
        run = self.store.try_get(TRACKING_RUN.key, namespace, name)
        if run is None:
            raise NotFound(
                f"tracking run {name!r} not found in namespace {namespace!r}", field="run"
            )
        return dict(run)

    # -- recording --------------------------------------------------------------------------

    def record(self, namespace: str, pod_name: str, body: Obj) -> Obj:
        """Record params, metrics, artifacts and code from one Pod; return the run."""
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        params = _clean_params(body.get("params") or {})
        metrics = _clean_metrics(body.get("metrics") or [])
        artifacts = _clean_artifacts(self.platform, body.get("artifacts") or [])
        code = body.get("code")
        run = self.run_for_pod(namespace, pod_name, body.get("uid"))
        return self.update(
            namespace,
            run["metadata"]["name"],
            lambda st: _apply(st, pod_name, params, metrics, artifacts, code),
        )

    def update(self, namespace: str, name: str, change: Any) -> Obj:
        with self._lock:
            for _ in range(10):
                run = self.get_run(namespace, name)
                status = dict(run.get("status") or {})
                change(status)
                try:
                    return dict(
                        self.store.update_status(
                            TRACKING_RUN.key,
                            namespace,
                            name,
                            status,
                            rv=run["metadata"]["resourceVersion"],
                        )
                    )
                except Conflict:
                    continue
        raise Conflict(f"tracking run {name!r} kept changing; retry")


def _clean_params(params: Any) -> dict[str, str]:
    if not isinstance(params, dict):
        raise BadRequest('params must be {"name": value, ...}', field="params")
    out = {}
    for k, v in params.items():
        if isinstance(v, dict | list):
            raise BadRequest(
                f"param {k!r} must be a scalar, got {type(v).__name__}", field=f"params.{k}"
            )
        out[str(k)] = "" if v is None else str(v)
    return out


def _clean_metrics(metrics: Any) -> list[tuple[str, float, int | None, float]]:
    if not isinstance(metrics, list):
        raise BadRequest('metrics must be [{"name", "value", "step"}, ...]', field="metrics")
    out = []
    for i, m in enumerate(metrics):
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not m["name"]:
            raise BadRequest(f"metrics[{i}] needs a name", field=f"metrics[{i}].name")
        value, step = m.get("value"), m.get("step")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise BadRequest(
                f"metric {m['name']!r} must be a finite number, got {value!r}",
                field=f"metrics[{i}].value",
            )
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            raise BadRequest(
                f"metric {m['name']!r}: step must be an integer, got {step!r}",
                field=f"metrics[{i}].step",
            )
        ts = m.get("timestamp")
        out.append((m["name"], float(value), step, float(ts) if ts else time.time()))
    return out


def _clean_artifacts(platform: Any, artifacts: Any) -> list[Obj]:
    if not isinstance(artifacts, list):
        raise BadRequest("artifacts must be a list", field="artifacts")
    out = []
    for i, a in enumerate(artifacts):
        uri = a.get("uri") if isinstance(a, dict) else None
        if not isinstance(uri, str):
            raise BadRequest(f"artifacts[{i}] needs a uri", field=f"artifacts[{i}].uri")
        direction = a.get("direction", "output")
        if direction not in ("input", "output"):
            raise BadRequest(
                f"artifacts[{i}].direction must be input or output",
                field=f"artifacts[{i}].direction",
            )
        entry: Obj = {
            "name": str(a.get("name") or uri.rsplit("/", 1)[-1]),
            "uri": uri,
            "direction": direction,
        }
        if uri.startswith("artifact://"):
            if not platform.artifacts.exists(uri):
                raise NotFound(
                    f"artifact {uri} is not in the store: upload it first",
                    field=f"artifacts[{i}].uri",
                )
            entry["digest"] = "sha256:" + uri.rsplit("/", 1)[-1]
        elif a.get("digest"):
            entry["digest"] = str(a["digest"])
        for k in ("path", "size"):
            if a.get(k) is not None:
                entry[k] = a[k]
        out.append(entry)
    return out


def _apply(
    status: Obj,
    pod: str,
    params: dict[str, str],
    metrics: list[tuple[str, float, int | None, float]],
    artifacts: list[Obj],
    code: Any,
) -> None:
    status.setdefault("startTime", time.time())
    status["lastUpdate"] = time.time()
    pods = list(status.get("pods") or [])
    if pod not in pods:
        status["pods"] = [*pods, pod]
    if params:
        status["params"] = {**(status.get("params") or {}), **params}
    if metrics:
        hist: dict[str, list[Obj]] = {k: list(v) for k, v in (status.get("metrics") or {}).items()}
        for name, value, step, ts in metrics:
            points = hist.setdefault(name, [])
            if step is None:
                step = (points[-1]["step"] + 1) if points else 0
            points.append({"step": step, "value": value, "timestamp": ts})
            if len(points) > MAX_HISTORY:
                del points[: len(points) - MAX_HISTORY]
        status["metrics"] = hist
    if artifacts:
        current = list(status.get("artifacts") or [])
        seen = {(a["uri"], a["direction"], a["name"]) for a in current}
        current += [a for a in artifacts if (a["uri"], a["direction"], a["name"]) not in seen]
        status["artifacts"] = current
    if isinstance(code, dict) and code.get("digest") and not status.get("code"):
        status["code"] = {k: str(v) for k, v in code.items() if k in ("path", "digest")}
