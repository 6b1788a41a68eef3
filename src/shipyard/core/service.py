"""The generic API operations over every registered kind.

The REST server and the embedded client both call this layer, so validation, defaulting and
admission behave the same however a request arrives. Components add admission checks (quota,
webhook-style validation) and mutators (defaults, finalizers) through ``admission`` and
``mutators``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from shipyard.core.resource import KindInfo, KindRegistry, Obj, validate_object
from shipyard.core.store import RawList, Store
from shipyard.errors import BadRequest, Conflict, Invalid, ShipyardError


@dataclass(frozen=True)
class AdmissionRequest:
    operation: str  # CREATE | UPDATE | DELETE
    info: KindInfo
    obj: Obj
    old: Obj | None
    service: Service


Admission = Callable[[AdmissionRequest], None]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def parse_documents(text: str, source: str = "input") -> list[Obj]:
    """Objects from (multi-document) YAML or JSON; errors name the file and document."""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BadRequest(f"{source}: malformed YAML{where}: {problem}") from None
    out: list[Obj] = []
    for i, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise BadRequest(f"{source}: document {i} is not a mapping (got {type(doc).__name__})")
        if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            out.extend(doc["items"])
        else:
            out.append(doc)
    return out


class Service:
    def __init__(self, store: Store, registry: KindRegistry) -> None:
        self.store = store
        self.registry = registry
        self.admission: list[Admission] = []
        self.mutators: list[Admission] = []

    # -- helpers ------------------------------------------------------------------------------

    def _prepare(self, obj: Obj, where: str, namespace: str | None) -> tuple[KindInfo, Obj]:
        info = self.registry.for_object(obj, where)
        md = obj.get("metadata")
        if isinstance(md, dict):
            if info.namespaced:
                if namespace and md.get("namespace") and md["namespace"] != namespace:
                    raise BadRequest(
                        f"{where}metadata.namespace {md['namespace']!r} does not match the "
                        f"request's namespace {namespace!r}",
                        field="metadata.namespace",
                    )
                md = {**md, "namespace": md.get("namespace") or namespace or "default"}
            else:
                md = {k: v for k, v in md.items() if k != "namespace"}
            obj = {**obj, "metadata": md}
        return info, validate_object(info, obj, where)

    def _admit(self, op: str, info: KindInfo, obj: Obj, old: Obj | None, where: str) -> None:
        req = AdmissionRequest(op, info, obj, old, self)
        try:
            for mutate in self.mutators:
                mutate(req)
            for check in self.admission:
                check(req)
        except ShipyardError as exc:
            if where and not exc.message.startswith(where):
                exc.message = where + exc.message
                exc.args = (exc.message,)
            raise

    # -- operations ---------------------------------------------------------------------------

    def create(
        self, obj: Obj, *, namespace: str | None = None, where: str = "", dry_run: bool = False
    ) -> Obj:
        info, obj = self._prepare(obj, where, namespace)
        obj.pop("status", None)
        obj["metadata"] = {
            k: v
            for k, v in obj["metadata"].items()
            if k not in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp")
        }
        self._admit("CREATE", info, obj, None, where)
        if dry_run:
            return obj
        return self.store.create(info.key, obj)

    def apply(
        self, obj: Obj, *, namespace: str | None = None, where: str = "", dry_run: bool = False
    ) -> tuple[Obj, str]:
        """Create, or replace spec/labels/annotations of an existing object.

        Returns the object and what happened: created, configured or unchanged.
        """
        md = obj.get("metadata")
        if isinstance(md, dict) and md.get("resourceVersion"):
            return self._apply_once(obj, namespace, where, dry_run)
        # Without a resourceVersion, apply means "make it so" over whatever is current: a
        # concurrent write (a controller's status update) is no conflict, so re-read and retry.
        for _ in range(9):
            try:
                return self._apply_once(obj, namespace, where, dry_run)
            except Conflict:
                continue
        return self._apply_once(obj, namespace, where, dry_run)

    def _apply_once(
        self, obj: Obj, namespace: str | None, where: str, dry_run: bool
    ) -> tuple[Obj, str]:
        info, new = self._prepare(obj, where, namespace)
        md = new["metadata"]
        if not md.get("name"):
            return self.create(obj, namespace=namespace, where=where, dry_run=dry_run), "created"
        old = self.store.try_get(info.key, md.get("namespace", ""), md["name"])
        if old is None:
            return self.create(obj, namespace=namespace, where=where, dry_run=dry_run), "created"
        merged_md = dict(old["metadata"])
        for key in ("labels", "annotations", "ownerReferences", "finalizers"):
            if key in md:
                merged_md[key] = md[key]
        if md.get("resourceVersion"):
            merged_md["resourceVersion"] = md["resourceVersion"]
        new["metadata"] = merged_md
        new.pop("status", None)
        self._admit("UPDATE", info, new, old, where)
        same = (
            new.get("spec") == old.get("spec")
            and all(
                new["metadata"].get(k) == old["metadata"].get(k) for k in ("labels", "annotations")
            )
            and all(new.get(k) == old.get(k) for k in info.extra_fields)
        )
        if same:
            return old, "unchanged"
        if dry_run:
            return new, "configured"
        return self.store.update(info.key, new), "configured"

    def get(self, info: KindInfo, namespace: str, name: str) -> Obj:
        return self.store.get(info.key, namespace if info.namespaced else "", name)

    def list_raw(
        self,
        info: KindInfo,
        namespace: str | None,
        *,
        selector: str | None = None,
        phase: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        name: str | None = None,
        newest_first: bool = False,
    ) -> RawList:
        if limit is not None and limit < 0:
            raise BadRequest("limit must be a positive number", field="limit")
        return self.store.list_raw(
            info.key,
            namespace if info.namespaced else None,
            selector=selector,
            phase=phase,
            limit=limit,
            continue_=continue_,
            name=name,
            newest_first=newest_first,
        )

    def replace(self, info: KindInfo, namespace: str, name: str, obj: Obj) -> Obj:
        info2, new = self._prepare(obj, "", namespace if info.namespaced else None)
        if info2.key != info.key:
            raise BadRequest(f"body is a {info2.kind}, the path names {info.kind}", field="kind")
        if new["metadata"].get("name") != name:
            raise BadRequest(
                f"metadata.name {new['metadata'].get('name')!r} does not match the path's {name!r}",
                field="metadata.name",
            )
        old = self.get(info, namespace, name)
        for key in ("uid", "creationTimestamp"):
            if key in old["metadata"]:
                new["metadata"][key] = old["metadata"][key]
        self._admit("UPDATE", info, new, old, "")
        return self.store.update(info.key, new)

    def patch(self, info: KindInfo, namespace: str, name: str, patch: Obj) -> Obj:
        if not isinstance(patch, dict):
            raise BadRequest("a merge patch must be a JSON object")
        md = patch.get("metadata")
        if isinstance(md, dict) and md.get("resourceVersion"):
            return self._patch_once(info, namespace, name, patch)
        # Without a resourceVersion a patch applies to whatever is current, as in Kubernetes:
        # a concurrent write (a controller's status update) is no conflict, so re-read and retry.
        for _ in range(9):
            try:
                return self._patch_once(info, namespace, name, patch)
            except Conflict:
                continue
        return self._patch_once(info, namespace, name, patch)

    def _patch_once(self, info: KindInfo, namespace: str, name: str, patch: Obj) -> Obj:
        old = self.get(info, namespace, name)
        status_patch = patch.get("status")
        body = merge_patch(
            {k: v for k, v in old.items() if k != "status"},
            {k: v for k, v in patch.items() if k != "status"},
        )
        new = old
        if any(k != "status" for k in patch):
            new = self.replace(info, namespace, name, body)
        if status_patch is not None:
            new = self.update_status(
                info, namespace, name, merge_patch(new.get("status") or {}, status_patch)
            )
        return new

    def update_status(
        self, info: KindInfo, namespace: str, name: str, status: Obj, rv: str | None = None
    ) -> Obj:
        if not isinstance(status, dict):
            raise Invalid("status must be a mapping", field="status")
        return self.store.update_status(
            info.key, namespace if info.namespaced else "", name, status, rv=rv
        )

    def delete(self, info: KindInfo, namespace: str, name: str) -> Obj:
        ns = namespace if info.namespaced else ""
        old = self.store.get(info.key, ns, name)
        self._admit("DELETE", info, old, old, "")
        return self.store.delete(info.key, ns, name)
