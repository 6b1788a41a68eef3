"""``models:/`` URIs: which ModelVersion they name, and where its files are.

Accepted forms (the namespace comes from the context unless given):

- ``models:/NAME/3`` — version 3;
- ``models:/NAME@production`` — the version the alias points at;
- ``models:/NAME/latest`` — the highest version that is not archived;
- ``models:/NAMESPACE/NAME/3``, ``models:/NAMESPACE/NAME@alias`` — in another namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipyard.core.resource import DNS1123_LABEL, Obj
from shipyard.errors import Invalid, NotFound
from shipyard.registry.api import (
    ALIAS_RE,
    MODEL_LABEL,
    MODEL_VERSION,
    REGISTERED_MODEL,
    version_name,
)

PREFIX = "models:/"


@dataclass(frozen=True)
class ModelRef:
    namespace: str | None
    model: str
    version: int | None = None
    alias: str | None = None
    latest: bool = False

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        ref = f"@{self.alias}" if self.alias else "/latest" if self.latest else f"/{self.version}"
        return f"{PREFIX}{ns}{self.model}{ref}"


def _bad(uri: str, why: str) -> Invalid:
    return Invalid(
        f"{uri!r} is not a valid model URI: {why} "
        "(use models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/latest)",
        field="uri",
    )


def parse(uri: str) -> ModelRef:
    if not uri.startswith(PREFIX):
        raise _bad(uri, f"it must start with {PREFIX}")
    parts = uri[len(PREFIX) :].strip("/").split("/")
    alias = None
    if "@" in parts[-1]:
        last, _, alias = parts[-1].partition("@")
        parts = [*parts[:-1], last, "@"]
        if not alias or not ALIAS_RE.match(alias):
            raise _bad(uri, f"alias {alias!r} must be lower-case letters, digits, '-', '_', '.'")
    if len(parts) not in (2, 3) or not all(parts):
        raise _bad(uri, "expected a model name and a version or alias")
    namespace = parts[0] if len(parts) == 3 else None
    model, ref = parts[-2], parts[-1]
    for what, value in (("namespace", namespace), ("model name", model)):
        if value is not None and not DNS1123_LABEL.match(value):
            raise _bad(uri, f"{what} {value!r} is not a valid name")
    if alias is not None:
        return ModelRef(namespace, model, alias=alias)
    if ref == "latest":
        return ModelRef(namespace, model, latest=True)
    if not ref.isdigit() or int(ref) < 1:
        raise _bad(uri, f"version {ref!r} must be a positive number, 'latest' or @alias")
    return ModelRef(namespace, model, version=int(ref))


def versions_of(store: Any, namespace: str, model: str) -> list[Obj]:
    """Every version of a model, by version number."""
    items = store.list(MODEL_VERSION.key, namespace, selector=f"{MODEL_LABEL}={model}").items
    return sorted(items, key=lambda v: int(v["spec"].get("version") or 0))


def resolve_ref(store: Any, ref: ModelRef, namespace: str) -> Obj:
    """The ModelVersion a reference names; NotFound saying which part did not resolve."""
    ns = ref.namespace or namespace
    rm = store.try_get(REGISTERED_MODEL.key, ns, ref.model)
    if rm is None:
        raise NotFound(f"{ref}: no registered model {ref.model!r} in namespace {ns!r}", field="uri")
    if ref.alias is not None:
        aliases = (rm.get("spec") or {}).get("aliases") or {}
        if ref.alias not in aliases:
            known = ", ".join(sorted(aliases)) or "none"
            raise NotFound(
                f"{ref}: model {ref.model!r} has no alias {ref.alias!r} (aliases: {known})",
                field="uri",
            )
        number = int(aliases[ref.alias])
        found = store.try_get(MODEL_VERSION.key, ns, version_name(ref.model, number))
        if found is None:
            raise NotFound(
                f"{ref}: alias {ref.alias!r} points at version {number} of {ref.model!r}, "
                "which no longer exists; move the alias",
                field="uri",
            )
        return dict(found)
    if ref.latest:
        live = [v for v in versions_of(store, ns, ref.model) if not v["spec"].get("archived")]
        if not live:
            raise NotFound(f"{ref}: model {ref.model!r} has no unarchived version", field="uri")
        return live[-1]
    assert ref.version is not None
    found = store.try_get(MODEL_VERSION.key, ns, version_name(ref.model, ref.version))
    if found is None:
        known = ", ".join(str(v["spec"].get("version")) for v in versions_of(store, ns, ref.model))
        raise NotFound(
            f"{ref}: model {ref.model!r} has no version {ref.version} "
            f"(versions: {known or 'none'})",
            field="uri",
        )
    return dict(found)


def resolve(store: Any, uri: str, namespace: str) -> Obj:
    return resolve_ref(store, parse(uri), namespace)


def resolve_location(platform: Any, uri: str, namespace: str) -> str:
    """Where the files of the version a ``models:/`` URI names live: a local path or an
    fsspec URL (for serving's storageUri and pipeline inputs)."""
    version = resolve(platform.store, uri, namespace)
    artifact = version["spec"]["artifactUri"]
    if artifact.startswith("artifact://"):
        location: str = platform.artifacts.location(artifact)
        return location
    return str(artifact)


def refers_to(store: Any, uri: str, namespace: str, version: Obj) -> bool:
    """Whether a storage URI (``models:/…`` or the artifact URI itself) names ``version``."""
    if not isinstance(uri, str):
        return False
    if uri == version["spec"]["artifactUri"]:
        return True
    if not uri.startswith(PREFIX):
        return False
    try:
        target = resolve(store, uri, namespace)
    except (Invalid, NotFound):
        return False
    return bool(target["metadata"]["uid"] == version["metadata"]["uid"])
