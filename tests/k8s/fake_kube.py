"""TEST DOUBLE (tier 1 only): the ``kubernetes`` client's API classes, patched.

Tier 1 runs everywhere, without an API server, so ``CoreV1Api``, ``AppsV1Api``,
``AuthorizationV1Api``, ``VersionApi`` and ``watch.Watch`` are replaced by these small
in-memory stand-ins that keep objects as dicts, hand out uids and resourceVersions, answer
404/409 like the API server, and feed a queue of watch events the test controls (so a
``410 Gone`` can be injected). Tier 2 (``tests/k8s/test_k8s_cluster.py``) runs the same
runtime against a real kube-apiserver instead.
"""

from __future__ import annotations

import copy
import itertools
import json
import queue
import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

Obj = dict[str, Any]


def _error(status: int, message: str) -> ApiException:
    exc = ApiException(status=status, reason=message)
    exc.body = json.dumps({"kind": "Status", "message": message, "code": status})
    return exc


@dataclass
class FakeCluster:
    """What the fake API server holds: objects by (kind, name), the event queue, calls."""

    namespace_exists: bool = True
    allowed: set[tuple[str, str, str]] | None = None  # None: everything allowed
    objects: dict[tuple[str, str], Obj] = field(default_factory=dict)
    events: queue.Queue[Obj | None] = field(default_factory=queue.Queue)
    calls: list[tuple[str, str]] = field(default_factory=list)
    lists: int = 0
    rv: itertools.count[int] = field(default_factory=lambda: itertools.count(100))
    unreachable: bool = False

    def put(self, kind: str, body: Obj, *, dry_run: bool = False) -> Obj:
        if not self.namespace_exists:
            raise _error(404, f'namespaces "{body["metadata"].get("namespace")}" not found')
        key = (kind, body["metadata"]["name"])
        if key in self.objects:
            raise _error(409, f'{kind} "{key[1]}" already exists')
        obj = copy.deepcopy(body)
        obj["metadata"]["uid"] = str(uuid.uuid4())
        obj["metadata"]["resourceVersion"] = str(next(self.rv))
        obj["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
        if dry_run:
            return obj
        self.objects[key] = obj
        self.calls.append(("create", f"{kind}/{key[1]}"))
        if kind == "Pod":
            self.events.put({"type": "ADDED", "raw_object": copy.deepcopy(obj)})
        return obj

    def get(self, kind: str, name: str) -> Obj:
        try:
            return self.objects[(kind, name)]
        except KeyError:
            raise _error(404, f'{kind} "{name}" not found') from None

    def remove(self, kind: str, name: str) -> None:
        obj = self.get(kind, name)
        del self.objects[(kind, name)]
        self.calls.append(("delete", f"{kind}/{name}"))
        if kind == "Pod":
            self.events.put({"type": "DELETED", "raw_object": copy.deepcopy(obj)})

    def set_status(self, name: str, status: Obj) -> None:
        """What a kubelet (or the scheduler) would write: a MODIFIED event follows."""
        obj = self.get("Pod", name)
        obj["status"] = status
        obj["metadata"]["resourceVersion"] = str(next(self.rv))
        self.events.put({"type": "MODIFIED", "raw_object": copy.deepcopy(obj)})


class _Response:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, size: int) -> Any:
        yield self.data

    def release_conn(self) -> None:
        pass


def install(monkeypatch: pytest.MonkeyPatch, cluster: FakeCluster) -> None:
    """Patch the API classes the runtime uses with ones backed by ``cluster``."""
    import shipyard.runtime.kubernetes as rt

    class Core:
        def __init__(self, api: Any = None) -> None:
            pass

        def create_namespaced_pod(self, ns: str, body: Obj, **kw: Any) -> Obj:
            return cluster.put("Pod", body, dry_run=kw.get("dry_run") == "All")

        def read_namespaced_pod(self, name: str, ns: str, **kw: Any) -> Obj:
            return cluster.get("Pod", name)

        def delete_namespaced_pod(self, name: str, ns: str, **kw: Any) -> None:
            cluster.calls.append(("delete-opts", json.dumps(kw, default=str, sort_keys=True)))
            cluster.remove("Pod", name)

        def list_namespaced_pod(self, ns: str, **kw: Any) -> Any:
            cluster.lists += 1
            items = [o for (k, _), o in cluster.objects.items() if k == "Pod"]
            body = {"items": items, "metadata": {"resourceVersion": str(next(cluster.rv))}}
            return _Response(json.dumps(body).encode())

        def create_namespaced_service(self, ns: str, body: Obj, **kw: Any) -> Obj:
            return cluster.put("Service", body)

        def create_namespaced_secret(self, ns: str, body: Obj, **kw: Any) -> Obj:
            return cluster.put("Secret", body)

        def patch_namespaced_secret(self, name: str, ns: str, body: Obj, **kw: Any) -> Obj:
            obj = cluster.get("Secret", name)
            obj["metadata"].update(body["metadata"])
            return obj

        def read_namespaced_pod_log(self, name: str, ns: str, **kw: Any) -> _Response:
            cluster.get("Pod", name)
            cluster.calls.append(("log", json.dumps(kw, default=str, sort_keys=True)))
            return _Response(f"log of {name}/{kw.get('container')}\n".encode())

    class Apps:
        def __init__(self, api: Any = None) -> None:
            pass

        def create_namespaced_deployment(self, ns: str, body: Obj, **kw: Any) -> Obj:
            return cluster.put("Deployment", body)

        def read_namespaced_deployment(self, name: str, ns: str, **kw: Any) -> Obj:
            return cluster.get("Deployment", name)

        def delete_namespaced_deployment(self, name: str, ns: str, **kw: Any) -> None:
            cluster.remove("Deployment", name)

    class Authz:
        def __init__(self, api: Any = None) -> None:
            pass

        def create_self_subject_access_review(self, body: Obj, **kw: Any) -> Any:
            a = body["spec"]["resourceAttributes"]
            res = a["resource"] + ("/" + a["subresource"] if a.get("subresource") else "")
            ok = cluster.allowed is None or (a["verb"], a["group"], res) in cluster.allowed
            return SimpleNamespace(status=SimpleNamespace(allowed=ok))

    class Version:
        def __init__(self, api: Any = None) -> None:
            pass

        def get_code(self, **kw: Any) -> Any:
            if cluster.unreachable:
                raise ConnectionRefusedError("[Errno 111] Connection refused")
            return SimpleNamespace(git_version="v1.20.2")

    class Watch:
        def stream(self, func: Any, *args: Any, **kw: Any) -> Any:
            while True:
                try:
                    ev = cluster.events.get(timeout=0.2)
                except queue.Empty:
                    return
                if ev is None:
                    return
                yield ev

        def stop(self) -> None:
            pass

    monkeypatch.setattr(rt.client, "CoreV1Api", Core)
    monkeypatch.setattr(rt.client, "AppsV1Api", Apps)
    monkeypatch.setattr(rt.client, "AuthorizationV1Api", Authz)
    monkeypatch.setattr(rt.client, "VersionApi", Version)
    monkeypatch.setattr(rt.watch, "Watch", Watch)
