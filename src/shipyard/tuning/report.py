"""``shipyard.report_metrics``: push a trial's metrics to the platform from inside its Pod.

Light on purpose (standard library only): it runs in every trial process.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping


class ReportError(RuntimeError):
    """The metrics could not be reported (no platform, not in a trial Pod, refused)."""


def report_metrics(metrics: Mapping[str, float], *, timeout: float = 10.0) -> None:
    """Report ``{"name": value, ...}`` for the trial this process runs in.

    Call it as often as the trial has new values (each call is one intermediate step for
    early stopping). Uses ``SHIPYARD_URL``, ``SHIPYARD_POD_NAMESPACE`` and
    ``SHIPYARD_POD_NAME``, which the platform sets in every Pod.
    """
    url = os.environ.get("SHIPYARD_URL")
    pod = os.environ.get("SHIPYARD_POD_NAME")
    namespace = os.environ.get("SHIPYARD_POD_NAMESPACE", "default")
    if not url or not pod:
        raise ReportError(
            "report_metrics works inside a trial Pod (SHIPYARD_URL and SHIPYARD_POD_NAME are "
            "not set here)"
        )
    body = json.dumps({"metrics": {str(k): float(v) for k, v in metrics.items()}}).encode()
    req = urllib.request.Request(
        f"{url.rstrip('/')}/tuning/v1/namespaces/{namespace}/pods/{pod}/metrics",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        with contextlib.suppress(ValueError, KeyError, TypeError):
            detail = json.loads(detail)["error"]["message"]
        raise ReportError(f"the platform refused the metrics: {detail}") from None
    except urllib.error.URLError as exc:
        raise ReportError(f"cannot reach the platform at {url}: {exc.reason}") from None
