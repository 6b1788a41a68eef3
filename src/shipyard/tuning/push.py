"""The Push collector's endpoint, served on the platform's port under ``/tuning``.

``POST /tuning/v1/namespaces/{ns}/pods/{pod}/metrics`` with ``{"metrics": {name: value}}``
appends one JSON line to the trial's pushed-metrics file and wakes the trial's controller.
``shipyard.report_metrics`` (inside a trial Pod) is the client of this endpoint.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

from shipyard.core.resource import controller_of
from shipyard.errors import BadRequest, NotFound, ShipyardError
from shipyard.pods.api import POD
from shipyard.tuning.api import TRIAL
from shipyard.tuning.metrics import push_path

PREFIX = "/tuning"
PUSH_WAKE_DELAY = 0.1  # seconds


def record(platform: Any, namespace: str, pod_name: str, body: Any) -> int:
    """Append pushed metrics for the trial that owns the Pod; return how many were kept."""
    metrics = body.get("metrics") if isinstance(body, dict) else None
    if not isinstance(metrics, dict) or not metrics:
        raise BadRequest('the body must be {"metrics": {"name": number, ...}}', field="metrics")
    clean: dict[str, float] = {}
    for name, value in metrics.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise BadRequest(
                f"metric {name!r} must be a finite number, got {value!r}", field=f"metrics.{name}"
            )
        clean[str(name)] = float(value)
    pod = platform.store.try_get(POD.key, namespace, pod_name)
    if pod is None:
        raise NotFound(f"pod {namespace}/{pod_name} not found", field="pod")
    trial_name = str((pod["metadata"].get("labels") or {}).get("trial") or "")
    trial = platform.store.try_get(TRIAL.key, namespace, trial_name) if trial_name else None
    if trial is None:
        owner = controller_of(pod)
        raise NotFound(
            f"pod {namespace}/{pod_name} does not belong to a trial"
            + (f" (owner: {owner['kind']} {owner['name']})" if owner else ""),
            field="pod",
        )
    path = push_path(platform.settings.data_dir, namespace, trial_name, trial["metadata"]["uid"])
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"timestamp": time.time(), "metrics": clean}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    # A little later rather than at once: the usual last push comes just before the trial's
    # process ends, and one reconcile of the ended trial then reads it; waking it now would
    # write an observation that the end overwrites a few milliseconds later.
    platform.manager.enqueue(TRIAL.key, namespace, trial_name, after=PUSH_WAKE_DELAY)
    return len(clean)


def make_app(platform: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def post(request: Request) -> JSONResponse:
        try:
            try:
                body = await request.json()
            except ValueError:
                raise BadRequest("the body must be JSON") from None
            ns, pod = request.path_params["namespace"], request.path_params["pod"]
            kept = record(platform, ns, pod, body)
        except ShipyardError as exc:
            return JSONResponse(exc.to_dict(), status_code=exc.status)
        return JSONResponse({"recorded": kept})

    return Starlette(
        routes=[Route("/v1/namespaces/{namespace}/pods/{pod}/metrics", post, methods=["POST"])]
    )
