"""The Pod kind, in Kubernetes' ``v1`` shape so pod templates of Kubeflow manifests fit.

Every PodSpec and Container field of Kubernetes 1.30 is accepted (unknown ones are refused);
fields the local runtime cannot honour are reported in the Pod's status by the controller.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from shipyard.core import quantity
from shipyard.core.resource import DNS1123_LABEL, Column, KindInfo, LooseModel, Model, Obj
from shipyard.errors import Invalid


class EnvVar(Model):
    name: str
    value: str | None = None
    value_from: dict[str, Any] | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _stringify(cls, v: Any) -> Any:
        if isinstance(v, bool | int | float):
            shown = str(v).lower() if isinstance(v, bool) else v
            raise ValueError(f'must be a string; quote the value in YAML ("{shown}")')
        return v


class ContainerPort(Model):
    container_port: int = Field(ge=1, le=65535)
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] | None = None
    host_port: int | None = None
    host_ip: str | None = None


class ResourceRequirements(Model):
    requests: dict[str, str | int | float] | None = None
    limits: dict[str, str | int | float] | None = None
    claims: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _quantities(self) -> ResourceRequirements:
        for part in ("requests", "limits"):
            for key, value in (getattr(self, part) or {}).items():
                try:
                    quantity.parse(value, f"{part}.{key}")
                except ValueError as exc:
                    raise ValueError(str(exc)) from None
        return self


class Container(Model):
    name: str
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    working_dir: str | None = None
    env: list[EnvVar] | None = None
    env_from: list[dict[str, Any]] | None = None
    ports: list[ContainerPort] | None = None
    resources: ResourceRequirements | None = None
    resize_policy: list[dict[str, Any]] | None = None
    restart_policy: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    volume_mounts: list[dict[str, Any]] | None = None
    volume_devices: list[dict[str, Any]] | None = None
    liveness_probe: LooseModel | None = None
    readiness_probe: LooseModel | None = None
    startup_probe: LooseModel | None = None
    lifecycle: LooseModel | None = None
    security_context: LooseModel | None = None
    termination_message_path: str | None = None
    termination_message_policy: str | None = None
    stdin: bool | None = None
    stdin_once: bool | None = None
    tty: bool | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not DNS1123_LABEL.match(v):
            raise ValueError(f"container name {v!r} must be a DNS-1123 label")
        return v

    @field_validator("command", "args", mode="before")
    @classmethod
    def _strings(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [
                str(x) if isinstance(x, int | float) and not isinstance(x, bool) else x for x in v
            ]
        return v


class PodSpec(Model):
    containers: list[Container] = Field(min_length=1)
    init_containers: list[Container] | None = None
    ephemeral_containers: list[dict[str, Any]] | None = None
    restart_policy: Literal["Always", "OnFailure", "Never"] | None = None
    active_deadline_seconds: int | None = Field(default=None, ge=1)
    termination_grace_period_seconds: int | None = Field(default=None, ge=0)
    node_selector: dict[str, str] | None = None
    node_name: str | None = None
    affinity: LooseModel | None = None
    tolerations: list[dict[str, Any]] | None = None
    topology_spread_constraints: list[dict[str, Any]] | None = None
    scheduler_name: str | None = None
    scheduling_gates: list[dict[str, Any]] | None = None
    priority: int | None = None
    priority_class_name: str | None = None
    preemption_policy: str | None = None
    volumes: list[dict[str, Any]] | None = None
    service_account_name: str | None = None
    service_account: str | None = None
    automount_service_account_token: bool | None = None
    image_pull_secrets: list[dict[str, Any]] | None = None
    security_context: LooseModel | None = None
    host_network: bool | None = None
    host_pid: bool | None = Field(default=None, alias="hostPID")
    host_ipc: bool | None = Field(default=None, alias="hostIPC")
    host_users: bool | None = None
    hostname: str | None = None
    subdomain: str | None = None
    host_aliases: list[dict[str, Any]] | None = None
    dns_policy: str | None = None
    dns_config: LooseModel | None = None
    enable_service_links: bool | None = None
    share_process_namespace: bool | None = None
    set_hostname_as_fqdn: bool | None = Field(default=None, alias="setHostnameAsFQDN")
    runtime_class_name: str | None = None
    readiness_gates: list[dict[str, Any]] | None = None
    resource_claims: list[dict[str, Any]] | None = None
    overhead: dict[str, Any] | None = None
    os: dict[str, Any] | None = None


# Fields the local runtime accepts but cannot honour; reported in status, never dropped.
_POD_IGNORED = (
    "nodeSelector",
    "affinity",
    "tolerations",
    "topologySpreadConstraints",
    "volumes",
    "securityContext",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "serviceAccountName",
    "imagePullSecrets",
    "dnsConfig",
    "runtimeClassName",
    "priorityClassName",
    "overhead",
)
_CONTAINER_IGNORED = (
    "envFrom",
    "volumeMounts",
    "volumeDevices",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "securityContext",
)


def not_honoured_locally(pod: Obj) -> list[str]:
    spec = pod.get("spec") or {}
    out = [f"spec.{f}" for f in _POD_IGNORED if spec.get(f)]
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            out += [f"spec.{group}[{i}].{f}" for f in _CONTAINER_IGNORED if c.get(f)]
            if ((c.get("resources") or {}).get("limits") or {}).get("cpu"):
                out.append(f"spec.{group}[{i}].resources.limits.cpu")
    return out


def _validate(pod: Obj) -> None:
    spec = pod["spec"]
    size = (pod["metadata"].get("annotations") or {}).get("shipyard.dev/gang-size")
    if size is not None and not (str(size).isdigit() and int(size) >= 1):
        raise Invalid(
            f"metadata.annotations[shipyard.dev/gang-size]: {size!r} must be a positive "
            "integer (the number of Pods in the gang)",
            field="metadata.annotations[shipyard.dev/gang-size]",
        )
    names: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            if c["name"] in names:
                raise Invalid(
                    f"spec.{group}[{i}].name: duplicate container name {c['name']!r}",
                    field=f"spec.{group}[{i}].name",
                )
            names.add(c["name"])
            res = c.get("resources") or {}
            for key, limit in (res.get("limits") or {}).items():
                req = (res.get("requests") or {}).get(key)
                if req is not None and quantity.parse(req) > quantity.parse(limit):
                    raise Invalid(
                        f"spec.{group}[{i}].resources.requests.{key}: {req} must be less than "
                        f"or equal to the limit {limit}",
                        field=f"spec.{group}[{i}].resources.requests.{key}",
                    )


def _ready(pod: Obj) -> str:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for c in statuses if c.get('ready'))}/{total}"


def _restarts(pod: Obj) -> int:
    return sum(
        int(c.get("restartCount", 0))
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    )


def pod_display_status(pod: Obj) -> str:
    """What ``kubectl get pods`` shows in STATUS: a container's reason where telling."""
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    if status.get("reason") and status.get("phase") in ("Failed", "Pending"):
        return str(status["reason"])
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason") not in (None, "ContainerCreating"):
            return str(state["waiting"]["reason"])
        term = state.get("terminated")
        if (
            term
            and status.get("phase") == "Failed"
            and term.get("reason") not in ("Completed", None)
        ):
            return str(term["reason"])
    return str(status.get("phase") or "Pending")


