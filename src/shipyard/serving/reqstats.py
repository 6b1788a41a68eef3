"""Request rate and latency over a recent window, as the gateway observes them.

A :class:`RequestWindow` is a ring of one-second buckets covering the last
:data:`SPAN` seconds. Each bucket holds the request count, the error count (status >= 500),
the latency sum and a latency histogram with log-spaced bounds (x√2 apart, 0.25 ms to
~4 min). Recording a request is O(1): one bucket index, one histogram index. Summaries
(rate, p50/p95, a per-step series for a chart) merge the buckets of the window when asked,
which is what ``GET /serving/NAMESPACE/NAME/_stats`` does.

Quantiles are interpolated inside a histogram bucket, so they are within a bucket's width
(±20%) of the exact value. Only the event loop thread records and summarises.
"""

from __future__ import annotations

import math
import time
from typing import Any

SPAN = 300  # seconds kept (the chart's five minutes)
_BASE_MS = 0.25
_RATIO_LOG2 = 0.5  # bounds grow by 2 ** 0.5
_NBOUNDS = 40  # last bound: 0.25 ms * 2**19.5 ≈ 185 s; slower requests land in the overflow
BOUNDS_MS = tuple(_BASE_MS * 2 ** (i * _RATIO_LOG2) for i in range(_NBOUNDS))


def _bucket(ms: float) -> int:
    """Index of the first bound >= ms (``_NBOUNDS`` for the overflow bucket)."""
    if ms <= _BASE_MS:
        return 0
    i = math.ceil(math.log2(ms / _BASE_MS) / _RATIO_LOG2 - 1e-9)
    return i if i < _NBOUNDS else _NBOUNDS


class RequestWindow:
    """Requests of the last :data:`SPAN` seconds in per-second buckets."""

    __slots__ = ("counts", "errors", "hists", "lat_sum", "secs", "total")

    def __init__(self) -> None:
        self.secs = [-1] * SPAN
        self.counts = [0] * SPAN
        self.errors = [0] * SPAN
        self.lat_sum = [0.0] * SPAN
        self.hists: list[list[int] | None] = [None] * SPAN
        self.total = 0  # requests since the window was created

    def record(self, latency_s: float, error: bool = False, now: float | None = None) -> None:
        """One request that took ``latency_s`` seconds: O(1)."""
        t = time.monotonic() if now is None else now
        sec = int(t)
        i = sec % SPAN
        hist = self.hists[i]
        if self.secs[i] != sec or hist is None:
            self.secs[i] = sec
            self.counts[i] = self.errors[i] = 0
            self.lat_sum[i] = 0.0
            hist = self.hists[i] = [0] * (_NBOUNDS + 1)
        ms = latency_s * 1000.0
        self.counts[i] += 1
        self.lat_sum[i] += ms
        hist[_bucket(ms)] += 1
        if error:
            self.errors[i] += 1
        self.total += 1

    def _live(self, sec: int, now_sec: int, window: int) -> bool:
        return now_sec - window < sec <= now_sec

    def summary(self, window: int = 60, now: float | None = None) -> dict[str, Any]:
        """count, errors, rate (req/s: count / window, as Prometheus' ``rate``) and latency
        (ms: p50, p95, mean) over the last ``window`` seconds."""
        t = time.monotonic() if now is None else now
        now_sec = int(t)
        window = max(1, min(SPAN, int(window)))
        count = errors = 0
        lat = 0.0
        merged = [0] * (_NBOUNDS + 1)
        for i, sec in enumerate(self.secs):
            hist = self.hists[i]
            if hist is None or not self._live(sec, now_sec, window):
                continue
            count += self.counts[i]
            errors += self.errors[i]
            lat += self.lat_sum[i]
            for j, n in enumerate(hist):
                merged[j] += n
        return {
            "count": count,
            "errors": errors,
            "total": self.total,
            "rate": count / window,
            "latencyMs": {
                "p50": quantile(merged, 0.5),
                "p95": quantile(merged, 0.95),
                "mean": lat / count if count else 0.0,
            },
        }

    def series(
        self, step: int = 5, span: int = SPAN, now: float | None = None, wall: float | None = None
    ) -> list[dict[str, Any]]:
        """Points every ``step`` seconds over the last ``span`` seconds, oldest first:
        ``{t: unix seconds at the step's end, rate, p50Ms, p95Ms}`` (rate in req/s)."""
        t = time.monotonic() if now is None else now
        w = time.time() if wall is None else wall
        now_sec = int(t)
        step = max(1, int(step))
        nsteps = max(1, min(SPAN, int(span)) // step)
        counts = [0] * nsteps
        hists = [[0] * (_NBOUNDS + 1) for _ in range(nsteps)]
        for i, sec in enumerate(self.secs):
            hist = self.hists[i]
            age = now_sec - sec
            if hist is None or age < 0 or age >= nsteps * step:
                continue
            k = nsteps - 1 - age // step
            counts[k] += self.counts[i]
            for j, n in enumerate(hist):
                if n:
                    hists[k][j] += n
        out = []
        for k in range(nsteps):
            end = w - (nsteps - 1 - k) * step
            out.append(
                {
                    "t": round(end, 3),
                    "rate": counts[k] / step,
                    "p50Ms": quantile(hists[k], 0.5),
                    "p95Ms": quantile(hists[k], 0.95),
                }
            )
        return out


def quantile(hist: list[int], q: float) -> float:
    """The q-quantile (ms) of a histogram over :data:`BOUNDS_MS`, interpolated linearly in
    its bucket; 0.0 when empty. The overflow bucket reports the last bound."""
    n = sum(hist)
    if n == 0:
        return 0.0
    rank = q * n
    seen = 0
    for j, c in enumerate(hist):
        if c and seen + c >= rank:
            if j >= _NBOUNDS:
                return BOUNDS_MS[-1]
            lo = BOUNDS_MS[j - 1] if j > 0 else 0.0
            return lo + (BOUNDS_MS[j] - lo) * max(0.0, rank - seen) / c
        seen += c
    return BOUNDS_MS[-1]
