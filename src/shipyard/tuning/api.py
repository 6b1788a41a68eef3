"""Experiment and Trial: Katib's ``kubeflow.org/v1beta1`` shape, also as ``shipyard.dev/v1``.

The spec models follow Katib's CRDs field for field (camelCase on the wire, unknown fields
refused). ``validate_experiment`` applies the rules of Katib's validating webhook and names
the offending field; defaults (parallelTrialCount, metric strategies, collector) are written
into the stored object so every reader sees the same values.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import Field, field_validator

from shipyard.core.resource import Column, KindInfo, Model, Obj, is_true
from shipyard.errors import Invalid

KATIB = (("kubeflow.org", "v1beta1"),)
EXPERIMENT_LABEL = "experiment"
TRIAL_LABEL = "trial"
WARM_ANNOTATION = "shipyard.dev/warm"

ALGORITHMS = (
    "random",
    "grid",
    "tpe",
    "multivariate-tpe",
    "cmaes",
    "sobol",
    "bayesianoptimization",
    "hyperband",
)
UNSUPPORTED_ALGORITHMS = ("pbt", "enas", "darts")
COLLECTORS = ("StdOut", "File", "Push", "None")
DEFAULT_METRICS_FILE = "/var/log/katib/metrics.log"
# Katib's default StdOut/TEXT filter: two groups, the metric's name and its value.
DEFAULT_METRICS_FORMAT = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
TRIAL_FINISHED = ("Succeeded", "Failed", "Killed", "MetricsUnavailable", "EarlyStopped")

Number = int | float | str
_List = list  # FeasibleSpace has a field named ``list``


class MetricStrategy(Model):
    name: str
    value: Literal["min", "max", "latest"]


class Objective(Model):
    type: Literal["minimize", "maximize"]
    goal: float | None = None
    objective_metric_name: str
    additional_metric_names: list[str] | None = None
    metric_strategies: list[MetricStrategy] | None = None


class AlgorithmSetting(Model):
    name: str
    value: str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _str(cls, v: Any) -> Any:
        return str(v).lower() if isinstance(v, bool) else str(v) if v is not None else v


class AlgorithmSpec(Model):
    algorithm_name: str
    algorithm_settings: list[AlgorithmSetting] | None = None


class FeasibleSpace(Model):
    min: Number | None = None
    max: Number | None = None
    step: Number | None = None
    list: _List[Number] | None = None
    distribution: Literal["uniform", "logUniform", "normal", "logNormal"] | None = None

    @field_validator("min", "max", "step", mode="before")
    @classmethod
    def _num(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v

    @field_validator("list", mode="before")
    @classmethod
    def _items(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [str(x).lower() if isinstance(x, bool) else str(x) for x in v]
        return v


class ParameterSpec(Model):
    name: str
    parameter_type: Literal["int", "double", "categorical", "discrete"]
    feasible_space: FeasibleSpace


class TrialParameter(Model):
    name: str
    description: str | None = None
    reference: str | None = None


class TrialTemplate(Model):
    retain: bool | None = None
    trial_spec: dict[str, Any] | None = None
    config_map: dict[str, Any] | None = None
    trial_parameters: list[TrialParameter] | None = None
    primary_pod_labels: dict[str, str] | None = None
    primary_container_name: str | None = None
    success_condition: str | None = None
    failure_condition: str | None = None


class FileSystemPath(Model):
    path: str | None = None
    kind: Literal["File", "Directory"] | None = None
    format: Literal["TEXT", "JSON"] | None = None


class MetricsFilter(Model):
    metrics_format: list[str] | None = None


class MetricsSource(Model):
    file_system_path: FileSystemPath | None = None
    filter: MetricsFilter | None = None
    http_get: dict[str, Any] | None = None


class Collector(Model):
    kind: str = "StdOut"
    custom_collector: dict[str, Any] | None = None


class MetricsCollectorSpec(Model):
    source: MetricsSource | None = None
    collector: Collector | None = None


class EarlyStoppingSpec(Model):
    algorithm_name: str
    algorithm_settings: list[AlgorithmSetting] | None = None


class ExperimentSpec(Model):
    parameters: list[ParameterSpec] = Field(min_length=1)
    objective: Objective
    algorithm: AlgorithmSpec
    early_stopping: EarlyStoppingSpec | None = None
    trial_template: TrialTemplate
    parallel_trial_count: int | None = Field(default=None, ge=1)
    max_trial_count: int | None = Field(default=None, ge=1)
    max_failed_trial_count: int | None = Field(default=None, ge=0)
    metrics_collector_spec: MetricsCollectorSpec | None = None
    nas_config: dict[str, Any] | None = None
    resume_policy: Literal["Never", "LongRunning", "FromVolume"] | None = None


class ParameterAssignment(Model):
    name: str
    value: str


class EarlyStoppingRule(Model):
    name: str
    value: str
    comparison: Literal["equal", "less", "greater"]
    start_step: int | None = None


class TrialSpec(Model):
    objective: Objective
    parameter_assignments: list[ParameterAssignment] = Field(default_factory=list)
    early_stopping_rules: list[EarlyStoppingRule] | None = None
    run_spec: dict[str, Any]
    retain_run: bool | None = None
    metrics_collector: MetricsCollectorSpec | None = None
    primary_pod_labels: dict[str, str] | None = None
    primary_container_name: str | None = None
    success_condition: str | None = None
    failure_condition: str | None = None
    labels: dict[str, str] | None = None


# ---------------------------------------------------------------------------------------------
# Webhook-style validation


def _float(value: Any, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise Invalid(f"{where} must be a number, got {value!r}", field=where) from None


def _check_parameter(i: int, p: Obj, algorithm: str) -> None:
    where = f"spec.parameters[{i}].feasibleSpace"
    space, ptype = p.get("feasibleSpace") or {}, p["parameterType"]
    if ptype in ("int", "double"):
        if space.get("list"):
            raise Invalid(
                f"{where}.list must be empty for parameterType {ptype}: use min/max "
                "(or parameterType categorical/discrete for a list)",
                field=f"{where}.list",
            )
        for key in ("min", "max"):
            if space.get(key) is None:
                raise Invalid(
                    f"{where}.{key} is required for parameterType {ptype}", field=f"{where}.{key}"
                )
        lo, hi = _float(space["min"], f"{where}.min"), _float(space["max"], f"{where}.max")
        if ptype == "int" and not (lo.is_integer() and hi.is_integer()):
            raise Invalid(
                f"{where}: min and max must be integers for parameterType int", field=f"{where}.min"
            )
        if lo > hi:
            raise Invalid(
                f"{where}.min ({lo}) must not be greater than max ({hi})", field=f"{where}.min"
            )
        dist = space.get("distribution") or "uniform"
        if dist in ("logUniform", "logNormal") and lo <= 0:
            raise Invalid(f"{where}.min must be > 0 for distribution {dist}", field=f"{where}.min")
        if space.get("step") is not None:
            step = _float(space["step"], f"{where}.step")
            if step <= 0 or (ptype == "int" and not step.is_integer()):
                raise Invalid(
                    f"{where}.step must be a positive {'integer' if ptype == 'int' else 'number'}",
                    field=f"{where}.step",
                )
            if dist != "uniform":
                raise Invalid(
                    f"{where}.step cannot be combined with distribution {dist}",
                    field=f"{where}.step",
                )
        elif algorithm == "grid" and ptype == "double":
            raise Invalid(
                f"{where}.step is required for a double parameter with the grid algorithm",
                field=f"{where}.step",
            )
    else:
        for key in ("min", "max", "step"):
            if space.get(key) is not None:
                raise Invalid(
                    f"{where}.{key} is not allowed for parameterType {ptype}: "
                    "give the values in list",
                    field=f"{where}.{key}",
                )
        if not space.get("list"):
            raise Invalid(
                f"{where}.list is required for parameterType {ptype}", field=f"{where}.list"
            )
        if space.get("distribution"):
            raise Invalid(
                f"{where}.distribution is only for int and double parameters",
                field=f"{where}.distribution",
            )
        if ptype == "discrete":
            for j, v in enumerate(space["list"]):
                _float(v, f"{where}.list[{j}]")


def _check_objective(spec: Obj) -> None:
    obj = spec["objective"]
    name = obj["objectiveMetricName"]
    if not name:
        raise Invalid(
            "spec.objective.objectiveMetricName is required",
            field="spec.objective.objectiveMetricName",
        )
    extra = obj.get("additionalMetricNames") or []
    if name in extra:
        raise Invalid(
            "spec.objective.additionalMetricNames must not contain the objectiveMetricName "
            f"{name!r}",
            field="spec.objective.additionalMetricNames",
        )
    names = [name, *extra]
    given = {s["name"]: s["value"] for s in obj.get("metricStrategies") or []}
    for s in given:
        if s not in names:
            raise Invalid(
                f"spec.objective.metricStrategies: {s!r} is neither the objective nor an "
                "additional metric",
                field="spec.objective.metricStrategies",
            )
    default = "max" if obj["type"] == "maximize" else "min"
    obj["metricStrategies"] = [{"name": n, "value": given.get(n, default)} for n in names]


def _check_counts(spec: Obj) -> None:
    mx, par, failed = (
        spec.get("maxTrialCount"),
        spec.get("parallelTrialCount"),
        spec.get("maxFailedTrialCount"),
    )
    if par is None:
        spec["parallelTrialCount"] = min(3, mx) if mx else 3
    elif mx is not None and par > mx:
        raise Invalid(
            f"spec.parallelTrialCount ({par}) must not be greater than spec.maxTrialCount ({mx})",
            field="spec.parallelTrialCount",
        )
    if failed is not None and mx is not None and failed > mx:
        raise Invalid(
            f"spec.maxFailedTrialCount ({failed}) must not be greater than "
            f"spec.maxTrialCount ({mx})",
            field="spec.maxFailedTrialCount",
        )
    spec.setdefault("resumePolicy", "Never")


def _check_collector(spec: Obj) -> None:
    mcs = spec.setdefault("metricsCollectorSpec", {})
    kind = mcs.setdefault("collector", {}).setdefault("kind", "StdOut")
    if kind not in COLLECTORS:
        raise Invalid(
            f"spec.metricsCollectorSpec.collector.kind {kind!r} is not supported: use one of "
            + ", ".join(COLLECTORS),
            field="spec.metricsCollectorSpec.collector.kind",
        )
    source = mcs.get("source") or {}
    fmt = (source.get("fileSystemPath") or {}).get("format")
    if kind == "File":
        fsp = mcs.setdefault("source", {}).setdefault("fileSystemPath", {})
        fsp.setdefault("path", DEFAULT_METRICS_FILE)
        fsp.setdefault("kind", "File")
        fsp.setdefault("format", "TEXT")
        fmt = fsp["format"]
    filters = (source.get("filter") or {}).get("metricsFormat") or []
    if filters and (kind not in ("StdOut", "File") or fmt == "JSON"):
        raise Invalid(
            "spec.metricsCollectorSpec.source.filter applies only to StdOut and File (TEXT)",
            field="spec.metricsCollectorSpec.source.filter",
        )
    for j, pattern in enumerate(filters):
        where = f"spec.metricsCollectorSpec.source.filter.metricsFormat[{j}]"
        try:
            groups = re.compile(pattern).groups
        except re.error as exc:
            raise Invalid(
                f"{where} is not a valid regular expression: {exc}", field=where
            ) from None
        if groups < 2:
            raise Invalid(f"{where} needs two groups: the metric's name and its value", field=where)


_REF = re.compile(r"\$\{trialParameters\.([^}]+)\}")
_META_REF = re.compile(
    r"^\$\{trialSpec\.(Name|Namespace|Kind|APIVersion|Labels\[[^\]]+\]|Annotations\[[^\]]+\])\}$"
)
_COND = re.compile(r'^status\.conditions\.#\(type=="(\w+)"\)#\|#\(status=="(\w+)"\)#$')


def _check_template(spec: Obj) -> None:
    tpl = spec["trialTemplate"]
    where = "spec.trialTemplate"
    if tpl.get("configMap"):
        raise Invalid(
            f"{where}.configMap is not supported: inline the template as {where}.trialSpec",
            field=f"{where}.configMap",
        )
    run = tpl.get("trialSpec")
    if not run:
        raise Invalid(f"{where}.trialSpec is required", field=f"{where}.trialSpec")
    if not run.get("apiVersion") or not run.get("kind"):
        raise Invalid(f"{where}.trialSpec needs apiVersion and kind", field=f"{where}.trialSpec")
    if (run.get("metadata") or {}).get("name"):
        raise Invalid(
            f"{where}.trialSpec.metadata.name must not be set: each trial names its own",
            field=f"{where}.trialSpec.metadata.name",
        )
    names = {p["name"] for p in spec["parameters"]}
    defined: set[str] = set()
    for j, tp in enumerate(tpl.get("trialParameters") or []):
        if tp["name"] in defined:
            raise Invalid(
                f"{where}.trialParameters[{j}].name {tp['name']!r} is duplicated",
                field=f"{where}.trialParameters[{j}].name",
            )
        defined.add(tp["name"])
        ref = tp.get("reference") or tp["name"]
        if ref not in names and not _META_REF.match(ref):
            raise Invalid(
                f"{where}.trialParameters[{j}].reference {ref!r} is not a parameter name "
                "(or ${trialSpec.Name}, ${trialSpec.Namespace}, ...)",
                field=f"{where}.trialParameters[{j}].reference",
            )
    import json

    used = set(_REF.findall(json.dumps(run)))
    if used - defined:
        missing = sorted(used - defined)[0]
        raise Invalid(
            f"{where}.trialSpec uses ${{trialParameters.{missing}}} but "
            f"{where}.trialParameters does not define {missing!r}",
            field=f"{where}.trialParameters",
        )
    if defined - used:
        unused = sorted(defined - used)[0]
        raise Invalid(
            f"{where}.trialParameters[{unused!r}] is never used in {where}.trialSpec",
            field=f"{where}.trialParameters",
        )
    for key in ("successCondition", "failureCondition"):
        if tpl.get(key) and not _COND.match(tpl[key]):
            raise Invalid(
                f'{where}.{key}: only status.conditions.#(type=="T")#|#(status=="S")# '
                "expressions are supported",
                field=f"{where}.{key}",
            )
    if run["kind"] in ("Job", "Pod") and not tpl.get("primaryContainerName"):
        raise Invalid(
            f"{where}.primaryContainerName is required", field=f"{where}.primaryContainerName"
        )
    if run["kind"] in ("Job", "Pod"):
        pod_spec = (
            (run.get("spec") or {})
            if run["kind"] == "Pod"
            else ((run.get("spec") or {}).get("template") or {}).get("spec") or {}
        )
        containers = [c.get("name") for c in pod_spec.get("containers") or []]
        if tpl["primaryContainerName"] not in containers:
            raise Invalid(
                f"{where}.primaryContainerName {tpl['primaryContainerName']!r} is not a container "
                f"of the trialSpec (containers: {', '.join(map(str, containers)) or 'none'})",
                field=f"{where}.primaryContainerName",
            )


def validate_experiment(obj: Obj) -> None:
    from shipyard.tuning import algorithms, early_stopping

    spec = obj["spec"]
    _check_objective(spec)
    name = spec["algorithm"]["algorithmName"]
    if name in UNSUPPORTED_ALGORITHMS:
        raise Invalid(
            f"spec.algorithm.algorithmName {name!r} (neural architecture search / PBT) "
            "is not supported",
            field="spec.algorithm.algorithmName",
        )
    if name not in ALGORITHMS:
        raise Invalid(
            f"spec.algorithm.algorithmName {name!r} is unknown: use one of "
            + ", ".join(ALGORITHMS),
            field="spec.algorithm.algorithmName",
        )
    seen: set[str] = set()
    for i, p in enumerate(spec["parameters"]):
        if p["name"] in seen:
            raise Invalid(
                f"spec.parameters[{i}].name {p['name']!r} is duplicated",
                field=f"spec.parameters[{i}].name",
            )
        seen.add(p["name"])
        _check_parameter(i, p, name)
    algorithms.check_settings(spec)
    if spec.get("earlyStopping"):
        early_stopping.check_settings(spec["earlyStopping"])
    _check_counts(spec)
    _check_collector(spec)
    _check_template(spec)
    if name == "grid":
        size = algorithms.grid_size(spec["parameters"])
        if size > 1_000_000:
            raise Invalid(
                f"spec.parameters: the grid has {size} points; narrow it or raise step",
                field="spec.parameters",
            )


def validate_trial(obj: Obj) -> None:
    if not obj["spec"].get("runSpec"):
        raise Invalid("spec.runSpec is required", field="spec.runSpec")


# ---------------------------------------------------------------------------------------------
# Columns and status helpers


def experiment_phase(obj: Obj) -> str:
    status = obj.get("status") or {}
    for ctype in ("Succeeded", "Failed", "Restarting", "Running", "Created"):
        if is_true(status, ctype):
            return ctype
    return "Pending"


def trial_phase(obj: Obj) -> str:
    status = obj.get("status") or {}
    for ctype in (*TRIAL_FINISHED, "Running", "Created"):
        if is_true(status, ctype):
            return ctype
    return "Pending"


def _best(obj: Obj) -> str:
    opt = (obj.get("status") or {}).get("currentOptimalTrial") or {}
    name = (obj.get("spec") or {}).get("objective", {}).get("objectiveMetricName")
    for m in (opt.get("observation") or {}).get("metrics") or []:
        if m.get("name") == name:
            return f"{m.get('latest')}"
    return ""


def _objective_value(obj: Obj) -> str:
    name = obj["spec"]["objective"]["objectiveMetricName"]
    for m in ((obj.get("status") or {}).get("observation") or {}).get("metrics") or []:
        if m.get("name") == name:
            return str(m.get("latest"))
    return ""


def _assignments(obj: Obj) -> str:
    return ", ".join(
        f"{a['name']}={a['value']}" for a in obj["spec"].get("parameterAssignments") or []
    )


def _trial_counts(obj: Obj) -> str:
    s = obj.get("status") or {}
    done = sum(
        int(s.get(k) or 0)
        for k in (
            "trialsSucceeded",
            "trialsFailed",
            "trialsKilled",
            "trialsEarlyStopped",
            "trialMetricsUnavailable",
        )
    )
    mx = (obj.get("spec") or {}).get("maxTrialCount")
    return f"{done}/{mx}" if mx else str(done)


EXPERIMENT = KindInfo(
    group="shipyard.dev",
    version="v1",
    kind="Experiment",
    plural="experiments",
    short_names=("exp",),
    spec_model=ExperimentSpec,
    aliases=KATIB,
    validate=validate_experiment,
    phase=experiment_phase,
    columns=(
        Column("STATUS", experiment_phase),
        Column("ALGORITHM", lambda o: o["spec"]["algorithm"]["algorithmName"]),
        Column("TRIALS", _trial_counts),
        Column("RUNNING", lambda o: (o.get("status") or {}).get("trialsRunning", 0)),
        Column("BEST", _best),
        Column(
            "BEST-TRIAL",
            lambda o: ((o.get("status") or {}).get("currentOptimalTrial") or {}).get(
                "bestTrialName", ""
            ),
            wide=True,
        ),
    ),
)

TRIAL = KindInfo(
    group="shipyard.dev",
    version="v1",
    kind="Trial",
    plural="trials",
    spec_model=TrialSpec,
    aliases=KATIB,
    validate=validate_trial,
    phase=trial_phase,
    columns=(
        Column("STATUS", trial_phase),
        Column("OBJECTIVE", _objective_value),
        Column("PARAMETERS", _assignments),
    ),
)


def objective_value(trial: Obj, exp_spec: Obj) -> float | None:
    """The trial's objective under the experiment's metric strategy (None if unobserved)."""
    name = exp_spec["objective"]["objectiveMetricName"]
    strategy = next(
        (
            s["value"]
            for s in exp_spec["objective"].get("metricStrategies") or []
            if s["name"] == name
        ),
        "max" if exp_spec["objective"]["type"] == "maximize" else "min",
    )
    for m in ((trial.get("status") or {}).get("observation") or {}).get("metrics") or []:
        if m.get("name") == name:
            try:
                value = float(m[strategy])
            except (KeyError, TypeError, ValueError):
                return None
            return value if math.isfinite(value) else None
    return None
