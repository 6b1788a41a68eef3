"""Admission for the registry's kinds, and for ``models:/`` URIs in InferenceServices.

- a ModelVersion is named ``<model>-v<N>``, belongs to an existing RegisteredModel and points
  at an artifact that exists; its model, version and artifact never change;
- an alias points at an existing, unarchived version;
- a version (or model) that an InferenceService serves, or that an alias points at, is not
  deleted unless annotated ``registry.shipyard.dev/force-delete: "true"`` (409 otherwise);
- an InferenceService whose storageUri is a ``models:/`` URI that does not resolve is refused.

InferenceServices are found through the kind registry by name: the registry does not import
serving.
"""

from __future__ import annotations

import re
from typing import Any

from shipyard.core.resource import Obj, owner_ref
from shipyard.errors import BadRequest, Conflict, Invalid, NotFound
from shipyard.registry import uris
from shipyard.registry.api import (
    ALIAS_RE,
    FORCE_DELETE,
    MAX_MODEL_NAME,
    MODEL_LABEL,
    MODEL_VERSION,
    REGISTERED_MODEL,
    VERSION_LABEL,
    version_name,
)

STORAGE_FIELD = "spec.predictor.model.storageUri"


def mutate(req: Any) -> None:
    """Number a new ModelVersion from its name, label it and make its model its owner."""
    if req.info.key != MODEL_VERSION.key or req.operation != "CREATE":
        return
    obj, md, spec = req.obj, req.obj["metadata"], req.obj["spec"]
    model, name = spec["modelName"], md.get("name") or ""
    m = re.fullmatch(re.escape(model) + r"-v([1-9][0-9]*)", name)
    if spec.get("version") is None:
        if not m:
            raise Invalid(
                f"modelversion {name!r}: name it {model}-v<N> (N its version number), or "
                "register it with `shipyard register` / Client.register_model, which number "
                "versions for you",
                field="metadata.name",
            )
        spec["version"] = int(m.group(1))
    elif name != version_name(model, int(spec["version"])):
        raise Invalid(
            f"modelversion {name!r}: version {spec['version']} of model {model!r} must be "
            f"named {version_name(model, int(spec['version']))!r}",
            field="metadata.name",
        )
    rm = req.service.store.try_get(REGISTERED_MODEL.key, md.get("namespace", ""), model)
    if rm is None:
        raise NotFound(
            f"modelversion {name!r}: registered model {model!r} not found in namespace "
            f"{md.get('namespace')!r}; create it first (Client.register_model creates it)",
            field="spec.modelName",
        )
    md["labels"] = {
        **(md.get("labels") or {}),
        MODEL_LABEL: model,
        VERSION_LABEL: str(spec["version"]),
    }
    refs = [r for r in md.get("ownerReferences") or [] if r.get("uid") != rm["metadata"]["uid"]]
    md["ownerReferences"] = [*refs, owner_ref(rm)]
    obj["metadata"] = md


def admit(platform: Any, req: Any) -> None:
    key = req.info.key
    if key == MODEL_VERSION.key:
        _admit_version(platform, req)
    elif key == REGISTERED_MODEL.key:
        _admit_model(platform, req)
    elif req.info.kind == "InferenceService" and req.operation in ("CREATE", "UPDATE"):
        _admit_isvc(platform, req)


def _forced(obj: Obj) -> bool:
    ann = obj["metadata"].get("annotations") or {}
    return str(ann.get(FORCE_DELETE, "")).lower() == "true"


def _admit_version(platform: Any, req: Any) -> None:
    obj, spec = req.obj, req.obj["spec"]
    name = obj["metadata"]["name"]
    if req.operation == "CREATE":
        uri = spec["artifactUri"]
        if uri.startswith("artifact://"):
            try:
                exists = platform.artifacts.exists(uri)
            except BadRequest as exc:
                raise Invalid(
                    f"modelversion {name!r}: {exc.message}", field="spec.artifactUri"
                ) from None
            if not exists:
                raise NotFound(
                    f"modelversion {name!r}: artifact {uri} is not in the artifact store; "
                    "upload it first (shipyard.log_model or Client.upload_artifact)",
                    field="spec.artifactUri",
                )
        elif "://" not in uri:
            raise Invalid(
                f"modelversion {name!r}: artifactUri {uri!r} must be an artifact:// URI of "
                "the store or a URL such as s3://bucket/path",
                field="spec.artifactUri",
            )
    elif req.operation == "UPDATE" and req.old is not None:
        old = req.old["spec"]
        for f in ("modelName", "version", "artifactUri"):
            if spec.get(f) != old.get(f):
                raise Invalid(
                    f"modelversion {name!r}: spec.{f} cannot change; register a new version",
                    field=f"spec.{f}",
                )
        if spec.get("archived") and not old.get("archived"):
            aliases = _aliases_pointing(platform, obj)
            if aliases:
                raise Conflict(
                    f"modelversion {name!r} cannot be archived: alias "
                    f"{', '.join(aliases)} points at it; move the alias first",
                    field="spec.archived",
                )
    elif req.operation == "DELETE" and not _forced(obj):
        _refuse_if_used(platform, [obj], f"modelversion {name!r}")


