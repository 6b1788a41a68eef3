"""Experiment tracking (params, metric histories, artifacts logged from inside Pods), run
comparison and lineage. ``shipyard.log_*`` are in :mod:`shipyard.tracking.client`, which
stays light (this package imports nothing heavy until ``register`` runs)."""

from __future__ import annotations

from typing import Any


def register(platform: Any) -> None:
    from shipyard.tracking.api import register as _register

    _register(platform)
