"""Training job kinds: Shipyard's ``TrainJob`` and Kubeflow's, accepted as they are.

- ``shipyard.dev/v1`` TrainJob: ``framework`` (pytorch | tensorflow | xgboost) plus Kubeflow
  v1's ``replicaSpecs`` / ``runPolicy`` / ``elasticPolicy`` in one shape;
- ``kubeflow.org/v1`` PyTorchJob, TFJob, XGBoostJob (training-operator v1.9 shapes);
- ``trainer.kubeflow.org/v1alpha1`` TrainJob (Trainer v2) with ``runtimeRef`` to a built-in
  runtime (see :mod:`shipyard.training.runtimes`).

Each kind is its own :class:`KindInfo`, so the stored object keeps the form its author wrote.
The ``validate`` functions make the checks Kubeflow's admission webhooks make, with messages
naming the field.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from shipyard.core.resource import Column, KindInfo, LooseModel, Model, Obj
from shipyard.errors import Invalid
from shipyard.pods.api import EnvVar, PodSpec, ResourceRequirements
from shipyard.training import runtimes

DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
RestartPolicy = Literal["Always", "OnFailure", "Never", "ExitCode"]


class PodTemplate(Model):
    metadata: dict[str, Any] | None = None
    spec: PodSpec


class ReplicaSpec(Model):
    replicas: int | None = Field(default=None, ge=0)
    restart_policy: RestartPolicy | None = None
    template: PodTemplate


class SchedulingPolicy(Model):
    min_available: int | None = Field(default=None, ge=1)
    queue: str | None = None
    priority_class: str | None = None
    min_resources: dict[str, Any] | None = None
    schedule_timeout_seconds: int | None = Field(default=None, ge=1)


class RunPolicy(Model):
    clean_pod_policy: Literal["None", "Running", "All"] | None = None
    ttl_seconds_after_finished: int | None = Field(default=None, ge=0)
    active_deadline_seconds: int | None = Field(default=None, ge=1)
    backoff_limit: int | None = Field(default=None, ge=0)
    scheduling_policy: SchedulingPolicy | None = None
    suspend: bool | None = None
    managed_by: str | None = None


class ElasticPolicy(Model):
    min_replicas: int | None = Field(default=None, ge=1)
    max_replicas: int | None = Field(default=None, ge=1)
    rdzv_backend: Literal["c10d", "etcd", "etcd-v2"] | None = None
    rdzv_port: int | None = Field(default=None, ge=1, le=65535)
    rdzv_host: str | None = None
    rdzv_id: str | None = None
    rdzv_conf: list[dict[str, str]] | None = None
    standalone: bool | None = None
    n_proc_per_node: int | None = Field(default=None, ge=1)
    max_restarts: int | None = Field(default=None, ge=0)
    metrics: list[dict[str, Any]] | None = None


class PyTorchJobSpec(Model):
    run_policy: RunPolicy | None = None
    elastic_policy: ElasticPolicy | None = None
    pytorch_replica_specs: dict[str, ReplicaSpec]
    nproc_per_node: str | int | None = None


class TFJobSpec(Model):
    run_policy: RunPolicy | None = None
    success_policy: Literal["", "AllWorkers"] | None = None
    tf_replica_specs: dict[str, ReplicaSpec]
    enable_dynamic_worker: bool | None = None


class XGBoostJobSpec(Model):
    run_policy: RunPolicy | None = None
    xgb_replica_specs: dict[str, ReplicaSpec]


class TrainJobSpec(Model):
    """Shipyard's own TrainJob: one shape for every framework."""

    framework: Literal["pytorch", "tensorflow", "xgboost"] = "pytorch"
    replica_specs: dict[str, ReplicaSpec]
    run_policy: RunPolicy | None = None
    elastic_policy: ElasticPolicy | None = None
    nproc_per_node: str | int | None = None
    success_policy: Literal["", "AllWorkers"] | None = None


class RuntimeRef(Model):
    name: str
    api_group: str | None = None
    kind: Literal["ClusterTrainingRuntime", "TrainingRuntime"] | None = None


class Trainer(Model):
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[EnvVar] | None = None
    num_nodes: int | None = Field(default=None, ge=1)
    resources_per_node: ResourceRequirements | None = None
    num_proc_per_node: int | str | None = None


class TrainJobV2Spec(Model):
    runtime_ref: RuntimeRef
    initializer: LooseModel | None = None
    trainer: Trainer | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    pod_spec_overrides: list[dict[str, Any]] | None = None
    pod_template_overrides: list[dict[str, Any]] | None = None
    suspend: bool | None = None
    managed_by: str | None = None
    active_deadline_seconds: int | None = Field(default=None, ge=1)


# ---------------------------------------------------------------------------------------------
# Webhook-style validation


