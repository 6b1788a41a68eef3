"""Resources shaped like Kubernetes objects, and the registry of kinds.

A resource is kept as a plain ``dict`` (``apiVersion``, ``kind``, ``metadata``, ``spec``,
``status``) everywhere inside the platform: that is what the store keeps and what the REST API
sends, with no per-request model round trip. Pydantic models validate what users write at the
API boundary; each component registers its kinds with their spec models in a
:class:`KindRegistry`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from shipyard.errors import Invalid, NotFound

Obj = dict[str, Any]

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def now_iso() -> str:
    """RFC 3339 UTC timestamp with microseconds, as the store writes them."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Model(BaseModel):
    """Base of every user-facing schema: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=False
    )


class LooseModel(Model):
    """For sub-objects Shipyard passes through as they are (affinity, volumes, probes...)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)


class OwnerReference(Model):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(Model):
    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[OwnerReference] | None = None
    finalizers: list[str] | None = None
    managed_fields: list[Any] | None = None
    self_link: str | None = None

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        for key, value in (v or {}).items():
            _check_label(key, value)
        return v


def _check_label(key: str, value: str) -> None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not all(DNS1123_LABEL.match(p) for p in prefix.split("."))):
        raise ValueError(f"label key {key!r}: prefix must be a DNS subdomain")
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        raise ValueError(
            f"label key {key!r}: name must be 1-63 characters of [A-Za-z0-9-_.], "
            "starting and ending with a letter or digit"
        )
    if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
        raise ValueError(
            f"label {key}={value!r}: value must be at most 63 characters of [A-Za-z0-9-_.], "
            "starting and ending with a letter or digit"
        )


class Condition(Model):
    type: str
    status: str = Field(pattern="^(True|False|Unknown)$")
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None
    last_update_time: str | None = None
    observed_generation: int | None = None


# ---------------------------------------------------------------------------------------------
# Kinds


@dataclass(frozen=True)
class Column:
    """A column of ``shipyard get``: header and a function of the object."""

    header: str
    value: Callable[[Obj], Any]
    wide: bool = False


@dataclass(frozen=True)
class KindInfo:
    group: str
    version: str
    kind: str
    plural: str
    singular: str = ""
    short_names: tuple[str, ...] = ()
    namespaced: bool = True
    spec_model: type[BaseModel] | None = None
    # Other (group, version) pairs under which the same kind is accepted as it is, e.g.
    # Katib's ``kubeflow.org/v1beta1`` Experiment beside ``shipyard.dev/v1``. The stored
    # object keeps the apiVersion its author wrote.
    aliases: tuple[tuple[str, str], ...] = ()
    columns: tuple[Column, ...] = ()
    # Called after schema validation; may normalise the object or raise Invalid. Used for
    # checks that span fields (Kubeflow's webhook rules).
    validate: Callable[[Obj], None] | None = None
    # Where ``phase`` (for the phase selector) is read from.
    phase: Callable[[Obj], str | None] = field(
        default=lambda o: (o.get("status") or {}).get("phase")
    )
    # Fields besides metadata/spec that users may write (e.g. ``data`` for a ConfigMap).
    extra_fields: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """How the store names this kind (stable across aliases)."""
        return f"{self.group}/{self.kind}" if self.group else self.kind

    def group_versions(self) -> list[tuple[str, str]]:
        return [(self.group, self.version), *self.aliases]

    def names(self) -> set[str]:
        return {
            self.kind.lower(),
            self.plural,
            self.singular or self.kind.lower(),
            *self.short_names,
        }


class KindRegistry:
    """All kinds known to a platform; components add theirs through ``register()``."""

    def __init__(self) -> None:
        self._by_key: dict[str, KindInfo] = {}
        self._by_gvk: dict[tuple[str, str, str], KindInfo] = {}
        self._by_plural: dict[tuple[str, str, str], KindInfo] = {}

    def add(self, info: KindInfo) -> KindInfo:
        if info.key in self._by_key:
            raise ValueError(f"kind {info.key} registered twice")
        self._by_key[info.key] = info
        for group, version in info.group_versions():
            self._by_gvk[(group, version, info.kind)] = info
            self._by_plural[(group, version, info.plural)] = info
        return info

    def __iter__(self) -> Iterator[KindInfo]:
        return iter(self._by_key.values())

    def all(self) -> list[KindInfo]:
        return list(self._by_key.values())

    def by_key(self, key: str) -> KindInfo:
        return self._by_key[key]

    def for_object(self, obj: Obj, where: str = "") -> KindInfo:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not api_version or not isinstance(api_version, str):
            raise Invalid(f"{where}apiVersion is required", field="apiVersion")
        if not kind or not isinstance(kind, str):
            raise Invalid(f"{where}kind is required", field="kind")
        group, _, version = api_version.rpartition("/")
        info = self._by_gvk.get((group, version, kind))
        if info is None:
            known = sorted({f"{i.api_version} {i.kind}" for i in self._by_key.values()})
            raise NotFound(
                f"{where}unknown kind {kind!r} in apiVersion {api_version!r}; "
                f"known kinds: {', '.join(known)}",
                field="kind",
            )
        return info

    def for_path(self, group: str, version: str, plural: str) -> KindInfo:
        info = self._by_plural.get((group, version, plural))
        if info is None:
            raise NotFound(f"no resource type {plural!r} in {group or 'core'}/{version}")
        return info

    def lookup(self, name: str) -> KindInfo:
        """A kind by any name kubectl would accept: Kind, plural, singular, short name,
        optionally qualified by group (``pytorchjobs.kubeflow.org``)."""
        lowered = name.lower()
        base, _, group = lowered.partition(".")
        matches = [
            i
            for i in self._by_key.values()
            if base in i.names() and (not group or i.group == group)
        ]
        if len(matches) > 1:
            native = [i for i in matches if i.group in ("", "shipyard.dev")]
            if len(native) == 1:
                return native[0]
            raise Invalid(
                f"{name!r} is ambiguous: "
                + ", ".join(f"{i.plural}.{i.group}" for i in matches)
                + "; qualify it with the group"
            )
        if not matches:
            known = sorted(i.plural for i in self._by_key.values())
            raise NotFound(
                f"the server does not have a resource type {name!r}; known: {', '.join(known)}"
            )
        return matches[0]


