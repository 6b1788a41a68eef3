"""Server-side printing: lists as Kubernetes ``Table`` objects for ``shipyard get``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shipyard.core.resource import KindInfo, Obj, parse_time


def age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    secs = int((datetime.now(UTC) - parse_time(ts)).total_seconds())
    if secs < 120:
        return f"{max(secs, 0)}s"
    if secs < 7200:
        return f"{secs // 60}m"
    if secs < 172800:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def table(info: KindInfo, items: list[Obj], *, all_namespaces: bool) -> Obj:
    cols: list[Obj] = []
    if all_namespaces and info.namespaced:
        cols.append({"name": "NAMESPACE", "type": "string", "priority": 0})
    cols.append({"name": "NAME", "type": "string", "priority": 0})
    cols += [
        {"name": c.header, "type": "string", "priority": 1 if c.wide else 0} for c in info.columns
    ]
    if not info.columns:
        cols.append({"name": "STATUS", "type": "string", "priority": 0})
    cols.append({"name": "AGE", "type": "string", "priority": 0})
    rows = []
    for obj in items:
        md = obj["metadata"]
        cells: list[Any] = []
        if all_namespaces and info.namespaced:
            cells.append(md.get("namespace", ""))
        cells.append(md["name"])
        for c in info.columns:
            try:
                cells.append(_cell(c.value(obj)))
            except Exception:
                cells.append("<error>")
        if not info.columns:
            cells.append(_cell((obj.get("status") or {}).get("phase")))
        cells.append(age(md.get("creationTimestamp")))
        rows.append(
            {
                "cells": cells,
                "object": {
                    "metadata": {
                        "name": md["name"],
                        "namespace": md.get("namespace"),
                        "uid": md.get("uid"),
                        "resourceVersion": md.get("resourceVersion"),
                    }
                },
            }
        )
    return {
        "apiVersion": "meta.k8s.io/v1",
        "kind": "Table",
        "columnDefinitions": cols,
        "rows": rows,
    }
