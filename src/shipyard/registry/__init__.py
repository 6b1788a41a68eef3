"""Model registry: RegisteredModel and ModelVersion kinds, aliases and ``models:/`` URIs."""

from shipyard.registry.api import MODEL_VERSION, REGISTERED_MODEL, register

__all__ = ["MODEL_VERSION", "REGISTERED_MODEL", "register"]
