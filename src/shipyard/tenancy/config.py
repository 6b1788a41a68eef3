"""ConfigMap and Secret, in Kubernetes' ``v1`` shapes, and how Pods read them.

Pods reference them through ``env[].valueFrom.configMapKeyRef`` / ``secretKeyRef`` and
``envFrom[].configMapRef`` / ``secretRef``. The Pod controller resolves those before start,
so a Pod whose reference is missing (and not ``optional``) stays Pending with a reason,
as the kubelet's CreateContainerConfigError does.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from shipyard.core.resource import Column, KindInfo, Obj
from shipyard.errors import Invalid


def _validate_configmap(obj: Obj) -> None:
    for field in ("data", "binaryData"):
        value = obj.get(field)
        if value is None:
            continue
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise Invalid(f"{field} must map keys to strings", field=field)


def _validate_secret(obj: Obj) -> None:
    _validate_configmap({k: v for k, v in obj.items() if k in ("data", "stringData")})
    for key, value in (obj.get("data") or {}).items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid(
                f"data.{key}: not valid base64 (use stringData for plain text)",
                field=f"data.{key}",
            ) from None


CONFIG_MAP = KindInfo(
    group="",
    version="v1",
    kind="ConfigMap",
    plural="configmaps",
    singular="configmap",
    short_names=("cm",),
    extra_fields=("data", "binaryData", "immutable"),
    validate=_validate_configmap,
    columns=(Column("DATA", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),),
)

SECRET = KindInfo(
    group="",
    version="v1",
    kind="Secret",
    plural="secrets",
    singular="secret",
    extra_fields=("data", "stringData", "type", "immutable"),
    validate=_validate_secret,
    columns=(
        Column("TYPE", lambda o: o.get("type", "Opaque")),
        Column("DATA", lambda o: len(o.get("data") or {}) + len(o.get("stringData") or {})),
    ),
)


def secret_values(secret: Obj) -> dict[str, str]:
    out = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    out.update(secret.get("stringData") or {})
    return out


class MissingReference(Exception):
    """A Pod's env refers to a ConfigMap/Secret (key) that does not exist."""


def resolve_env(store: Any, pod: Obj) -> dict[str, str]:
    """Values for every env entry that names a ConfigMap or Secret, per container name
    flattened (the local runtime passes them as extra environment)."""
    ns = pod["metadata"].get("namespace", "")
    cache: dict[tuple[str, str], dict[str, str] | None] = {}

    def source(kind: str, name: str) -> dict[str, str] | None:
        if (kind, name) not in cache:
            obj = store.try_get(kind, ns, name)
            if obj is None:
                cache[(kind, name)] = None
            elif kind == "Secret":
                cache[(kind, name)] = secret_values(obj)
            else:
                cache[(kind, name)] = dict(obj.get("data") or {})
        return cache[(kind, name)]

    out: dict[str, str] = {}
    spec = pod.get("spec") or {}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for item in c.get("envFrom") or []:
            for ref_key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                ref = item.get(ref_key)
                if not ref:
                    continue
                values = source(kind, ref.get("name", ""))
                if values is None:
                    if ref.get("optional"):
                        continue
                    raise MissingReference(f"{kind.lower()} {ref.get('name')!r} not found")
                prefix = item.get("prefix", "")
                out.update({prefix + k: v for k, v in values.items()})
        for item in c.get("env") or []:
            vf = item.get("valueFrom") or {}
            for ref_key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                ref = vf.get(ref_key)
                if not ref:
                    continue
                values = source(kind, ref.get("name", ""))
                if values is None or ref.get("key") not in values:
                    if ref.get("optional"):
                        continue
                    what = f"{kind.lower()} {ref.get('name')!r}"
                    missing = what if values is None else f"key {ref.get('key')!r} in {what}"
                    raise MissingReference(f"env {item['name']}: {missing} not found")
                out[item["name"]] = values[ref["key"]]
    return out
