"""Shipyard: an ML platform that does what Kubeflow does, in one ``pip install``.

``import shipyard`` stays light: heavy modules (the server, the store, the client) load
only when an attribute that needs them is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from shipyard.client import Client
    from shipyard.tuning.report import report_metrics

__all__ = ["Client", "__version__", "report_metrics"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from shipyard.client import Client

        return Client
    if name == "report_metrics":
        from shipyard.tuning.report import report_metrics

        return report_metrics
    raise AttributeError(f"module 'shipyard' has no attribute {name!r}")
