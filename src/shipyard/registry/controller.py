"""Keeps registry status current: each RegisteredModel's versions and latest version, each
ModelVersion's aliases and the InferenceServices serving it.

Woken by its versions (owned, through their ownerReference) and by InferenceServices (found
through the kind registry by name, so serving is not imported).
"""

from __future__ import annotations

from typing import Any

from shipyard.core.controller import Controller
from shipyard.core.resource import Obj
from shipyard.core.store import Event
from shipyard.registry import uris
from shipyard.registry.admission import serving_services, storage_uris
from shipyard.registry.api import MODEL_VERSION, REGISTERED_MODEL


class RegisteredModelController(Controller):
    kind = REGISTERED_MODEL.key
    owns = (MODEL_VERSION.key,)
    ignore_own_status = True

    def __init__(self, platform: Any) -> None:
        self.platform = platform
        self.store = platform.store
        self.maps = {}
        isvc = [i for i in platform.registry if i.kind == "InferenceService"]
        if isvc:
            self.maps[isvc[0].key] = self._models_of_isvc

    def _models_of_isvc(self, event: Event) -> list[tuple[str, str]]:
        out = []
        for uri in storage_uris(event.obj):
            if uri.startswith(uris.PREFIX):
                try:
                    ref = uris.parse(uri)
                except Exception:
                    continue
                out.append((ref.namespace or event.namespace, ref.model))
        return out

    def reconcile(self, namespace: str, name: str) -> float | None:
        rm = self.store.try_get(REGISTERED_MODEL.key, namespace, name)
        if rm is None:
            return None
        versions = uris.versions_of(self.store, namespace, name)
        aliases = (rm.get("spec") or {}).get("aliases") or {}
        live = [int(v["spec"]["version"]) for v in versions if not v["spec"].get("archived")]
        status: Obj = dict(rm.get("status") or {})
        status.update(
            latestVersion=max(live) if live else None,
            versions=len(versions),
            archivedVersions=len(versions) - len(live),
        )
        if status != (rm.get("status") or {}):
            self.store.update_status(REGISTERED_MODEL.key, namespace, name, status)
        for v in versions:
            self._version_status(v, aliases)
        return None

    def _version_status(self, version: Obj, aliases: dict[str, int]) -> None:
        number = int(version["spec"]["version"])
        status: Obj = dict(version.get("status") or {})
        status["aliases"] = sorted(a for a, n in aliases.items() if int(n) == number)
        status["servedBy"] = sorted(
            s["metadata"]["name"] for s in serving_services(self.platform, version)
        )
        if status != (version.get("status") or {}):
            md = version["metadata"]
            self.store.update_status(MODEL_VERSION.key, md.get("namespace", ""), md["name"], status)
