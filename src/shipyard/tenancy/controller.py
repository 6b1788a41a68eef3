"""Namespace deletion (everything inside goes first) and quota status."""

from __future__ import annotations

import contextlib
from typing import Any

from shipyard.core.controller import Controller
from shipyard.core.store import Event
from shipyard.errors import Conflict, NotFound
from shipyard.tenancy.api import NAMESPACE, NS_FINALIZER, RESOURCE_QUOTA, _fmt, namespace_usage
from shipyard.tenancy.cache import TenancyCache


class NamespaceController(Controller):
    kind = NAMESPACE.key

    def __init__(self, platform: Any) -> None:
        self.store = platform.store
        self.registry = platform.registry

    def reconcile(self, namespace: str, name: str) -> float | None:
        ns = self.store.try_get(self.kind, "", name)
        if ns is None:
            return None
        md = ns["metadata"]
        if not md.get("deletionTimestamp"):
            if (ns.get("status") or {}).get("phase") != "Active":
                self.store.update_status(self.kind, "", name, {"phase": "Active"})
            return None
        if (ns.get("status") or {}).get("phase") != "Terminating":
            ns = self.store.update_status(self.kind, "", name, {"phase": "Terminating"})
        remaining = 0
        for info in self.registry.all():
            if not info.namespaced:
                continue
            for obj in self.store.list(info.key, name).items:
                remaining += 1
                if not obj["metadata"].get("deletionTimestamp"):
                    with contextlib.suppress(NotFound):
                        self.store.delete(info.key, name, obj["metadata"]["name"])
        if remaining:
            return 0.2
        ns["metadata"]["finalizers"] = [
            f for f in ns["metadata"].get("finalizers") or [] if f != NS_FINALIZER
        ]
        try:
            self.store.update(self.kind, ns)
        except (Conflict, NotFound):
            return 0.1
        return None


class QuotaController(Controller):
    """Keeps ``status.hard`` and ``status.used`` of every ResourceQuota current."""

    kind = RESOURCE_QUOTA.key
    workers = 1

    def __init__(self, platform: Any) -> None:
        self.store = platform.store
        self.service = platform.service
        self.cache: TenancyCache = platform.tenancy_cache
        self.maps = {"Pod": self._quotas_of}

    def _quotas_of(self, ev: Event) -> list[tuple[str, str]]:
        return self.cache.quota_keys(ev.namespace)

    def reconcile(self, namespace: str, name: str) -> float | None:
        q = self.store.try_get(self.kind, namespace, name)
        if q is None or q["metadata"].get("deletionTimestamp"):
            return None
        hard = (q.get("spec") or {}).get("hard") or {}
        usage = namespace_usage(self.service, namespace)
        status = {
            "hard": {k: str(v) for k, v in hard.items()},
            "used": {k: _fmt(k, usage.get(k, 0.0)) for k in hard},
        }
        if q.get("status") != status:
            self.store.update_status(self.kind, namespace, name, status)
        return None