FRAMEWORKS: dict[str, dict[str, Any]] = {
    # field holding the replica specs, allowed replica types, default container, default
    # restartPolicy (Kubeflow's defaulting webhook)
    "pytorch": {
        "field": "pytorchReplicaSpecs",
        "types": ("Master", "Worker"),
        "container": "pytorch",
        "restart": "OnFailure",
    },
    "tensorflow": {
        "field": "tfReplicaSpecs",
        "types": ("Chief", "Master", "PS", "Worker", "Evaluator"),
        "container": "tensorflow",
        "restart": "Never",
    },
    "xgboost": {
        "field": "xgbReplicaSpecs",
        "types": ("Master", "Worker"),
        "container": "xgboost",
        "restart": "Never",
    },
}


def _check_name(obj: Obj) -> None:
    name = obj["metadata"].get("name") or ""
    if name and not DNS1035.match(name):
        raise Invalid(
            f"metadata.name {name!r}: a training job name must start with a letter "
            "(DNS-1035 label: lower-case letters, digits and '-')",
            field="metadata.name",
        )


def _check_replicas(specs: dict[str, Any], framework: str, prefix: str, *, kubeflow: bool) -> None:
    fw = FRAMEWORKS[framework]
    if not specs:
        raise Invalid(f"{prefix} must name at least one replica type", field=prefix)
    for rtype, rspec in specs.items():
        where = f"{prefix}.{rtype}"
        if rtype not in fw["types"]:
            raise Invalid(
                f"{prefix}: unknown replica type {rtype!r}; use one of: {', '.join(fw['types'])}",
                field=where,
            )
        containers = rspec["template"]["spec"]["containers"]
        names = [c["name"] for c in containers]
        if fw["container"] not in names:
            raise Invalid(
                f"{where}.template.spec.containers: there must be a container named "
                f"{fw['container']!r} (found: {', '.join(names)})",
                field=f"{where}.template.spec.containers",
            )
        for i, c in enumerate(containers):
            if kubeflow and not c.get("image"):
                raise Invalid(
                    f"{where}.template.spec.containers[{i}].image is required",
                    field=f"{where}.template.spec.containers[{i}].image",
                )
    replicas = {t: int(s.get("replicas", 1)) for t, s in specs.items()}
    for single in ("Master", "Chief", "Evaluator"):
        if (
            single in replicas
            and replicas[single] != 1
            and not (single == "Evaluator" and replicas[single] == 0)
        ):
            raise Invalid(
                f"{prefix}.{single}.replicas must be 1 (got {replicas[single]})",
                field=f"{prefix}.{single}.replicas",
            )
    if framework == "tensorflow" and "Chief" in specs and "Master" in specs:
        raise Invalid(f"{prefix}: use either Chief or Master, not both", field=f"{prefix}.Master")
    if framework == "xgboost" and "Master" not in specs:
        raise Invalid(f"{prefix}.Master is required for an XGBoostJob", field=f"{prefix}.Master")


def _check_elastic(spec: Obj) -> None:
    ep = spec.get("elasticPolicy")
    if not ep:
        return
    lo, hi = ep.get("minReplicas"), ep.get("maxReplicas")
    if lo is not None and hi is not None and lo > hi:
        raise Invalid(
            f"spec.elasticPolicy.minReplicas ({lo}) must not exceed maxReplicas ({hi})",
            field="spec.elasticPolicy.minReplicas",
        )
    if ep.get("nProcPerNode") is not None and spec.get("nprocPerNode") is not None:
        raise Invalid(
            "spec.elasticPolicy.nProcPerNode must not be set together with spec.nprocPerNode",
            field="spec.elasticPolicy.nProcPerNode",
        )
    specs = spec.get("pytorchReplicaSpecs") or spec.get("replicaSpecs") or {}
    if "Master" in specs:
        raise Invalid(
            "spec.elasticPolicy: an elastic job has only Worker replicas (remove Master)",
            field="spec.elasticPolicy",
        )


def _check_nproc(spec: Obj) -> None:
    n = spec.get("nprocPerNode")
    if n is None or isinstance(n, int):
        return
    if n not in ("auto", "cpu", "gpu") and not str(n).isdigit():
        raise Invalid(
            f"spec.nprocPerNode {n!r}: use auto, cpu, gpu or a number",
            field="spec.nprocPerNode",
        )


def validate_pytorchjob(obj: Obj) -> None:
    _check_name(obj)
    spec = obj["spec"]
    _check_replicas(
        spec["pytorchReplicaSpecs"], "pytorch", "spec.pytorchReplicaSpecs", kubeflow=True
    )
    _check_elastic(spec)
    _check_nproc(spec)


