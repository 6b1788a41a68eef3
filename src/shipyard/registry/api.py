"""Model registry kinds: ``RegisteredModel`` and ``ModelVersion`` (``shipyard.dev/v1``).

A ModelVersion is named ``<model>-v<N>`` and points at an artifact (``artifact://sha256/…``
in the platform's store, checked to exist, or an external URL such as ``s3://…``). Aliases
(``production``, ``staging``, any name) live in the RegisteredModel's ``spec.aliases`` as
``{alias: version}`` and move by patching it. ``models:/NAME/3``, ``models:/NAME@alias`` and
``models:/NAME/latest`` resolve through :mod:`shipyard.registry.uris`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from shipyard.core.resource import Column, KindInfo, LooseModel, Model, Obj

GROUP = "shipyard.dev"
VERSION = "v1"
MODEL_LABEL = "registry.shipyard.dev/model"
VERSION_LABEL = "registry.shipyard.dev/version"
# Set on a ModelVersion (or RegisteredModel) to delete it although a service serves it.
FORCE_DELETE = "registry.shipyard.dev/force-delete"
ALIAS_RE = re.compile(r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$")
MAX_MODEL_NAME = 56  # leaves room for "-v<N>" within a 63-character name


class RegisteredModelSpec(Model):
    description: str | None = None
    # alias -> version number; moves with a patch ({"spec": {"aliases": {"production": 3}}}).
    aliases: dict[str, int] = Field(default_factory=dict)


class TensorSpec(LooseModel):
    name: str | None = None
    datatype: str | None = None
    shape: list[int] | None = None


class Signature(Model):
    inputs: list[TensorSpec] | None = None
    outputs: list[TensorSpec] | None = None


class Source(Model):
    """What produced the version: the tracking run and the execution behind it."""

    run: str | None = None  # TrackingRun name
    kind: str | None = None  # execution kind: Pod, Trial, TrainJob, PyTorchJob, ...
    name: str | None = None
    uid: str | None = None
    pod: str | None = None
    pipeline_run: str | None = None
    task: str | None = None
    trial: str | None = None


class ModelVersionSpec(Model):
    model_name: str
    version: int | None = Field(default=None, ge=1)
    artifact_uri: str
    format: str | None = None  # sklearn, xgboost, lightgbm, pytorch, onnx, custom
    framework_versions: dict[str, str] | None = None
    signature: Signature | None = None
    metrics: dict[str, float] | None = None
    params: dict[str, str] | None = None
    description: str | None = None
    archived: bool | None = None
    source: Source | None = None


def version_name(model: str, version: int) -> str:
    return f"{model}-v{version}"


def _aliases_of(obj: Obj) -> str:
    aliases = (obj.get("spec") or {}).get("aliases") or {}
    return ",".join(f"{a}=v{v}" for a, v in sorted(aliases.items()))


def _latest(obj: Obj) -> str:
    v = (obj.get("status") or {}).get("latestVersion")
    return str(v) if v else ""


REGISTERED_MODEL = KindInfo(
    group=GROUP,
    version=VERSION,
    kind="RegisteredModel",
    plural="registeredmodels",
    singular="registeredmodel",
    short_names=("rm", "models"),
    spec_model=RegisteredModelSpec,
    columns=(
        Column("LATEST", _latest),
        Column("ALIASES", _aliases_of),
        Column("DESCRIPTION", lambda o: (o.get("spec") or {}).get("description") or "", True),
    ),
)


def _served_by(obj: Obj) -> str:
    return ",".join((obj.get("status") or {}).get("servedBy") or [])


MODEL_VERSION = KindInfo(
    group=GROUP,
    version=VERSION,
    kind="ModelVersion",
    plural="modelversions",
    singular="modelversion",
    short_names=("mv",),
    spec_model=ModelVersionSpec,
    columns=(
        Column("MODEL", lambda o: o["spec"]["modelName"]),
        Column("VERSION", lambda o: o["spec"].get("version", "")),
        Column("FORMAT", lambda o: o["spec"].get("format") or ""),
        Column("ARCHIVED", lambda o: str(bool(o["spec"].get("archived"))).lower()),
        Column("RUN", lambda o: (o["spec"].get("source") or {}).get("run") or ""),
        Column("ARTIFACT", lambda o: o["spec"]["artifactUri"], True),
    ),
)


def register(platform: Any) -> None:
    """Add the registry's kinds, admission, the ``models:/`` resolver and its endpoints."""
    from shipyard.core.artifacts import ArtifactStore, default_root
    from shipyard.registry import admission
    from shipyard.registry.controller import RegisteredModelController
    from shipyard.registry.endpoints import PREFIX, make_app
    from shipyard.registry.uris import resolve_location

    platform.registry.add(REGISTERED_MODEL)
    platform.registry.add(MODEL_VERSION)
    if getattr(platform, "artifacts", None) is None:
        platform.artifacts = ArtifactStore(default_root(platform.settings.data_dir))
    platform.service.mutators.append(admission.mutate)
    platform.service.admission.append(lambda req: admission.admit(platform, req))

    def resolve_model_uri(uri: str, namespace: str | None = None) -> str:
        return resolve_location(platform, uri, namespace or "default")

    # Serving (storageUri) and pipelines look this up by name: no import of the registry.
    platform.resolve_model_uri = resolve_model_uri
    platform.mounts.append((PREFIX, make_app(platform)))
    platform.manager.add(RegisteredModelController(platform))