# ---------------------------------------------------------------------------------------------
# Validation


def field_path(loc: Iterable[int | str], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def invalid_from(exc: ValidationError, prefix: str, where: str = "") -> Invalid:
    """The first pydantic error as an Invalid naming the field path and what to do."""
    err = exc.errors()[0]
    loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    # Discriminated/union branches add type names to loc; drop those that are not fields.
    path = field_path(loc, prefix)
    if err["type"] == "extra_forbidden":
        msg = f"unknown field {path!r}: remove it or check its spelling"
    elif err["type"] == "missing":
        msg = f"{path} is required"
    else:
        text = err["msg"].removeprefix("Value error, ")
        msg = f"{path}: {text}"
    return Invalid(where + msg, field=path)


_TOP_FIELDS = {"apiVersion", "kind", "metadata", "spec", "status"}


def validate_object(info: KindInfo, obj: Obj, where: str = "") -> Obj:
    """Check an object a user wrote against its kind; return its normalised form.

    ``where`` prefixes messages (``document 2: ``) for multi-document files.
    """
    if not isinstance(obj, dict):
        raise Invalid(f"{where}a resource must be a mapping, got {type(obj).__name__}")
    unknown = set(obj) - _TOP_FIELDS - set(info.extra_fields)
    if unknown:
        f = sorted(unknown)[0]
        raise Invalid(f"{where}unknown field {f!r}: remove it or check its spelling", field=f)
    meta_in = obj.get("metadata")
    if not isinstance(meta_in, dict):
        raise Invalid(f"{where}metadata is required (with at least a name)", field="metadata")
    try:
        meta = ObjectMeta.model_validate(meta_in)
    except ValidationError as exc:
        raise invalid_from(exc, "metadata", where) from None
    name = meta.name
    if not name and not meta.generate_name:
        raise Invalid(f"{where}metadata.name is required", field="metadata.name")
    if name and (len(name) > 63 or not DNS1123_LABEL.match(name)):
        raise Invalid(
            f"{where}metadata.name {name!r} is not a valid name: use at most 63 lower-case "
            "letters, digits and '-', starting and ending with a letter or digit",
            field="metadata.name",
        )
    if meta.namespace and not DNS1123_LABEL.match(meta.namespace):
        raise Invalid(
            f"{where}metadata.namespace {meta.namespace!r} is not a valid namespace name",
            field="metadata.namespace",
        )
    out: Obj = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": meta.model_dump(by_alias=True, exclude_none=True),
    }
    spec = obj.get("spec")
    if info.spec_model is not None:
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise Invalid(f"{where}spec must be a mapping", field="spec")
        try:
            model = info.spec_model.model_validate(spec)
        except ValidationError as exc:
            raise invalid_from(exc, "spec", where) from None
        out["spec"] = model.model_dump(by_alias=True, exclude_unset=True)
    elif spec is not None:
        out["spec"] = spec
    for extra in info.extra_fields:
        if extra in obj:
            out[extra] = obj[extra]
    if "status" in obj and isinstance(obj["status"], dict):
        out["status"] = obj["status"]
    if info.validate is not None:
        try:
            info.validate(out)
        except Invalid as exc:
            raise Invalid(where + exc.message, field=exc.field) from None
    return out


# ---------------------------------------------------------------------------------------------
# Helpers on plain objects


def meta(obj: Obj) -> Obj:
    m: Obj = obj.setdefault("metadata", {})
    return m


def name_of(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def namespace_of(obj: Obj) -> str:
    return str(obj["metadata"].get("namespace") or "")


def rv_of(obj: Obj) -> int:
    return int(obj["metadata"].get("resourceVersion") or 0)


def owner_ref(owner: Obj, controller: bool = True) -> Obj:
    """An ownerReference pointing at ``owner`` (children are deleted with it)."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def controller_of(obj: Obj) -> Obj | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def get_condition(status: Obj, ctype: str) -> Obj | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return None


def is_true(status: Obj, ctype: str) -> bool:
    cond = get_condition(status, ctype)
    return bool(cond and cond.get("status") == "True")


def set_condition(
    status: Obj,
    ctype: str,
    value: bool | str,
    reason: str = "",
    message: str = "",
) -> bool:
    """Set a condition in ``status`` in place; return whether anything changed.

    lastTransitionTime moves only when the status value changes, as in Kubernetes.
    """
    text = ("True" if value else "False") if isinstance(value, bool) else value
    conds: list[Obj] = status.setdefault("conditions", [])
    for cond in conds:
        if cond.get("type") == ctype:
            if (
                cond.get("status") == text
                and cond.get("reason", "") == reason
                and cond.get("message", "") == message
            ):
                return False
            if cond.get("status") != text:
                cond["lastTransitionTime"] = now_iso()
            cond.update(status=text, reason=reason, message=message)
            cond["lastUpdateTime"] = now_iso()
            return True
    ts = now_iso()
    conds.append(
        {
            "type": ctype,
            "status": text,
            "reason": reason,
            "message": message,
            "lastTransitionTime": ts,
            "lastUpdateTime": ts,
        }
    )
    return True
