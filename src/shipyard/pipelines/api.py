"""Pipeline kinds: ``Pipeline`` (compiled DAG, component sources embedded and digested),
``PipelineRun`` (one execution) and ``RecurringRun`` (runs on a cron schedule)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shipyard.core.resource import Column, KindInfo, Model, Obj
from shipyard.errors import Invalid
from shipyard.pipelines.types import check_value

TASK_STATES = ("Pending", "Running", "Succeeded", "Failed", "Cached", "Skipped", "Cancelled")
DONE = ("Succeeded", "Cached", "Skipped")
FINAL = ("Succeeded", "Cached", "Skipped", "Failed", "Cancelled")
RUN_TERMINAL = ("Succeeded", "Failed", "Cancelled")


class PipelineSpecModel(Model):
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    components: dict[str, Any]
    loops: dict[str, Any] | None = None
    tasks: list[dict[str, Any]]
    outputs: dict[str, Any] | None = None
    digest: str | None = None


class PipelineRef(Model):
    name: str


class PipelineRunSpec(Model):
    pipeline_ref: PipelineRef | None = None
    pipeline_spec: dict[str, Any] | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    cancelled: bool = False
    parallelism: int | None = Field(default=None, ge=1)
    cache: bool = True


class RecurringRunSpec(Model):
    schedule: str
    pipeline_ref: PipelineRef | None = None
    pipeline_spec: dict[str, Any] | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    max_concurrency: int = Field(default=1, ge=1)
    enabled: bool = True
    cache: bool | None = None  # as a PipelineRun's: False runs every task of every run


def validate_pipeline_spec(spec: Obj, prefix: str = "spec") -> None:
    """Structural checks the compiler guarantees, for hand-written or converted YAML."""
    try:
        PipelineSpecModel.model_validate(spec)
    except Exception as exc:
        raise Invalid(f"{prefix}: not a compiled pipeline: {exc}", field=prefix) from None
    comps = spec["components"]
    names = set()
    for i, t in enumerate(spec["tasks"]):
        where = f"{prefix}.tasks[{i}]"
        if not isinstance(t, dict) or "name" not in t or "component" not in t:
            raise Invalid(f"{where}: a task needs a name and a component", field=where)
        if t["component"] not in comps:
            raise Invalid(
                f"{where}: task {t['name']!r} uses unknown component {t['component']!r}",
                field=f"{where}.component",
            )
        names.add(t["name"])
    for i, t in enumerate(spec["tasks"]):
        for dep in t.get("dependsOn") or []:
            if dep not in names:
                raise Invalid(
                    f"{prefix}.tasks[{i}]: task {t['name']!r} depends on unknown task {dep!r}",
                    field=f"{prefix}.tasks[{i}].dependsOn",
                )


def resolve_parameters(pipeline_spec: Obj, given: Obj, field: str = "spec.parameters") -> Obj:
    """Pipeline parameters with defaults applied; refuses missing, unknown or mistyped ones."""
    declared: Obj = pipeline_spec.get("parameters") or {}
    for key in given:
        if key not in declared:
            known = ", ".join(declared) or "none"
            raise Invalid(
                f"unknown pipeline parameter {key!r} (parameters: {known})", field=f"{field}.{key}"
            )
    out: Obj = {}
    for key, port in declared.items():
        if key in given:
            try:
                out[key] = check_value(given[key], port.get("type", "any"))
            except TypeError as exc:
                raise Invalid(
                    f"pipeline parameter {key!r}: {exc}", field=f"{field}.{key}"
                ) from None
        elif "default" in port:
            out[key] = port["default"]
        else:
            raise Invalid(
                f"missing pipeline parameter {key!r} ({port.get('type', 'any')}): "
                f"pass it with -p {key}=VALUE",
                field=f"{field}.{key}",
            )
    return out


def _validate_pipeline(obj: Obj) -> None:
    validate_pipeline_spec(obj.get("spec") or {})


def _validate_run(obj: Obj) -> None:
    spec = obj.get("spec") or {}
    if not spec.get("pipelineRef") and not spec.get("pipelineSpec"):
        raise Invalid("set spec.pipelineRef (a Pipeline's name) or spec.pipelineSpec", field="spec")
    if spec.get("pipelineSpec"):
        validate_pipeline_spec(spec["pipelineSpec"], "spec.pipelineSpec")
        resolve_parameters(spec["pipelineSpec"], spec.get("parameters") or {})


def _validate_recurring(obj: Obj) -> None:
    _validate_run(obj)
    from shipyard.pipelines.schedule import parse_schedule

    try:
        parse_schedule(obj["spec"]["schedule"])
    except ValueError as exc:
        raise Invalid(f"spec.schedule: {exc}", field="spec.schedule") from None


def _tasks_summary(o: Obj) -> str:
    tasks = (o.get("status") or {}).get("tasks") or {}
    done = sum(1 for t in tasks.values() if t.get("state") in DONE)
    return f"{done}/{len(tasks)}" if tasks else ""


def _duration(o: Obj) -> str:
    d = (o.get("status") or {}).get("durationSeconds")
    return f"{d:.2f}s" if isinstance(d, int | float) else ""


PIPELINE = KindInfo(
    group="shipyard.dev",
    version="v1",
    kind="Pipeline",
    plural="pipelines",
    short_names=("pl",),
    spec_model=None,
    columns=(
        Column("TASKS", lambda o: len((o.get("spec") or {}).get("tasks") or [])),
        Column("DIGEST", lambda o: str((o.get("spec") or {}).get("digest", ""))[7:19]),
    ),
    validate=_validate_pipeline,
)

PIPELINE_RUN = KindInfo(
    group="shipyard.dev",
    version="v1",
    kind="PipelineRun",
    plural="pipelineruns",
    singular="pipelinerun",
    short_names=("run", "runs", "pr"),
    spec_model=PipelineRunSpec,
    columns=(
        Column("STATUS", lambda o: (o.get("status") or {}).get("phase", "Pending")),
        Column("TASKS", _tasks_summary),
        Column("DURATION", _duration),
        Column(
            "PIPELINE",
            lambda o: ((o.get("spec") or {}).get("pipelineRef") or {}).get("name", "(inline)"),
            wide=True,
        ),
    ),
    validate=_validate_run,
)

RECURRING_RUN = KindInfo(
    group="shipyard.dev",
    version="v1",
    kind="RecurringRun",
    plural="recurringruns",
    short_names=("rr",),
    spec_model=RecurringRunSpec,
    columns=(
        Column("SCHEDULE", lambda o: (o.get("spec") or {}).get("schedule", "")),
        Column("ENABLED", lambda o: (o.get("spec") or {}).get("enabled", True)),
        Column("LAST", lambda o: (o.get("status") or {}).get("lastScheduleTime", "")),
        Column("ACTIVE", lambda o: len((o.get("status") or {}).get("active") or [])),
    ),
    validate=_validate_recurring,
)
