"""Tenancy: namespaces and resource quotas (users, tokens and RBAC build on these)."""

from shipyard.tenancy.api import NAMESPACE, RESOURCE_QUOTA, register

__all__ = ["NAMESPACE", "RESOURCE_QUOTA", "register"]
