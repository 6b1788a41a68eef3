"""Namespace and ResourceQuota, in Kubernetes' ``v1`` shapes.

A Pod create that would take its namespace past a quota's ``hard`` figures is refused with
403 and Kubernetes' own message (``exceeded quota: NAME, requested: …, used: …, limited: …``).
Quota status (``used``) is kept current by the quota controller.
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from shipyard.core import quantity
from shipyard.core.resource import Column, KindInfo, Model, Obj
from shipyard.core.service import AdmissionRequest
from shipyard.errors import Forbidden, NotFound
from shipyard.tenancy.cache import TenancyCache

NS_FINALIZER = "kubernetes"


class NamespaceSpec(Model):
    finalizers: list[str] | None = None


class ResourceQuotaSpec(Model):
    hard: dict[str, str | int | float] | None = None
    scopes: list[str] | None = None
    scope_selector: dict[str, Any] | None = None

    @field_validator("hard")
    @classmethod
    def _quantities(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        for key, value in (v or {}).items():
            if key not in QUOTA_KEYS and not key.startswith("count/"):
                raise ValueError(
                    f"unsupported quota resource {key!r}; use one of {', '.join(QUOTA_KEYS)} "
                    "or count/<plural>"
                )
            quantity.parse(value, f"hard.{key}")
        return v


QUOTA_KEYS = (
    "pods",
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
    f"requests.{quantity.GPU}",
    f"limits.{quantity.GPU}",
)

NAMESPACE = KindInfo(
    group="",
    version="v1",
    kind="Namespace",
    plural="namespaces",
    singular="namespace",
    short_names=("ns",),
    namespaced=False,
    spec_model=NamespaceSpec,
)


def _quota_summary(q: Obj) -> str:
    used = (q.get("status") or {}).get("used") or {}
    hard = (q.get("spec") or {}).get("hard") or {}
    return ", ".join(f"{k}: {used.get(k, 0)}/{v}" for k, v in sorted(hard.items()))


RESOURCE_QUOTA = KindInfo(
    group="",
    version="v1",
    kind="ResourceQuota",
    plural="resourcequotas",
    singular="resourcequota",
    short_names=("quota",),
    spec_model=ResourceQuotaSpec,
    columns=(Column("REQUEST", _quota_summary),),
)


def pod_usage(pod: Obj) -> dict[str, float]:
    """What one Pod counts against quota keys."""
    req = quantity.pod_requests(pod)
    lim = quantity.pod_limits(pod)
    out = {"pods": 1.0, "count/pods": 1.0}
    for r in ("cpu", "memory", quantity.GPU):
        out[f"requests.{r}"] = req.get(r, 0.0)
        out[f"limits.{r}"] = lim.get(r, 0.0)
    out["cpu"] = out["requests.cpu"]
    out["memory"] = out["requests.memory"]
    return out


def namespace_usage(service: Any, namespace: str) -> dict[str, float]:
    total: dict[str, float] = {}
    for pod in service.store.list("Pod", namespace).items:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if pod["metadata"].get("deletionTimestamp"):
            continue
        for k, v in pod_usage(pod).items():
            total[k] = total.get(k, 0.0) + v
    return total


def _fmt(key: str, value: float) -> str:
    base = key.split(".", 1)[-1] if key.startswith(("requests.", "limits.")) else key
    return quantity.fmt(base, value)


def check_quota(req: AdmissionRequest, quotas: list[Obj]) -> None:
    """Refuse a Pod create that would take its namespace past one of ``quotas``."""
    if req.operation != "CREATE" or req.info.kind != "Pod" or req.info.group:
        return
    ns = req.obj["metadata"].get("namespace", "")
    if not quotas:
        return
    want = pod_usage(req.obj)
    used = namespace_usage(req.service, ns)
    for q in quotas:
        hard = (q.get("spec") or {}).get("hard") or {}
        over = [
            k
            for k, limit in sorted(hard.items())
            if want.get(k, 0.0) > 0
            and used.get(k, 0.0) + want.get(k, 0.0) > quantity.parse(limit) + 1e-9
        ]
        if over:
            name = q["metadata"]["name"]
            raise Forbidden(
                f"pods {req.obj['metadata'].get('name', '')!r} is forbidden: exceeded quota: "
                f"{name}, requested: "
                + ",".join(f"{k}={_fmt(k, want[k])}" for k in over)
                + ", used: "
                + ",".join(f"{k}={_fmt(k, used.get(k, 0.0))}" for k in over)
                + ", limited: "
                + ",".join(f"{k}={hard[k]}" for k in over),
                field=f"spec.hard.{over[0]}",
            )


def _namespace_defaults(req: AdmissionRequest) -> None:
    if req.info.key == NAMESPACE.key and req.operation == "CREATE":
        fins = req.obj["metadata"].setdefault("finalizers", [])
        if NS_FINALIZER not in fins:
            fins.append(NS_FINALIZER)
        req.obj.setdefault("status", {})


class Admission:
    """Namespace and quota admission, answered from the tenancy cache."""

    def __init__(self, cache: TenancyCache) -> None:
        self.cache = cache

    def __call__(self, req: AdmissionRequest) -> None:
        if req.operation != "CREATE" or not req.info.namespaced:
            return
        ns = req.obj["metadata"].get("namespace", "")
        nso = self.cache.namespace(ns)
        if nso is None:
            raise NotFound(
                f"namespace {ns!r} not found: create it first "
                f"(kind: Namespace, metadata.name: {ns})",
                field="metadata.namespace",
            )
        if nso["metadata"].get("deletionTimestamp"):
            raise Forbidden(
                f"namespace {ns!r} is being deleted; no new objects may be created in it",
                field="metadata.namespace",
            )
        check_quota(req, self.cache.quotas(ns))


def register(platform: Any) -> None:
    from shipyard.tenancy.cache import attach
    from shipyard.tenancy.config import CONFIG_MAP, SECRET
    from shipyard.tenancy.controller import NamespaceController, QuotaController

    platform.registry.add(NAMESPACE)
    platform.registry.add(RESOURCE_QUOTA)
    platform.registry.add(CONFIG_MAP)
    platform.registry.add(SECRET)
    platform.service.mutators.append(_namespace_defaults)
    cache = attach(platform)
    platform.service.admission.append(Admission(cache))
    platform.manager.add(NamespaceController(platform))
    platform.manager.add(QuotaController(platform))
