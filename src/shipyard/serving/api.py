"""Serving kinds: KServe's ``InferenceService`` (``serving.kserve.io/v1beta1``, accepted as
it is) and ``ServingRuntime`` / ``ClusterServingRuntime`` with built-in runtimes per model
format."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from shipyard.core.resource import Column, KindInfo, LooseModel, Model, Obj, get_condition
from shipyard.errors import Invalid

GROUP = "serving.kserve.io"
VERSION = "v1beta1"


class ModelFormat(Model):
    name: str
    version: str | None = None


class Batcher(Model):
    max_batch_size: int | None = Field(default=None, ge=1)
    max_latency: int | None = Field(default=None, ge=0)  # milliseconds, as KServe
    timeout: int | None = Field(default=None, ge=0)


class Logger(Model):
    mode: Literal["all", "request", "response"] | None = None
    url: str | None = None


class ModelSpec(LooseModel):
    """predictor.model: modelFormat, runtime, storageUri, protocolVersion, and container
    fields inline (resources, env, args...)."""

    model_format: ModelFormat | None = None
    runtime: str | None = None
    storage_uri: str | None = None
    protocol_version: Literal["v1", "v2", "grpc-v1", "grpc-v2"] | None = None


class ComponentSpec(LooseModel):
    """What predictor, transformer and explainer share (KServe's ComponentExtensionSpec)."""

    min_replicas: int | None = Field(default=None, ge=0)
    max_replicas: int | None = Field(default=None, ge=0)
    scale_metric: Literal["cpu", "memory", "concurrency", "rps"] | None = None
    scale_target: int | None = Field(default=None, ge=1)
    container_concurrency: int | None = Field(default=None, ge=0)
    timeout: int | None = Field(default=None, ge=1)
    canary_traffic_percent: int | None = Field(default=None, ge=0, le=100)
    batcher: Batcher | None = None
    logger: Logger | None = None
    containers: list[dict[str, Any]] | None = None


class PredictorSpec(ComponentSpec):
    model: ModelSpec | None = None


class InferenceServiceSpec(Model):
    predictor: PredictorSpec
    transformer: ComponentSpec | None = None
    explainer: ComponentSpec | None = None


def _validate_isvc(obj: Obj) -> None:
    pred = obj["spec"]["predictor"]
    model = pred.get("model")
    if not model and not pred.get("containers"):
        raise Invalid(
            "spec.predictor: set model (modelFormat and storageUri) or containers",
            field="spec.predictor.model",
        )
    if model:
        if not model.get("modelFormat") and not model.get("runtime"):
            raise Invalid(
                "spec.predictor.model.modelFormat is required (e.g. {name: sklearn})",
                field="spec.predictor.model.modelFormat",
            )
        if not model.get("storageUri"):
            raise Invalid(
                "spec.predictor.model.storageUri is required (a path, file://, models:/ or s3://)",
                field="spec.predictor.model.storageUri",
            )
    transformer = obj["spec"].get("transformer")
    if transformer is not None:
        containers = transformer.get("containers") or []
        if not containers or not containers[0].get("command"):
            raise Invalid(
                "spec.transformer.containers[0].command is required (e.g. [python, "
                "transformer.py]): the transformer runs as its own container",
                field="spec.transformer.containers",
            )
    lo, hi = pred.get("minReplicas"), pred.get("maxReplicas")
    if lo is not None and hi and lo > hi:
        raise Invalid(
            f"spec.predictor.minReplicas {lo} must not exceed maxReplicas {hi}",
            field="spec.predictor.minReplicas",
        )


def _ready(obj: Obj) -> str:
    cond = get_condition(obj.get("status") or {}, "Ready")
    return str(cond["status"]) if cond else "Unknown"


def _traffic(obj: Obj, latest: bool) -> str:
    pred = ((obj.get("status") or {}).get("components") or {}).get("predictor") or {}
    for t in pred.get("traffic") or []:
        if bool(t.get("latestRevision")) == latest:
            return str(t.get("percent", ""))
    return ""


INFERENCE_SERVICE = KindInfo(
    group=GROUP,
    version=VERSION,
    kind="InferenceService",
    plural="inferenceservices",
    singular="inferenceservice",
    short_names=("isvc",),
    spec_model=InferenceServiceSpec,
    validate=_validate_isvc,
    columns=(
        Column("URL", lambda o: (o.get("status") or {}).get("url", "")),
        Column("READY", _ready),
        Column("PREV", lambda o: _traffic(o, False)),
        Column("LATEST", lambda o: _traffic(o, True)),
        Column(
            "LATESTREADYREVISION",
            lambda o: (
                ((o.get("status") or {}).get("components") or {}).get("predictor") or {}
            ).get("latestReadyRevision", ""),
        ),
    ),
    phase=lambda o: _ready(o),
)


class SupportedModelFormat(Model):
    name: str
    version: str | None = None
    auto_select: bool | None = None
    priority: int | None = None


class ServingRuntimeSpec(LooseModel):
    supported_model_formats: list[SupportedModelFormat] = Field(default_factory=list)
    protocol_versions: list[str] | None = None
    multi_model: bool | None = None
    disabled: bool | None = None
    containers: list[dict[str, Any]] | None = None


SERVING_RUNTIME = KindInfo(
    group=GROUP,
    version="v1alpha1",
    kind="ServingRuntime",
    plural="servingruntimes",
    singular="servingruntime",
    spec_model=ServingRuntimeSpec,
    aliases=((GROUP, VERSION),),
    columns=(
        Column(
            "FORMATS",
            lambda o: ",".join(f["name"] for f in o["spec"].get("supportedModelFormats") or []),
        ),
    ),
)
CLUSTER_SERVING_RUNTIME = KindInfo(
    group=GROUP,
    version="v1alpha1",
    kind="ClusterServingRuntime",
    plural="clusterservingruntimes",
    singular="clusterservingruntime",
    namespaced=False,
    spec_model=ServingRuntimeSpec,
    aliases=((GROUP, VERSION),),
    columns=SERVING_RUNTIME.columns,
)

# Built-in runtimes (what KServe installs as ClusterServingRuntimes), all served by
# ``shipyard.serving.server``; ``warm`` is the modules replicas are forked with.
BUILTIN_RUNTIMES: dict[str, Obj] = {
    "shipyard-sklearn": {"formats": ["sklearn"], "warm": "numpy,sklearn,joblib"},
    "shipyard-xgboost": {"formats": ["xgboost"], "warm": "numpy,xgboost"},
    "shipyard-lightgbm": {"formats": ["lightgbm"], "warm": "numpy,lightgbm"},
    "shipyard-torchscript": {"formats": ["pytorch", "torchscript"], "warm": "numpy,torch"},
    "shipyard-onnx": {"formats": ["onnx"], "warm": "numpy,onnxruntime"},
    "shipyard-custom": {"formats": ["custom", "python"], "warm": "numpy"},
}


def builtin_runtime_for(fmt: str) -> str | None:
    for name, rt in BUILTIN_RUNTIMES.items():
        if fmt.lower() in rt["formats"]:
            return name
    return None


def register(platform: Any) -> None:
    from shipyard.serving.controller import InferenceServiceController
    from shipyard.serving.gateway import Gateway

    platform.registry.add(INFERENCE_SERVICE)
    platform.registry.add(SERVING_RUNTIME)
    platform.registry.add(CLUSTER_SERVING_RUNTIME)
    gateway = Gateway(platform)
    platform.serving_gateway = gateway
    platform.mounts.append(("/serving", gateway))
    platform.manager.add(InferenceServiceController(platform, gateway))
