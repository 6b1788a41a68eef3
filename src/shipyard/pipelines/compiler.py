"""Compile a ``@dsl.pipeline`` into a ``Pipeline`` resource (YAML, byte-identical for the
same source), and load pipelines from Python or YAML files."""

from __future__ import annotations

import hashlib
import json
import runpy
from pathlib import Path
from typing import Any

import yaml

from shipyard.errors import BadRequest, ShipyardError
from shipyard.pipelines.dsl import (
    CompileError,
    Component,
    OneOf,
    Pipeline,
    PipelineTask,
    SubPipelineTask,
    TaskOutput,
    _Builder,
)

Obj = dict[str, Any]
API_VERSION = "shipyard.dev/v1"
KFP_UNSUPPORTED = (
    "not KFP v2 IR YAML as the kfp compiler writes it (top-level pipelineInfo, "
    "deploymentSpec and root); compile the pipeline with kfp 2.x"
)


def _task_spec(t: Any) -> Obj:
    out: Obj = {"name": t.name, "component": t.component.name}
    if t.display_name:
        out["displayName"] = t.display_name
    if t.inputs:
        out["inputs"] = t.inputs
    deps = sorted(set(t.deps) | set(t.after_))
    if deps and t.ignore_upstream:
        out["exitFor"] = deps  # runs once they end, failed or not (as kfp's IR has it)
    elif deps:
        out["dependsOn"] = deps
    if t.when:
        out["when"] = t.when
    if t.loop:
        out["loop"] = t.loop
    if t.exit_for is not None:
        out["exitFor"] = t.exit_for
    if t.retry:
        out["retry"] = t.retry
    if not t.cache:
        out["cache"] = False
    if t.resources:
        out["resources"] = t.resources
    if t.env:
        out["env"] = dict(sorted(t.env.items()))
    if t.node_selector:
        out["nodeSelector"] = dict(sorted(t.node_selector.items()))
    if t.image:
        out["image"] = t.image
    if t.env_refs:
        out["envFrom"] = list(t.env_refs)
    if t.tolerations:
        out["tolerations"] = list(t.tolerations)
    return out


def _outputs(result: Any) -> Obj:
    if result is None:
        return {}
    if isinstance(result, PipelineTask | SubPipelineTask):
        result = result.output
    if isinstance(result, TaskOutput):
        # As kfp: a task inside a condition, loop or exit handler may not run, or run many
        # times; its output is not the pipeline's (a dsl.OneOf of branches' outputs is).
        task = result.task
        group = (
            "dsl.ParallelFor" if task.loop else "dsl.If" if task.when
            else "dsl.ExitHandler" if task.group else None
        )  # fmt: skip
        if group:
            raise CompileError(
                "pipeline outputs may only be returned from the top level of the pipeline "
                f"function; task {task.name!r} is inside a {group}"
            )
    if isinstance(result, TaskOutput | OneOf):
        return {"Output": result.ref()}
    if isinstance(result, tuple) and hasattr(result, "_asdict"):  # kfp: a NamedTuple
        result = result._asdict()
    if isinstance(result, dict):
        out: Obj = {}
        for key, value in result.items():
            if not isinstance(value, TaskOutput | OneOf | PipelineTask | SubPipelineTask):
                raise CompileError(
                    f"pipeline output {key!r} must be a task output, not {type(value).__name__}"
                )
            out[str(key)] = _outputs(value)["Output"]
        return out
    raise CompileError(
        "a pipeline may return a task output (or a NamedTuple or dict of them), not "
        f"{type(result).__name__}"
    )


def compile_spec(p: Pipeline, defaults: Obj | None = None) -> Obj:
    """The ``spec`` of the Pipeline resource for ``p``; ``defaults`` replace parameters'
    default values (kfp's ``pipeline_parameters``)."""
    unknown = sorted(set(defaults or {}) - {port.name for port in p.params})
    if unknown:
        known = ", ".join(port.name for port in p.params) or "none"
        raise CompileError(
            f"pipeline {p.name!r} has no parameter {unknown[0]!r} (parameters: {known})"
        )
    builder, result = p.trace()
    components: Obj = {}
    for t in builder.tasks.values():
        cspec = t.component.spec()
        prev = components.get(t.component.name)
        if prev is not None and prev["digest"] != cspec["digest"]:
            raise CompileError(
                f"two different components are named {t.component.name!r}; rename one"
            )
        components[t.component.name] = cspec
    _check_exit_handlers(builder)
    params: Obj = {}
    for port in p.params:
        params[port.name] = port.spec()
        if port.name in (defaults or {}):
            value = (defaults or {})[port.name]
            _check_default(p.name, port.name, port.type, value)
            params[port.name]["default"] = value
    spec: Obj = {"parameters": params, "components": dict(sorted(components.items()))}
    if builder.loops:
        spec["loops"] = builder.loops
    spec["tasks"] = [_task_spec(t) for t in builder.tasks.values()]
    outputs = _outputs(result)
    if outputs:
        spec["outputs"] = outputs
    if p.description:
        spec = {"description": p.description, **spec}
    spec["digest"] = "sha256:" + hashlib.sha256(canon(spec)).hexdigest()
    return spec


def _check_default(pipeline: str, name: str, kind: str, value: Any) -> None:
    from shipyard.pipelines.types import check_value

    try:
        json.dumps(value, allow_nan=False)
        check_value(value, kind)
    except (TypeError, ValueError) as exc:
        raise CompileError(f"pipeline {pipeline!r} parameter {name!r}: {exc}") from None


