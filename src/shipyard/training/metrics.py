"""``name=value`` metric lines from the rank-0 replica's log, as Katib's StdOut collector
reads them (``loss=0.25``, ``epoch=3 accuracy=0.91``)."""

from __future__ import annotations

import re
from typing import Any

from shipyard.core.resource import Obj
from shipyard.training.plan import Plan

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_PAIR = re.compile(rf"([A-Za-z_][\w./-]*)\s*=\s*({_NUMBER})")
_LINE = re.compile(rf"^\s*(?:[A-Za-z_][\w./-]*\s*=\s*{_NUMBER}[\s,;]*)+$")
MAX_METRICS = 50
_PRIMARY = ("master-0", "chief-0", "worker-0", "node-0")


def parse(text: str) -> dict[str, float]:
    """The latest value of every metric in ``text`` (lines made only of name=value pairs)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if "=" not in line or not _LINE.match(line):
            continue
        for name, value in _PAIR.findall(line):
            if name in out or len(out) < MAX_METRICS:
                out[name] = float(value)
    return out


def primary(plan: Plan, current: dict[str, Obj]) -> Obj | None:
    for key in _PRIMARY:
        if key in current:
            return current[key]
    return None


def collect(runtime: Any, plan: Plan, current: dict[str, Obj]) -> dict[str, float]:
    pod = primary(plan, current)
    if pod is None or not (pod.get("status") or {}).get("startTime"):
        return {}
    names = [c["name"] for c in pod["spec"]["containers"]]
    container = plan.container if plan.container in names else names[0]
    try:
        text = b"".join(runtime.logs(pod, container)).decode("utf-8", "replace")
    except Exception:  # logs not there yet (or any more): nothing to read
        return {}
    return parse(text)
