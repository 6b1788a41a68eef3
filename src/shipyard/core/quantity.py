"""Kubernetes resource quantities: ``500m`` cpu, ``1Gi`` / ``512M`` memory, plain numbers."""

from __future__ import annotations

import re
from typing import Any

_SUFFIX = {
    "": 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_QTY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")

GPU = "nvidia.com/gpu"


def parse(value: Any, field: str = "quantity") -> float:
    """A quantity as a float (cpu in cores, memory in bytes). Raises ValueError naming it."""
    if isinstance(value, bool):
        raise ValueError(f"{field}: {value!r} is not a quantity")
    if isinstance(value, int | float):
        return float(value)
    m = _QTY.match(str(value).strip())
    if not m:
        raise ValueError(f"{field}: {value!r} is not a quantity (examples: 2, 500m, 1Gi, 512M)")
    return float(m.group(1)) * _SUFFIX[m.group(2) or ""]


def fmt_cpu(cores: float) -> str:
    return f"{cores:g}" if cores == int(cores) else f"{round(cores * 1000)}m"


def fmt_bytes(n: float) -> str:
    for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n >= size and n % size == 0:
            return f"{int(n // size)}{unit}"
    return f"{int(n)}"


def fmt(resource: str, value: float) -> str:
    if resource.endswith("cpu"):
        return fmt_cpu(value)
    if resource.endswith("memory"):
        return fmt_bytes(value)
    return f"{value:g}"


def pod_requests(pod: dict[str, Any]) -> dict[str, float]:
    """Effective requests of a Pod as Kubernetes computes them: the sum over containers, or
    the largest init container if that is more; a limit stands in for a missing request."""
    spec = pod.get("spec") or {}

    def of(container: dict[str, Any]) -> dict[str, float]:
        res = container.get("resources") or {}
        req = dict(res.get("limits") or {})
        req.update(res.get("requests") or {})
        return {k: parse(v, f"resources.requests.{k}") for k, v in req.items()}

    total: dict[str, float] = {}
    for c in spec.get("containers") or []:
        for k, v in of(c).items():
            total[k] = total.get(k, 0.0) + v
    for c in spec.get("initContainers") or []:
        for k, v in of(c).items():
            total[k] = max(total.get(k, 0.0), v)
    return total


def pod_limits(pod: dict[str, Any]) -> dict[str, float]:
    total: dict[str, float] = {}
    for c in (pod.get("spec") or {}).get("containers") or []:
        for k, v in ((c.get("resources") or {}).get("limits") or {}).items():
            total[k] = total.get(k, 0.0) + parse(v, f"resources.limits.{k}")
    return total
