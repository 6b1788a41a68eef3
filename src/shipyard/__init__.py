"""Shipyard: an ML platform that does what Kubeflow does, in one ``pip install``.

``import shipyard`` stays light: heavy modules (the server, the store, the client) load
only when an attribute that needs them is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from shipyard.client import Client
    from shipyard.tracking.client import (
        log_artifact,
        log_input,
        log_metric,
        log_metrics,
        log_model,
        log_param,
        log_params,
    )
    from shipyard.tuning.report import report_metrics

# Tracking from inside a Pod (shipyard.tracking.client, loaded on first use).
_TRACKING = (
    "log_param",
    "log_params",
    "log_metric",
    "log_metrics",
    "log_artifact",
    "log_input",
    "log_model",
)

__all__ = [
    "Client",
    "__version__",
    "log_artifact",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "report_metrics",
]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from shipyard.client import Client

        return Client
    if name == "report_metrics":
        from shipyard.tuning.report import report_metrics

        return report_metrics
    if name in _TRACKING:
        from shipyard.tracking import client as tracking_client

        return getattr(tracking_client, name)
    raise AttributeError(f"module 'shipyard' has no attribute {name!r}")
