"""The gateway's request window: counts, rate and latency quantiles from per-second buckets
(times are given explicitly, so nothing here depends on the clock)."""

from __future__ import annotations

import pytest

from shipyard.serving.reqstats import BOUNDS_MS, SPAN, RequestWindow, quantile

T0 = 1000.0


def test_count_rate_and_quantiles_over_the_window() -> None:
    w = RequestWindow()
    # 100 requests over 10 s: latencies 1..100 ms.
    for i in range(100):
        w.record((i + 1) / 1000, error=i % 50 == 0, now=T0 + i / 10)
    s = w.summary(60, now=T0 + 10)
    assert s["count"] == s["total"] == 100 and s["errors"] == 2
    assert s["rate"] == pytest.approx(100 / 60)
    lat = s["latencyMs"]
    assert lat["mean"] == pytest.approx(50.5)
    # Within a histogram bucket's width (x sqrt 2) of the exact quantiles.
    assert 50 / 1.42 <= lat["p50"] <= 50 * 1.42
    assert 95 / 1.42 <= lat["p95"] <= 95 * 1.42
    assert lat["p50"] < lat["p95"]


def test_old_buckets_leave_the_window_and_the_ring_wraps() -> None:
    w = RequestWindow()
    for _ in range(5):
        w.record(0.002, now=T0)
    later = T0 + 120
    for _ in range(3):
        w.record(0.004, now=later)
    assert w.summary(60, now=later)["count"] == 3
    assert w.summary(SPAN, now=later)["count"] == 8
    assert w.summary(60, now=later)["rate"] == pytest.approx(3 / 60)
    # A full turn of the ring later, the same slots hold new seconds only.
    w.record(0.001, now=T0 + SPAN)
    s = w.summary(SPAN, now=T0 + SPAN)
    assert s["count"] == 4 and s["total"] == 9
    assert w.summary(60, now=T0 + 10 * SPAN)["count"] == 0


def test_series_places_requests_in_their_step() -> None:
    w = RequestWindow()
    for _ in range(10):
        w.record(0.01, now=T0 + 0.5)  # 10 requests, 60 s before "now"
    for _ in range(20):
        w.record(0.02, now=T0 + 60.2)
    pts = w.series(step=5, span=SPAN, now=T0 + 60.5, wall=1_700_000_000.0)
    assert len(pts) == SPAN // 5
    assert pts[-1]["t"] == 1_700_000_000.0 and pts[-2]["t"] == 1_700_000_000.0 - 5
    assert sum(p["rate"] * 5 for p in pts) == pytest.approx(30)
    assert pts[-1]["rate"] == pytest.approx(20 / 5) and pts[-1]["p50Ms"] > 0
    assert pts[-13]["rate"] == pytest.approx(10 / 5)
    assert all(p["rate"] == 0 for p in pts[:-13])


def test_quantile_edges() -> None:
    n = len(BOUNDS_MS) + 1
    assert quantile([0] * n, 0.5) == 0.0
    over = [0] * n
    over[-1] = 3  # slower than the last bound
    assert quantile(over, 0.5) == BOUNDS_MS[-1]
    w = RequestWindow()
    w.record(0.0, now=T0)
    assert 0 <= w.summary(60, now=T0)["latencyMs"]["p95"] <= BOUNDS_MS[0]
