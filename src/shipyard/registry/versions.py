"""Registering versions with automatic numbers, safely under concurrency.

The next number is one more than the highest existing version; two writers that pick the
same number race on the store's unique name, and the loser picks again.
"""

from __future__ import annotations

import contextlib
from typing import Any

from shipyard.core.resource import Obj
from shipyard.errors import AlreadyExists, Conflict, Invalid
from shipyard.registry import uris
from shipyard.registry.api import MODEL_VERSION, REGISTERED_MODEL, VERSION, version_name

_SPEC_FIELDS = (
    "artifactUri",
    "format",
    "frameworkVersions",
    "signature",
    "metrics",
    "params",
    "description",
    "source",
)
MAX_ATTEMPTS = 50


def ensure_model(service: Any, namespace: str, model: str, description: str | None = None) -> Obj:
    existing = service.store.try_get(REGISTERED_MODEL.key, namespace, model)
    if existing is not None:
        return dict(existing)
    obj: Obj = {
        "apiVersion": f"{REGISTERED_MODEL.group}/{VERSION}",
        "kind": REGISTERED_MODEL.kind,
        "metadata": {"name": model, "namespace": namespace},
        "spec": {"description": description} if description else {},
    }
    with contextlib.suppress(AlreadyExists):
        return dict(service.create(obj))
    return dict(service.store.get(REGISTERED_MODEL.key, namespace, model))


def create_version(
    service: Any,
    namespace: str,
    model: str,
    spec: Obj,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> Obj:
    """Register ``spec`` (artifactUri, format, metrics, ...) as the next version of ``model``
    (created if missing) and return the stored ModelVersion."""
    unknown = sorted(set(spec) - set(_SPEC_FIELDS))
    if unknown:
        raise Invalid(
            f"model version field {unknown[0]!r} is not known; use " + ", ".join(_SPEC_FIELDS),
            field=f"spec.{unknown[0]}",
        )
    if not spec.get("artifactUri"):
        raise Invalid("artifactUri is required", field="spec.artifactUri")
    ensure_model(service, namespace, model)
    for _ in range(MAX_ATTEMPTS):
        existing = uris.versions_of(service.store, namespace, model)
        number = max((int(v["spec"]["version"]) for v in existing), default=0) + 1
        md: Obj = {"name": version_name(model, number), "namespace": namespace}
        if labels:
            md["labels"] = dict(labels)
        if annotations:
            md["annotations"] = dict(annotations)
        obj: Obj = {
            "apiVersion": f"{MODEL_VERSION.group}/{VERSION}",
            "kind": MODEL_VERSION.kind,
            "metadata": md,
            "spec": {"modelName": model, "version": number, **spec},
        }
        try:
            return dict(service.create(obj))
        except AlreadyExists:
            continue  # another writer took this number: take the next one
    raise Conflict(
        f"could not number a new version of {model!r} after {MAX_ATTEMPTS} attempts "
        "(too many concurrent registrations); retry"
    )
