"""Distributed training jobs: PyTorch / TensorFlow / XGBoost with Kubeflow's contract."""

from __future__ import annotations

from typing import Any


def register(platform: Any) -> None:
    from shipyard.training.api import KINDS
    from shipyard.training.controller import JobController

    for info in KINDS:
        platform.registry.add(info)
        platform.manager.add(JobController(platform, info))