def _check_exit_handlers(builder: _Builder) -> None:
    for t in builder.tasks.values():
        if t.exit_for is not None and t.group is not None:
            raise CompileError(f"exit task {t.name!r} may not be inside its own ExitHandler")


def compile_pipeline(p: Pipeline, name: str | None = None, defaults: Obj | None = None) -> Obj:
    """The ``Pipeline`` resource (a dict) for ``p``."""
    if not isinstance(p, Pipeline):
        raise CompileError(f"expected a @dsl.pipeline function, got {p!r}")
    return {
        "apiVersion": API_VERSION,
        "kind": "Pipeline",
        "metadata": {"name": name or p.name},
        "spec": compile_spec(p, defaults),
    }


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, data: str) -> Any:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(obj: Obj) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def canon(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def pipelines_in(path: str | Path) -> dict[str, Pipeline]:
    """The ``@dsl.pipeline`` objects defined in a Python file, by function name."""
    p = Path(path)
    if not p.is_file():
        raise BadRequest(f"{p}: no such file")
    try:
        namespace = runpy.run_path(str(p), run_name="__shipyard_pipeline__")
    except ShipyardError:
        raise  # a compile error already says what is wrong
    except Exception as exc:
        raise _user_error(p, exc) from None
    found = {k: v for k, v in namespace.items() if isinstance(v, Pipeline)}
    if not found:
        raise BadRequest(f"{p} defines no @dsl.pipeline function")
    return found


def _user_error(p: Path, exc: Exception) -> BadRequest:
    """The error of a pipeline file that fails as it is run or its pipeline as it is built:
    the file, the line in it, and the exception (no traceback through Shipyard)."""
    line = exc.lineno if isinstance(exc, SyntaxError) else None
    tb = exc.__traceback__
    while tb is not None:  # the innermost frame in the user's file
        if Path(tb.tb_frame.f_code.co_filename).resolve() == p.resolve():
            line = tb.tb_lineno
        tb = tb.tb_next
    where = f"{p}, line {line}" if line else str(p)
    text = " ".join(str(exc).split())
    message = f"{where}: {type(exc).__name__}: {text}"
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == "kfp":
        message += (
            " (a kfp SDK pipeline: change `from kfp import dsl` to `from shipyard import dsl`,"
            " or compile it with kfp and run the YAML)"
        )
    return BadRequest(message)


def load(path: str | Path, pipeline: str | None = None) -> Obj:
    """A Pipeline resource from a ``.py`` file (compiled) or a ``.yaml`` file (as written)."""
    p = Path(path)
    if p.suffix in (".yaml", ".yml", ".json"):
        if not p.is_file():
            raise BadRequest(f"{p}: no such file")
        text = p.read_text()
        from shipyard.pipelines.kfp import translate_if_kfp

        kfp_pipeline = translate_if_kfp(text, str(p))
        if kfp_pipeline is not None:
            return kfp_pipeline
        doc = yaml.safe_load(text)
        if not isinstance(doc, dict):
            raise BadRequest(f"{p}: not a pipeline (expected a mapping)")
        if doc.get("kind") == "Pipeline":
            return doc
        if "pipelineInfo" in doc:
            raise BadRequest(f"{p}: {KFP_UNSUPPORTED}")
        raise BadRequest(f"{p}: neither a Shipyard Pipeline nor KFP v2 pipeline YAML")
    found = pipelines_in(p)
    if pipeline is None:
        if len(found) > 1:
            raise BadRequest(
                f"{p} defines several pipelines ({', '.join(sorted(found))}); "
                "choose one with --pipeline NAME"
            )
        (chosen,) = found.values()
    else:
        match = found.get(pipeline) or next((v for v in found.values() if v.name == pipeline), None)
        if match is None:
            raise BadRequest(f"{p} has no pipeline {pipeline!r}; it has: {', '.join(found)}")
        chosen = match
    try:
        return compile_pipeline(chosen)
    except ShipyardError:
        raise
    except Exception as exc:  # the pipeline function's own code failed
        raise _user_error(p, exc) from None


class Compiler:
    """kfp.compiler's ``Compiler``: ``Compiler().compile(pipeline_func, package_path)`` writes
    the Pipeline YAML ``shipyard compile`` writes (``from shipyard import compiler``)."""

    def compile(
        self,
        pipeline_func: Any,
        package_path: str | Path,
        pipeline_name: str | None = None,
        pipeline_parameters: dict[str, Any] | None = None,
        type_check: bool = True,
    ) -> None:
        """Write ``pipeline_func`` (a ``@dsl.pipeline`` function) as YAML to
        ``package_path``; ``pipeline_parameters`` replace parameters' defaults. Types are
        always checked (``type_check`` is kfp's switch, and has no effect here)."""
        if isinstance(pipeline_func, Component):
            raise CompileError(
                f"{pipeline_func.name!r} is a component: compile a @dsl.pipeline that uses it "
                "(Shipyard has no component files of their own)"
            )
        if not isinstance(pipeline_func, Pipeline):
            raise CompileError(f"expected a @dsl.pipeline function, got {pipeline_func!r}")
        obj = compile_pipeline(pipeline_func, pipeline_name, pipeline_parameters)
        Path(package_path).write_text(to_yaml(obj))
