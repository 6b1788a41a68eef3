"""Runs side by side: every param and metric of each run, with metric histories."""

from __future__ import annotations

from typing import Any

from shipyard.core.resource import Obj
from shipyard.errors import BadRequest, NotFound
from shipyard.tracking.api import TRACKING_RUN


def find_run(platform: Any, namespace: str, name: str) -> Obj:
    """A run by its name, or by the name of its execution (trial, job, pod)."""
    run = platform.store.try_get(TRACKING_RUN.key, namespace, name)
    if run is not None:
        return dict(run)
    for candidate in platform.store.list(TRACKING_RUN.key, namespace).items:
        if candidate["spec"]["execution"]["name"] == name:
            return dict(candidate)
    raise NotFound(f"no tracking run {name!r} in namespace {namespace!r}", field="runs")


def compare(platform: Any, namespace: str, names: list[str]) -> Obj:
    if not names:
        raise BadRequest("name at least one run: ?runs=RUN_A,RUN_B", field="runs")
    runs = [find_run(platform, namespace, n) for n in names]
    keys = [r["metadata"]["name"] for r in runs]
    params: dict[str, dict[str, str | None]] = {}
    metrics: dict[str, dict[str, Obj | None]] = {}
    for run in runs:
        status = run.get("status") or {}
        for p in status.get("params") or {}:
            params.setdefault(p, {})
        for m in status.get("metrics") or {}:
            metrics.setdefault(m, {})
    for key, run in zip(keys, runs, strict=True):
        status = run.get("status") or {}
        for p, row in params.items():
            row[key] = (status.get("params") or {}).get(p)
        for m, mrow in metrics.items():
            hist = (status.get("metrics") or {}).get(m) or []
            values = [pt["value"] for pt in hist]
            mrow[key] = (
                {
                    "last": values[-1],
                    "min": min(values),
                    "max": max(values),
                    "steps": len(values),
                    "history": [[pt["step"], pt["value"]] for pt in hist],
                }
                if values
                else None
            )
    return {
        "runs": [
            {
                "name": key,
                "execution": run["spec"]["execution"],
                "parent": run["spec"].get("parent"),
                "models": (run.get("status") or {}).get("models") or [],
            }
            for key, run in zip(keys, runs, strict=True)
        ],
        "params": dict(sorted(params.items())),
        "metrics": dict(sorted(metrics.items())),
        "differentParams": sorted(p for p, row in params.items() if len(set(row.values())) > 1),
    }
