"""Pods: the leaf of every workload (Kubernetes ``v1`` Pod shape) and their controller."""

from shipyard.pods.api import POD, register

__all__ = ["POD", "register"]
