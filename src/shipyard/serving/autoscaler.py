"""Replica counts from observed load, in the spirit of Knative's KPA.

The gateway records, per revision, the integral of outstanding requests over time and the
request count. Each controller pass samples them; the average over a short panic window
(2 s) scales up quickly, the average over the stable window (``autoscaling.knative.dev/
window``, default 30 s) scales down slowly, and a revision with ``minReplicas: 0`` drops to
zero once a whole stable window passed without a request. A request held for a revision
with no replica asks for one at once.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from typing import Any

from shipyard.serving.gateway import Gateway

PANIC_WINDOW = 2.0
DEFAULT_WINDOW = 30.0
UNBOUNDED_CAP = 16
WINDOW_ANNOTATION = "autoscaling.knative.dev/window"


def parse_seconds(text: str | None, default: float) -> float:
    if not text:
        return default
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(text))
    if not m:
        return default
    value = float(m.group(1))
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2) or "s"]


class Autoscaler:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._samples: dict[tuple[str, str, str], deque[tuple[float, float, int]]] = {}

    def forget(self, namespace: str, name: str) -> None:
        for key in [k for k in self._samples if k[:2] == (namespace, name)]:
            del self._samples[key]

    def desired(
        self, namespace: str, name: str, revision: str, comp: dict[str, Any], window: float
    ) -> int:
        """How many replicas the revision should have now."""
        st = self.gateway.stats(namespace, name, revision)
        now, area, count = st.sample()
        key = (namespace, name, revision)
        samples = self._samples.setdefault(key, deque())
        samples.append((now, area, count))
        while len(samples) > 2 and samples[1][0] <= now - window:
            samples.popleft()
        target = float(comp.get("scaleTarget") or comp.get("containerConcurrency") or 100)
        rps = comp.get("scaleMetric") == "rps"

        def rate(since: float) -> float:
            t0, a0, c0 = samples[0]
            for t, a, c in samples:
                if t >= now - since:
                    break
                t0, a0, c0 = t, a, c
            span = now - t0
            if span <= 0:
                return 0.0
            return (count - c0) / span if rps else (area - a0) / span

        want = max(
            math.ceil(rate(PANIC_WINDOW) / target - 1e-9),
            math.ceil(rate(window) / target - 1e-9),
            math.ceil((st.inflight + st.waiting) / target) if not rps else 0,
        )
        lo = int(comp.get("minReplicas", 1) if comp.get("minReplicas") is not None else 1)
        hi = int(comp.get("maxReplicas") or 0) or max(UNBOUNDED_CAP, lo)
        recent = st.last_request and time.monotonic() - st.last_request < window
        if st.waiting or st.inflight or (lo == 0 and recent):
            want = max(want, 1)
        elif lo == 0 and not st.last_request and len(samples) and now - samples[0][0] < window:
            want = max(want, 1)  # a fresh revision stays up for one window before idling
        return max(lo, min(hi, want))