def _aliases_pointing(platform: Any, version: Obj) -> list[str]:
    ns = version["metadata"].get("namespace", "")
    rm = platform.store.try_get(REGISTERED_MODEL.key, ns, version["spec"]["modelName"])
    aliases = ((rm or {}).get("spec") or {}).get("aliases") or {}
    return sorted(a for a, v in aliases.items() if int(v) == int(version["spec"]["version"]))


def serving_services(platform: Any, version: Obj) -> list[Obj]:
    """The InferenceServices (in the version's namespace) whose storageUri names it."""
    infos = [i for i in platform.registry if i.kind == "InferenceService"]
    if not infos:
        return []
    ns = version["metadata"].get("namespace", "")
    out = []
    for isvc in platform.store.list(infos[0].key, ns).items:
        for uri in storage_uris(isvc):
            if uris.refers_to(platform.store, uri, ns, version):
                out.append(isvc)
                break
    return out


def storage_uris(isvc: Obj) -> list[str]:
    spec = isvc.get("spec") or {}
    found = []
    for comp in ("predictor", "transformer", "explainer"):
        model = (spec.get(comp) or {}).get("model") or {}
        if isinstance(model.get("storageUri"), str):
            found.append(model["storageUri"])
    return found


def _refuse_if_used(platform: Any, versions: list[Obj], what: str) -> None:
    for version in versions:
        served = serving_services(platform, version)
        v = version["spec"]["version"]
        if served:
            names = ", ".join(s["metadata"]["name"] for s in served)
            raise Conflict(
                f"{what} cannot be deleted: version {v} is served by inferenceservice "
                f"{names}; point the service elsewhere, or annotate it "
                f'{FORCE_DELETE}="true" (shipyard delete-version --force)'
            )
        aliases = _aliases_pointing(platform, version)
        if aliases and what.startswith("modelversion"):
            raise Conflict(
                f"{what} cannot be deleted: alias {', '.join(aliases)} points at version {v}; "
                f'move the alias, or annotate it {FORCE_DELETE}="true"'
            )


def _admit_model(platform: Any, req: Any) -> None:
    obj = req.obj
    name, ns = obj["metadata"]["name"], obj["metadata"].get("namespace", "")
    if req.operation == "DELETE":
        if not _forced(obj):
            _refuse_if_used(platform, uris.versions_of(platform.store, ns, name), f"model {name!r}")
        return
    if len(name) > MAX_MODEL_NAME:
        raise Invalid(
            f"registeredmodel {name!r}: use at most {MAX_MODEL_NAME} characters "
            "(versions are named <model>-v<N>)",
            field="metadata.name",
        )
    for alias, number in sorted(((obj.get("spec") or {}).get("aliases") or {}).items()):
        field = f"spec.aliases.{alias}"
        if not ALIAS_RE.match(alias) or alias == "latest":
            raise Invalid(
                f"model {name!r}: alias {alias!r} must be lower-case letters, digits, '-', '_' "
                "or '.' (and not 'latest')",
                field=field,
            )
        version = platform.store.try_get(MODEL_VERSION.key, ns, version_name(name, number))
        if version is None:
            known = ", ".join(
                str(v["spec"]["version"]) for v in uris.versions_of(platform.store, ns, name)
            )
            raise NotFound(
                f"model {name!r}: alias {alias!r} points at version {number}, which does not "
                f"exist (versions: {known or 'none'})",
                field=field,
            )
        old_target = (((req.old or {}).get("spec") or {}).get("aliases") or {}).get(alias)
        if version["spec"].get("archived") and old_target != number:
            raise Invalid(
                f"model {name!r}: alias {alias!r} cannot point at version {number}: it is archived",
                field=field,
            )


def _admit_isvc(platform: Any, req: Any) -> None:
    ns = req.obj["metadata"].get("namespace", "")
    name = req.obj["metadata"]["name"]
    for uri in storage_uris(req.obj):
        if not uri.startswith(uris.PREFIX):
            continue
        try:
            uris.resolve(platform.store, uri, ns)
        except (Invalid, NotFound) as exc:
            raise Invalid(
                f"inferenceservice {name!r}: storageUri {exc.message}", field=STORAGE_FIELD
            ) from None
