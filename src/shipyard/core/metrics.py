"""Prometheus metrics of one platform instance, in its own registry.

A registry per platform (not prometheus_client's global one) lets several embedded
platforms live in one process, as the tests do.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.reconcile_total = Counter(
            "shipyard_reconcile_total",
            "Reconciles by kind and result",
            ["kind", "result"],
            registry=r,
        )
        self.reconcile_seconds = Histogram(
            "shipyard_reconcile_duration_seconds",
            "Reconcile latency by kind",
            ["kind"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=r,
        )
        self.pods = Gauge("shipyard_pods", "Pods by phase", ["phase"], registry=r)
        self.api_seconds = Histogram(
            "shipyard_api_request_duration_seconds",
            "REST API latency",
            ["method", "route", "status"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=r,
        )
