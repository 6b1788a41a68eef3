"""Namespaces and ResourceQuotas mirrored in memory from the store's events.

Admission runs on every create and the quota controller is woken by every Pod event;
both ask "does this namespace exist, is it terminating, which quotas does it have?". The
answers come from this cache (an informer, in Kubernetes' terms), not from a query each
time. It is rebuilt from the store when the platform starts and is never written to
except by store events, so it holds no state of its own.
"""

from __future__ import annotations

import threading
from typing import Any

from shipyard.core.resource import Obj
from shipyard.core.store import Event, Store

NAMESPACE_KIND = "Namespace"
QUOTA_KIND = "ResourceQuota"


class TenancyCache:
    def __init__(self, store: Store) -> None:
        self._lock = threading.Lock()
        self._namespaces: dict[str, Obj] = {}
        self._quotas: dict[str, dict[str, Obj]] = {}
        store.subscribe(self._on_event)
        for ns in store.list(NAMESPACE_KIND).items:
            self._put_namespace(ns)
        for q in store.list(QUOTA_KIND).items:
            self._put_quota(q)

    def _newer(self, current: Obj | None, obj: Obj) -> bool:
        if current is None:
            return True
        rv = int(obj["metadata"].get("resourceVersion") or 0)
        return rv >= int(current["metadata"].get("resourceVersion") or 0)

    def _put_namespace(self, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        with self._lock:
            if self._newer(self._namespaces.get(name), obj):
                self._namespaces[name] = obj

    def _put_quota(self, obj: Obj) -> None:
        ns, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
        with self._lock:
            bucket = self._quotas.setdefault(ns, {})
            if self._newer(bucket.get(name), obj):
                bucket[name] = obj

    def _on_event(self, ev: Event) -> None:
        if ev.kind == NAMESPACE_KIND:
            if ev.type == "DELETED":
                with self._lock:
                    self._namespaces.pop(ev.name, None)
            else:
                self._put_namespace(ev.obj)
        elif ev.kind == QUOTA_KIND:
            if ev.type == "DELETED":
                with self._lock:
                    self._quotas.get(ev.namespace, {}).pop(ev.name, None)
            else:
                self._put_quota(ev.obj)

    def namespace(self, name: str) -> Obj | None:
        with self._lock:
            return self._namespaces.get(name)

    def quotas(self, namespace: str) -> list[Obj]:
        with self._lock:
            return list(self._quotas.get(namespace, {}).values())

    def quota_keys(self, namespace: str) -> list[tuple[str, str]]:
        with self._lock:
            return [(namespace, name) for name in self._quotas.get(namespace, {})]


def attach(platform: Any) -> TenancyCache:
    cache = TenancyCache(platform.store)
    platform.tenancy_cache = cache
    return cache