def validate_tfjob(obj: Obj) -> None:
    _check_name(obj)
    _check_replicas(
        obj["spec"]["tfReplicaSpecs"], "tensorflow", "spec.tfReplicaSpecs", kubeflow=True
    )


def validate_xgboostjob(obj: Obj) -> None:
    _check_name(obj)
    _check_replicas(
        obj["spec"]["xgbReplicaSpecs"], "xgboost", "spec.xgbReplicaSpecs", kubeflow=True
    )


def validate_trainjob(obj: Obj) -> None:
    _check_name(obj)
    spec = obj["spec"]
    framework = spec.get("framework", "pytorch")
    _check_replicas(spec["replicaSpecs"], framework, "spec.replicaSpecs", kubeflow=False)
    if spec.get("elasticPolicy") and framework != "pytorch":
        raise Invalid(
            "spec.elasticPolicy is only for framework pytorch", field="spec.elasticPolicy"
        )
    _check_elastic(spec)
    _check_nproc(spec)


def validate_trainjob_v2(obj: Obj) -> None:
    _check_name(obj)
    spec = obj["spec"]
    ref = spec["runtimeRef"]
    if ref["name"] not in runtimes.BUILTIN:
        raise Invalid(
            f"spec.runtimeRef.name {ref['name']!r} is not a known runtime; built-in runtimes: "
            + ", ".join(sorted(runtimes.BUILTIN)),
            field="spec.runtimeRef.name",
        )
    trainer = spec.get("trainer") or {}
    for i, env in enumerate(trainer.get("env") or []):
        if env["name"].startswith("PET_"):
            raise Invalid(
                f"spec.trainer.env[{i}].name {env['name']!r}: PET_* variables are set by the "
                "runtime and must not be given",
                field=f"spec.trainer.env[{i}].name",
            )
    if not trainer.get("command") and not runtimes.BUILTIN[ref["name"]].get("command"):
        raise Invalid(
            "spec.trainer.command is required: locally the runtime's image entrypoint is not "
            "known (give the command that runs your training script)",
            field="spec.trainer.command",
        )


# ---------------------------------------------------------------------------------------------
# Columns


def state_of(obj: Obj) -> str:
    """The job's state for tables: the last condition that is True (Kubeflow's convention)."""
    status = obj.get("status") or {}
    for cond in reversed(status.get("conditions") or []):
        if cond.get("status") == "True":
            return str(cond.get("type"))
    return "Created" if status else ""


def _active(obj: Obj) -> str:
    rs = (obj.get("status") or {}).get("replicaStatuses") or {}
    return str(sum(int(v.get("active", 0)) for v in rs.values()))


def _metrics(obj: Obj) -> str:
    m = (obj.get("status") or {}).get("metrics") or {}
    return ",".join(f"{k}={v}" for k, v in m.items())


COLUMNS = (
    Column("STATE", state_of),
    Column("ACTIVE", _active),
    Column("RESTARTS", lambda o: (o.get("status") or {}).get("restarts", 0)),
    Column("METRICS", _metrics, wide=True),
)

TRAINJOB = KindInfo(
    group="shipyard.dev",
    version="v1",
    kind="TrainJob",
    plural="trainjobs",
    singular="trainjob",
    short_names=("tj",),
    spec_model=TrainJobSpec,
    validate=validate_trainjob,
    columns=COLUMNS,
    phase=state_of,
)
PYTORCHJOB = KindInfo(
    group="kubeflow.org",
    version="v1",
    kind="PyTorchJob",
    plural="pytorchjobs",
    singular="pytorchjob",
    spec_model=PyTorchJobSpec,
    validate=validate_pytorchjob,
    columns=COLUMNS,
    phase=state_of,
)
TFJOB = KindInfo(
    group="kubeflow.org",
    version="v1",
    kind="TFJob",
    plural="tfjobs",
    singular="tfjob",
    spec_model=TFJobSpec,
    validate=validate_tfjob,
    columns=COLUMNS,
    phase=state_of,
)
XGBOOSTJOB = KindInfo(
    group="kubeflow.org",
    version="v1",
    kind="XGBoostJob",
    plural="xgboostjobs",
    singular="xgboostjob",
    spec_model=XGBoostJobSpec,
    validate=validate_xgboostjob,
    columns=COLUMNS,
    phase=state_of,
)
TRAINJOB_V2 = KindInfo(
    group="trainer.kubeflow.org",
    version="v1alpha1",
    kind="TrainJob",
    plural="trainjobs",
    singular="trainjob",
    spec_model=TrainJobV2Spec,
    validate=validate_trainjob_v2,
    columns=COLUMNS,
    phase=state_of,
)

KINDS = (TRAINJOB, PYTORCHJOB, TFJOB, XGBOOSTJOB, TRAINJOB_V2)