POD = KindInfo(
    group="",
    version="v1",
    kind="Pod",
    plural="pods",
    singular="pod",
    short_names=("po",),
    spec_model=PodSpec,
    validate=_validate,
    columns=(
        Column("READY", _ready),
        Column("STATUS", pod_display_status),
        Column("RESTARTS", _restarts),
        Column(
            "EXIT",
            lambda p: ",".join(
                str(cs["state"]["terminated"].get("exitCode"))
                for cs in (p.get("status") or {}).get("containerStatuses") or []
                if "terminated" in (cs.get("state") or {})
            ),
            wide=True,
        ),
        Column(
            "IMAGE",
            lambda p: ",".join(c.get("image") or "-" for c in p["spec"]["containers"]),
            wide=True,
        ),
    ),
)


def register(platform: Any) -> None:
    from shipyard.pods.controller import PodController

    platform.registry.add(POD)
    platform.service.mutators.append(_add_finalizer)
    platform.manager.add(PodController(platform))


FINALIZER = "shipyard.dev/runtime"


def _add_finalizer(req: Any) -> None:
    if req.operation == "CREATE" and req.info.key == POD.key:
        fins = req.obj["metadata"].setdefault("finalizers", [])
        if FINALIZER not in fins:
            fins.append(FINALIZER)
