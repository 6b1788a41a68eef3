"""The pipeline DSL, in kfp.dsl v2's names and shapes: ``from shipyard import dsl``.

    @dsl.component
    def add(a: int, b: int) -> int:
        return a + b

    @dsl.pipeline
    def chain(n: int = 1) -> int:
        first = add(a=n, b=1)
        return add(a=first.output, b=2).output

Calling components inside a ``@dsl.pipeline`` function records tasks (it runs nothing);
``shipyard.pipelines.compiler.compile_pipeline`` turns the record into a ``Pipeline``.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import re
import textwrap
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from shipyard.errors import Invalid
from shipyard.pipelines.placeholders import (
    PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER,
    PIPELINE_JOB_ID_PLACEHOLDER,
    PIPELINE_JOB_NAME_PLACEHOLDER,
    PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER,
    PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER,
    PIPELINE_ROOT_PLACEHOLDER,
    PIPELINE_TASK_ID_PLACEHOLDER,
    PIPELINE_TASK_NAME_PLACEHOLDER,
)
from shipyard.pipelines.types import (
    ARTIFACT_TYPES,
    HTML,
    PARAMETER_TYPES,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    InputPath,
    Markdown,
    Metrics,
    Model,
    Output,
    OutputPath,
    PipelineTaskFinalStatus,
    SlicedClassificationMetrics,
    _OutputMarker,
)

__all__ = [
    "HTML",
    "PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER",
    "PIPELINE_JOB_ID_PLACEHOLDER",
    "PIPELINE_JOB_NAME_PLACEHOLDER",
    "PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER",
    "PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER",
    "PIPELINE_ROOT_PLACEHOLDER",
    "PIPELINE_TASK_ID_PLACEHOLDER",
    "PIPELINE_TASK_NAME_PLACEHOLDER",
    "Artifact",
    "ClassificationMetrics",
    "Collected",
    "ConcatPlaceholder",
    "Condition",
    "ContainerSpec",
    "Dataset",
    "Elif",
    "Else",
    "ExitHandler",
    "If",
    "IfPresentPlaceholder",
    "Input",
    "InputPath",
    "Markdown",
    "Metrics",
    "Model",
    "OneOf",
    "Output",
    "OutputPath",
    "ParallelFor",
    "PipelineTask",
    "PipelineTaskFinalStatus",
    "SlicedClassificationMetrics",
    "component",
    "container_component",
    "importer",
    "pipeline",
]

Obj = dict[str, Any]


class CompileError(Invalid):
    """A pipeline that cannot be compiled; the message names the tasks and ports."""


# ---------------------------------------------------------------------------------------------
# Ports


@dataclass(frozen=True)
class Port:
    name: str
    type: str  # int float str bool list dict any | artifact class name | finalStatus
    artifact: bool = False
    default: Any = inspect.Parameter.empty
    output: bool = False
    many: bool = False  # Input[List[Dataset]]: the artifacts of a dsl.Collected
    path: bool = False  # InputPath/OutputPath: the function gets a local path (a str)
    optional: bool = False  # Optional[int]: None leaves it out (compile time only)

    def spec(self) -> Obj:
        out: Obj = {"type": self.type}
        if self.artifact:
            out["artifact"] = True
        if self.many:
            out["list"] = True
        if self.path:
            out["path"] = True
        if self.default is not inspect.Parameter.empty:
            out["default"] = self.default
        return out


def _optional(hint: Any) -> bool:
    """Optional[int] (int | None): kfp takes it as an int that may be left out."""
    args = typing.get_args(hint)
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args


def _param_type(hint: Any, where: str) -> str:
    if _optional(hint):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) == 1:
            hint = rest[0]
    origin = typing.get_origin(hint) or hint
    if hint is Any or hint is inspect.Parameter.empty:
        return "any"
    if origin in PARAMETER_TYPES:
        return PARAMETER_TYPES[origin]
    raise CompileError(
        f"{where}: type {hint!r} is not supported; use int, float, str, bool, list, dict, "
        "Input[Artifact type] or Output[Artifact type]"
    )


def _ports(fn: Callable[..., Any], where: str = "") -> tuple[list[Port], list[Port]]:
    where = where or f"component {fn.__name__!r}"
    hints = typing.get_type_hints(fn, include_extras=True)
    inputs: list[Port] = []
    outputs: list[Port] = []
    for p in inspect.signature(fn).parameters.values():
        hint = hints.get(p.name, inspect.Parameter.empty)
        pwhere = f"{where}, parameter {p.name!r}"
        if typing.get_origin(hint) is typing.Annotated:
            base, *marks = typing.get_args(hint)
            many = typing.get_origin(base) is list and len(typing.get_args(base)) == 1
            if many:  # Input[List[Dataset]], as kfp: what dsl.Collected gathers
                (base,) = typing.get_args(base)
            if not (isinstance(base, type) and issubclass(base, Artifact)):
                raise CompileError(
                    f"{pwhere}: Input[...]/Output[...] take an artifact class "
                    "(or, for an input, List[artifact class])"
                )
            if _OutputMarker in marks:
                if many:
                    raise CompileError(
                        f"{pwhere}: a component cannot output a list of artifacts; "
                        "output one and gather them with dsl.Collected(...)"
                    )
                outputs.append(Port(p.name, base.__name__, artifact=True, output=True))
            else:
                inputs.append(Port(p.name, base.__name__, artifact=True, many=many))
        elif isinstance(hint, InputPath | OutputPath):
            output = isinstance(hint, OutputPath)
            art = _path_artifact(hint.type)
            if art is not None:
                port = Port(p.name, art, artifact=True, output=output, path=True)
            else:
                # A parameter passed as a file: the function gets the file's path.
                ptype = _param_type(hint.type, pwhere)
                port = Port(p.name, ptype, default=p.default, output=output, path=True)
            (outputs if output else inputs).append(port)
        elif hint is PipelineTaskFinalStatus:
            inputs.append(Port(p.name, "finalStatus"))
        elif isinstance(hint, type) and issubclass(hint, Artifact):
            inputs.append(Port(p.name, hint.__name__, artifact=True))
        else:
            ptype = _param_type(hint, pwhere)
            inputs.append(Port(p.name, ptype, default=p.default, optional=_optional(hint)))
    ret = hints.get("return", None)
    if ret is ContainerSpec:
        ret = None  # a container component's function returns its command
    if ret is not None and ret is not type(None):
        fields = getattr(ret, "__annotations__", None) if hasattr(ret, "_fields") else None
        if fields:
            for fname, fhint in fields.items():
                outputs.append(
                    Port(fname, _param_type(fhint, f"{where}, output {fname!r}"), output=True)
                )
        else:
            outputs.append(Port("Output", _param_type(ret, f"{where}, return"), output=True))
    names = [port.name for port in outputs]
    for name in names:
        if names.count(name) > 1:
            raise CompileError(f"{where}: two outputs are named {name!r}; rename the parameter")
    return inputs, outputs


def _path_artifact(kind: Any) -> str | None:
    """The artifact class an InputPath/OutputPath names (None for a parameter type): a class,
    its name or kfp's schema title ('system.Dataset@0.0.1'); a name kfp would not know, or
    no type, is a plain Artifact."""
    if kind is None:
        return "Artifact"
    if isinstance(kind, type) and issubclass(kind, Artifact):
        return kind.__name__
    if isinstance(kind, str):
        title = kind.split("@")[0].removeprefix("system.")
        return title if title in ARTIFACT_TYPES else "Artifact"
    return None


def _source(fn: Callable[..., Any]) -> str:
    src = textwrap.dedent(inspect.getsource(fn))
    tree = ast.parse(src)
    node = tree.body[0]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        node.decorator_list = []
    return ast.unparse(tree) + "\n"


def _imports(source: str) -> list[str]:
    mods: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            mods.add(node.module)
    return sorted(mods)


# ---------------------------------------------------------------------------------------------
# Components


class Component:
    """A Python function made into a pipeline step by ``@dsl.component``."""

    def __init__(self, fn: Callable[..., Any], options: Obj) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.function = fn.__name__  # what the executor calls in the source
        self.inputs, self.outputs = _ports(fn)
        helpers = [_source(f) for f in options.get("additional_funcs") or []]
        self.source = "\n\n".join([*helpers, _source(fn)])
        self.imports = _imports(self.source)  # parsed once: spec() runs for every task
        self.options = options
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def spec(self) -> Obj:
        body: Obj = {
            "function": self.function,
            "source": self.source,
            "imports": list(self.imports),
            "inputs": {p.name: p.spec() for p in self.inputs},
            "outputs": {p.name: p.spec() for p in self.outputs},
        }
        for key in ("image", "packages", "isolation"):
            if self.options.get(key):
                body[key] = self.options[key]
        if self.options.get("packages"):  # where pip installs them from (kfp's options)
            if self.options.get("index_urls"):
                body["pipIndexUrls"] = list(self.options["index_urls"])
            if self.options.get("trusted_hosts"):
                body["pipTrustedHosts"] = list(self.options["trusted_hosts"])
        body["digest"] = "sha256:" + hashlib.sha256(_canon(body)).hexdigest()
        return body

    def __call__(self, *args: Any, **kwargs: Any) -> PipelineTask:
        builder = _Builder.current()
        if builder is None:
            raise CompileError(
                f"component {self.name!r} was called outside a @dsl.pipeline function; "
                f"call it inside one, or call {self.name}.python_func(...) to run the function"
            )
        if args:
            raise CompileError(
                f"component {self.name!r}: pass arguments by keyword (as in kfp), "
                f"e.g. {self.name}({self.inputs[0].name if self.inputs else 'x'}=...)"
            )
        return builder.add_task(self, kwargs)

    @property
    def python_func(self) -> Callable[..., Any]:
        return self.fn


def component(
    func: Callable[..., Any] | None = None,
    *,
    base_image: str | None = None,
    image: str | None = None,
    packages_to_install: list[str] | None = None,
    packages: list[str] | None = None,
    cpu: str | float | None = None,
    memory: str | None = None,
    gpu: int | None = None,
    node_selector: dict[str, str] | None = None,
    retries: int = 0,
    cache: bool = True,
    isolation: str | None = None,
    install_kfp_package: bool = True,
    target_image: str | None = None,
    pip_index_urls: list[str] | None = None,
    pip_trusted_hosts: list[str] | None = None,
    additional_funcs: list[Callable[..., Any]] | None = None,
    use_venv: bool = False,
    kfp_package_path: str | None = None,
    output_component_file: str | None = None,
    embedded_artifact_path: str | None = None,
) -> Any:
    """``@dsl.component`` or ``@dsl.component(packages=[...], cpu="1", retries=2, ...)``.

    kfp's options are taken: ``pip_index_urls`` and ``pip_trusted_hosts`` for installing
    ``packages_to_install``, ``additional_funcs`` (their source goes with the component's),
    ``target_image`` (the image, as ``base_image``). ``install_kfp_package``,
    ``kfp_package_path`` and ``use_venv`` change nothing here: no kfp is installed, and
    packages always go to a folder of their own for the component."""
    if isolation not in (None, "warm", "process"):
        raise CompileError(f"isolation must be 'warm' or 'process', not {isolation!r}")
    for name, value in (
        ("output_component_file", output_component_file),
        ("embedded_artifact_path", embedded_artifact_path),
    ):
        if value is not None:
            raise CompileError(
                f"@dsl.component({name}=...) is not supported: compile the pipeline with "
                "`shipyard compile`, and read files the component needs from an artifact"
            )
    options: Obj = {
        "image": target_image or image or base_image,
        "index_urls": list(pip_index_urls or []),
        "trusted_hosts": list(pip_trusted_hosts or []),
        "additional_funcs": list(additional_funcs or []),
        "packages": list(packages or packages_to_install or []),
        "cpu": cpu,
        "memory": memory,
        "gpu": gpu,
        "node_selector": dict(node_selector or {}),
        "retries": retries,
        "cache": cache,
        "isolation": isolation,
    }

    def wrap(fn: Callable[..., Any]) -> Component:
        return Component(fn, options)

    return wrap(func) if func is not None else wrap


@dataclass
class ContainerSpec:
    """What a ``@dsl.container_component`` function returns (kfp's shape): the image (used
    on Kubernetes, recorded locally), and the command and args, in which the function's
    inputs and outputs stand for kfp's placeholders."""

    image: str
    command: list[Any] | None = None
    args: list[Any] | None = None


class ConcatPlaceholder:
    """kfp's ``dsl.ConcatPlaceholder([...])``: one argument joined from several items."""

    def __init__(self, items: list[Any]) -> None:
        self.items = list(items)

    def ir(self) -> Obj:
        return {"Concat": [_command_item(i) for i in self.items]}


class IfPresentPlaceholder:
    """kfp's ``dsl.IfPresentPlaceholder(input_name=..., then=[...], else_=[...])``: the
    ``then`` items if the (optional) input has a value when the task runs, else ``else_``."""

    def __init__(self, input_name: str, then: Any, else_: Any = None) -> None:
        self.input_name, self.then, self.else_ = input_name, then, else_

    def ir(self) -> Obj:
        def items(x: Any) -> list[Any]:
            return [_command_item(i) for i in (x if isinstance(x, list) else [x])]

        spec: Obj = {"InputName": self.input_name, "Then": items(self.then)}
        if self.else_ is not None:
            spec["Else"] = items(self.else_)
        return {"IfPresent": spec}


def _command_item(item: Any) -> Any:
    if isinstance(item, ConcatPlaceholder | IfPresentPlaceholder):
        return item.ir()
    if isinstance(item, bool) or not isinstance(item, str | int | float):
        raise CompileError(
            f"a container command takes strings, numbers and the function's inputs and "
            f"outputs, not {item!r}"
        )
    return str(item)


class _ArtifactPlaceholders:
    """An artifact input or output inside a container component: kfp's placeholders for its
    ``.path``, ``.uri`` and ``.metadata``."""

    def __init__(self, side: str, name: str) -> None:
        base = f"{{{{$.{side}.artifacts['{name}']"
        self.path, self.uri, self.metadata = (
            f"{base}.{a}}}}}" for a in ("path", "uri", "metadata")
        )


class ContainerComponent(Component):
    """A step that runs a command, made by ``@dsl.container_component`` (kfp's shape)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        where = f"container component {fn.__name__!r}"
        inputs, outputs = _ports(fn, where)
        stand_ins: Obj = {}
        for port in inputs + outputs:
            side = "outputs" if port.output else "inputs"
            if (
                port.type == "finalStatus"
                or port.many
                or (port.path and not port.output and not port.artifact)
            ):
                raise CompileError(
                    f"{where}, parameter {port.name!r}: a container component takes "
                    "parameters (int, str, ...), Input[...] / Output[...] artifacts, "
                    "InputPath(artifact) and OutputPath(...)"
                )
            if port.artifact:
                art = _ArtifactPlaceholders(side, port.name)
                stand_ins[port.name] = art.path if port.path else art
            elif port.output:
                stand_ins[port.name] = f"{{{{$.outputs.parameters['{port.name}'].output_file}}}}"
            else:
                stand_ins[port.name] = f"{{{{$.inputs.parameters['{port.name}']}}}}"
        spec = fn(**stand_ins)
        if not isinstance(spec, ContainerSpec):
            raise CompileError(f"{where} must return dsl.ContainerSpec(image=..., command=...)")
        if not spec.command and not spec.args:
            raise CompileError(f"{where}: its ContainerSpec has no command or args")
        names = {p.name for p in inputs}
        command, args = (
            [_as_arg(_command_item(i), names, where) for i in items or []]
            for items in (spec.command, spec.args)
        )
        # The command reads and writes through the placeholders: no port is a path the
        # executor hands the function.
        self.inputs = [replace(p, path=False) for p in inputs]
        self.outputs = [replace(p, path=False) for p in outputs]
        from shipyard.pipelines.kfp import container_body

        body = container_body(
            command,
            args,
            {p.name: p.spec() for p in self.inputs},
            {p.name: p.spec() for p in self.outputs},
        )
        self.fn = fn
        self.name = fn.__name__
        self.function = body["function"]
        self.source = body["source"]
        self.imports = list(body["imports"])
        self.options = {
            "image": spec.image,
            "packages": [],
            "cpu": None,
            "memory": None,
            "gpu": None,
            "node_selector": {},
            "retries": 0,
            "cache": True,
            "isolation": None,
        }
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__


def _as_arg(item: Any, inputs: set[str], where: str) -> str:
    """A command item as the IR writes it: a string, Concat / IfPresent as JSON."""
    if isinstance(item, dict):
        for cond in _if_present(item):
            if cond not in inputs:
                raise CompileError(f"{where}: IfPresentPlaceholder names no input {cond!r}")
        return json.dumps(item, sort_keys=True)
    return str(item)


def _if_present(item: Any) -> Iterator[str]:
    if isinstance(item, dict):
        if "IfPresent" in item:
            yield item["IfPresent"]["InputName"]
        for value in item.values():
            yield from _if_present(value)
    elif isinstance(item, list):
        for value in item:
            yield from _if_present(value)


class PreparedComponent(Component):
    """A component whose body (function, source, ports, image) is made rather than read from
    a Python function: what ``dsl.importer`` adds, or one loaded from YAML
    (``shipyard.components``). Called in a pipeline like a ``@dsl.component``."""

    def __init__(self, name: str, body: Obj, options: Obj | None = None) -> None:
        self.fn = None  # type: ignore[assignment]
        self.name = self.__name__ = name
        self.function, self.source = body["function"], body["source"]
        self.imports = list(body.get("imports") or [])
        self.inputs = [_body_port(n, p, False) for n, p in body["inputs"].items()]
        self.outputs = [_body_port(n, p, True) for n, p in body["outputs"].items()]
        packages = list(body.get("packages") or [])
        self.options = {"image": body.get("image"), "packages": packages, **(options or {})}
        self._body = {k: v for k, v in body.items() if k != "digest"}
        self._body["digest"] = "sha256:" + hashlib.sha256(_canon(self._body)).hexdigest()
        self.__doc__ = body.get("description")

    def spec(self) -> Obj:
        return dict(self._body)


def _body_port(name: str, spec: Obj, output: bool) -> Port:
    extra: Obj = {"default": spec["default"]} if "default" in spec else {}
    return Port(
        name,
        spec["type"],
        artifact=bool(spec.get("artifact")),
        output=output,
        many=bool(spec.get("list")),
        path=bool(spec.get("path")),
        **extra,
    )


def importer(
    artifact_uri: Any,
    artifact_class: type[Artifact] = Artifact,
    reimport: bool = False,
    metadata: Obj | None = None,
) -> PipelineTask:
    """kfp's ``dsl.importer``: bring the file or folder at ``artifact_uri`` (a constant or a
    pipeline parameter) into the run as an artifact of ``artifact_class``, with ``metadata``;
    its ``.output`` feeds other tasks. The content is read again on every run (the store
    keeps one copy of equal content), so ``reimport`` changes nothing here."""
    if not (isinstance(artifact_class, type) and issubclass(artifact_class, Artifact)):
        raise CompileError(
            f"dsl.importer: artifact_class must be an artifact class, not {artifact_class!r}"
        )
    from shipyard.pipelines import importer as imp

    kind = artifact_class.__name__
    body = {
        **imp.body(),
        "inputs": {"artifact_uri": {"type": "str"}, "metadata": {"type": "dict", "default": {}}},
        "outputs": {"artifact": {"type": kind, "artifact": True}},
    }
    # One component per artifact class (a pipeline's components are named uniquely); never
    # cached: the content at the URI may change between runs.
    name = "importer" if kind == "Artifact" else f"importer-{kind.lower()}"
    args: Obj = {"artifact_uri": artifact_uri}
    if metadata:
        args["metadata"] = metadata
    return PreparedComponent(name, body, {"cache": False})(**args)


def container_component(func: Callable[..., Any]) -> ContainerComponent:
    """``@dsl.container_component``: a step that runs the command of the ContainerSpec the
    function returns; its inputs and outputs stand for kfp's placeholders in it."""
    return ContainerComponent(func)


# ---------------------------------------------------------------------------------------------
# References (what flows between tasks while tracing)


class _Ref:
    """Something a task input can be wired to. Comparisons build conditions for dsl.If."""

    type: str = "any"
    artifact: bool = False

    def ref(self) -> Obj:  # pragma: no cover - overridden
        raise NotImplementedError

    def producers(self) -> list[str]:
        return []

    def _cmp(self, op: str, other: Any) -> ConditionExpr:
        return ConditionExpr(self, op, other)

    def __eq__(self, other: object) -> Any:
        return self._cmp("==", other)

    def __ne__(self, other: object) -> Any:
        return self._cmp("!=", other)

    def __lt__(self, other: Any) -> ConditionExpr:
        return self._cmp("<", other)

    def __le__(self, other: Any) -> ConditionExpr:
        return self._cmp("<=", other)

    def __gt__(self, other: Any) -> ConditionExpr:
        return self._cmp(">", other)

    def __ge__(self, other: Any) -> ConditionExpr:
        return self._cmp(">=", other)

    __hash__ = object.__hash__


class PipelineParam(_Ref):
    def __init__(self, name: str, type_: str) -> None:
        self.name, self.type = name, type_

    def ref(self) -> Obj:
        return {"parameter": self.name}

    def describe(self) -> str:
        return f"pipeline parameter {self.name!r}"


class TaskOutput(_Ref):
    def __init__(self, task: PipelineTask, port: Port) -> None:
        self.task, self.port = task, port
        self.type, self.artifact = port.type, port.artifact

    def ref(self) -> Obj:
        return {"task": self.task.name, "output": self.port.name}

    def producers(self) -> list[str]:
        return [self.task.name]

    def describe(self) -> str:
        return f"task {self.task.name!r} output {self.port.name!r}"


class LoopItem(_Ref):
    def __init__(self, loop: str, field_: str | None = None) -> None:
        self.loop, self.field = loop, field_

    def ref(self) -> Obj:
        out: Obj = {"loopItem": self.loop}
        if self.field:
            out["field"] = self.field
        return out

    def __getattr__(self, name: str) -> LoopItem:
        if name.startswith("_"):
            raise AttributeError(name)
        return LoopItem(self.loop, name)

    def describe(self) -> str:
        return f"loop item of {self.loop}"


class Collected(_Ref):
    """``dsl.Collected(task.output)``: the list of a looped task's outputs, for a task after
    the ``ParallelFor``."""

    def __init__(self, output: TaskOutput) -> None:
        if not isinstance(output, TaskOutput):
            raise CompileError("dsl.Collected takes a task output inside a dsl.ParallelFor")
        self.output = output
        self.type = "list"
        self.artifact = output.artifact

    def ref(self) -> Obj:
        return {"collected": self.output.ref()}

    def producers(self) -> list[str]:
        return [self.output.task.name]

    def describe(self) -> str:
        return f"collected {self.output.describe()}"


class OneOf(_Ref):
    """``dsl.OneOf(a.output, b.output)`` (kfp's): the output of whichever task ran, of tasks
    in the branches of a ``dsl.If`` / ``Elif`` / ``Else``; for a later task's input or for
    the pipeline's output."""

    def __init__(self, *outputs: Any) -> None:
        refs = [o.output if isinstance(o, PipelineTask) else o for o in outputs]
        if len(refs) < 2:
            raise CompileError("dsl.OneOf takes the outputs of two or more tasks")
        for ref in refs:
            if isinstance(ref, OneOf | Collected):
                what = type(ref).__name__
                raise CompileError(f"dsl.{what} cannot be used inside of dsl.OneOf")
            if not isinstance(ref, TaskOutput):
                raise CompileError(f"dsl.OneOf takes task outputs, not {ref!r}")
            if not ref.task.when:
                raise CompileError(
                    f"dsl.OneOf: task {ref.task.name!r} is not inside a dsl.If/Elif/Else "
                    "branch, so it always runs"
                )
        first = refs[0]
        for i, ref in enumerate(refs[1:], start=1):
            if (ref.type, ref.artifact) != (first.type, first.artifact):
                raise CompileError(
                    f"dsl.OneOf: outputs must be of one type; {first.describe()} is "
                    f"{first.type}, {ref.describe()} (at {i}) is {ref.type}"
                )
        names = [r.task.name for r in refs]
        if len(set(names)) != len(names):
            raise CompileError("dsl.OneOf takes one output of each branch's task")
        self.outputs: list[TaskOutput] = refs
        self.type, self.artifact = first.type, first.artifact

    def ref(self) -> Obj:
        return {"oneOf": [r.ref() for r in self.outputs]}

    def producers(self) -> list[str]:
        return [r.task.name for r in self.outputs]

    def describe(self) -> str:
        return "dsl.OneOf(" + ", ".join(r.describe() for r in self.outputs) + ")"

    def __str__(self) -> str:
        raise CompileError("dsl.OneOf does not support string interpolation")


@dataclass
class ConditionExpr:
    left: Any
    op: str
    right: Any

    def clause(self, negate: bool = False) -> Obj:
        return {
            "left": _value_ref(self.left),
            "op": self.op,
            "right": _value_ref(self.right),
            **({"negate": True} if negate else {}),
        }

    def producers(self) -> list[str]:
        out: list[str] = []
        for side in (self.left, self.right):
            if isinstance(side, _Ref):
                out += side.producers()
        return out

    def __bool__(self) -> bool:
        raise CompileError(
            "a task output cannot be used in a Python 'if' while the pipeline is compiled; "
            "use `with dsl.If(condition):`"
        )


def _value_ref(value: Any) -> Obj:
    if isinstance(value, _Ref):
        return value.ref()
    if isinstance(value, PipelineTask | SubPipelineTask):
        return value.output.ref()
    _check_literal(value, "a condition")
    return {"value": value}


def _check_literal(value: Any, where: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise CompileError(f"{where}: constant {value!r} is not JSON: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Tasks


def _outside_of(producer: PipelineTask, when: list[Obj], group: str | None) -> str | None:
    """The context manager ("dsl.If" or "dsl.ExitHandler") ``producer`` runs in that a task
    with conditions ``when`` in ExitHandler ``group`` is not inside, if any. As in kfp, such
    a task may not use the producer's outputs or run .after it: whether it ran is not known.
    (Branches are told apart by their condition objects, so two dsl.If blocks with the same
    condition are two contexts, as they are for kfp.)"""
    theirs = producer.when
    if len(theirs) > len(when) or any(a is not b for a, b in zip(theirs, when, strict=False)):
        return "dsl.If"
    if producer.group is not None and producer.group != group:
        return "dsl.ExitHandler"
    return None


def _check_context(who: str, what: str, producer: PipelineTask, when: list[Obj],
                   group: str | None) -> None:  # fmt: skip
    kind = _outside_of(producer, when, group)
    if kind is None:
        return
    fix = "move it into that block"
    if kind == "dsl.If":
        fix += ", or pass the output on with dsl.OneOf(...) of a task in every branch"
    raise CompileError(
        f"{who} {what}, but task {producer.name!r} runs inside a {kind} block that "
        f"{who} is not in, so it may not run: {fix}"
    )


@dataclass
class PipelineTask:
    name: str
    component: Component
    inputs: Obj = field(default_factory=dict)
    deps: list[str] = field(default_factory=list)
    after_: list[str] = field(default_factory=list)
    when: list[Obj] = field(default_factory=list)
    loop: str | None = None
    exit_for: list[str] | None = None
    group: str | None = None  # the ExitHandler group it belongs to
    retry: Obj | None = None
    cache: bool = True
    resources: Obj = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    display_name: str | None = None
    ignore_upstream: bool = False
    image: str | None = None  # set_container_image: this task's, over its component's
    env_refs: list[Obj] = field(default_factory=list)  # env from Secrets and ConfigMaps
    tolerations: list[Obj] = field(default_factory=list)
    accelerator: str = "nvidia.com/gpu"  # the resource set_accelerator_limit counts

    @property
    def output(self) -> TaskOutput:
        params = [p for p in self.component.outputs if not p.artifact]
        outs = params if len(params) == 1 else self.component.outputs
        if len(outs) != 1:
            names = ", ".join(p.name for p in self.component.outputs) or "none"
            raise CompileError(
                f"task {self.name!r}: .output needs exactly one output, component "
                f"{self.component.name!r} has: {names}; use .outputs['NAME']"
            )
        return TaskOutput(self, outs[0])

    @property
    def outputs(self) -> _Outputs:
        return _Outputs(self)

    def after(self, *tasks: PipelineTask | SubPipelineTask) -> PipelineTask:
        for t in tasks:
            # A nested pipeline: after every task in it.
            for before in t.tasks if isinstance(t, SubPipelineTask) else [t]:
                what = f"runs .after task {before.name!r}"
                _check_context(f"task {self.name!r}", what, before, self.when, self.group)
                if before.name not in self.after_:
                    self.after_.append(before.name)
        return self

    def set_retry(
        self,
        num_retries: int,
        backoff_duration: str | None = None,
        backoff_factor: float | None = None,
        backoff_max_duration: str | None = None,
    ) -> PipelineTask:
        self.retry = {"maxRetryCount": int(num_retries)}
        if backoff_duration is not None:
            self.retry["backoffDuration"] = backoff_duration
        if backoff_factor is not None:
            self.retry["backoffFactor"] = backoff_factor
        if backoff_max_duration is not None:
            self.retry["backoffMaxDuration"] = backoff_max_duration
        return self

    def set_caching_options(self, enable_caching: bool) -> PipelineTask:
        self.cache = bool(enable_caching)
        return self

    def _res(self, part: str, key: str, value: Any) -> PipelineTask:
        self.resources.setdefault(part, {})[key] = str(value)
        return self

    def set_cpu_limit(self, cpu: str) -> PipelineTask:
        return self._res("limits", "cpu", cpu)

    def set_cpu_request(self, cpu: str) -> PipelineTask:
        return self._res("requests", "cpu", cpu)

    def set_memory_limit(self, memory: str) -> PipelineTask:
        return self._res("limits", "memory", memory)

    def set_memory_request(self, memory: str) -> PipelineTask:
        return self._res("requests", "memory", memory)

    def set_accelerator_limit(self, limit: int) -> PipelineTask:
        return self._res("limits", self.accelerator, int(limit))

    def set_gpu_limit(self, gpu: int) -> PipelineTask:
        return self.set_accelerator_limit(gpu)

    def set_accelerator_type(self, accelerator: str) -> PipelineTask:
        """The extended resource the accelerator limit counts (kfp's, such as
        ``nvidia.com/gpu``), in either order with set_accelerator_limit."""
        for part in self.resources.values():
            if self.accelerator in part:
                part[accelerator] = part.pop(self.accelerator)
        self.accelerator = accelerator
        return self

    def add_node_selector_constraint(self, label: str, value: str | None = None) -> PipelineTask:
        """kfp v1's ``(label, value)``: a node selector; kfp v2's one argument is the
        accelerator type (as set_accelerator_type)."""
        if value is None:
            return self.set_accelerator_type(label)
        self.node_selector[label] = value
        return self

    def set_container_image(self, name: str) -> PipelineTask:
        """This task's image, over its component's (used on Kubernetes, recorded locally)."""
        self.image = name
        return self

    def set_env_variable(self, name: str, value: str) -> PipelineTask:
        self.env[name] = str(value)
        return self

    def set_display_name(self, name: str) -> PipelineTask:
        self.display_name = name
        return self

    def ignore_upstream_failure(self) -> PipelineTask:
        """Run once the tasks before this one have ended, failed or not (kfp's name): a
        clean-up or report step. An input wired to another task's output then needs a
        default, which it gets when that task did not produce the output."""
        for name, ref in self.inputs.items():
            port = next(p for p in self.component.inputs if p.name == name)
            producer = ref.get("task") or (ref.get("collected") or {}).get("task")
            if producer and port.default is inspect.Parameter.empty:
                raise CompileError(
                    f"task {self.name!r}: .ignore_upstream_failure() needs a default for input "
                    f"{name!r}, which reads the output of task {producer!r} (in case that "
                    "task fails before writing it)"
                )
        self.ignore_upstream = True
        return self

    __hash__ = object.__hash__


class SubPipelineTask:
    """A pipeline called inside another: its tasks are in the outer pipeline already; this
    is what kfp's call returns, so ``.output``, ``.outputs['NAME']`` (a NamedTuple's fields,
    or a returned dict's keys) and ``.after(...)`` work on it, and other tasks can run
    ``.after(it)`` (after every task in it)."""

    def __init__(self, name: str, tasks: list[PipelineTask], result: Any) -> None:
        self.name, self.tasks, self.result = name, tasks, result

    def _named(self) -> dict[str, Any]:
        result = self.result
        if result is None:
            return {}
        if isinstance(result, tuple) and hasattr(result, "_asdict"):
            return dict(result._asdict())
        if isinstance(result, dict):
            return {str(k): v for k, v in result.items()}
        return {"Output": result}

    @property
    def output(self) -> TaskOutput:
        named = self._named()
        if len(named) != 1:
            names = ", ".join(named) or "none"
            raise CompileError(
                f"pipeline {self.name!r}: .output needs exactly one output, it returns: "
                f"{names}; use .outputs['NAME']"
            )
        return _as_output(self.name, next(iter(named.values())))

    @property
    def outputs(self) -> _NamedOutputs:
        return _NamedOutputs(self.name, self._named())

    def after(self, *tasks: PipelineTask | SubPipelineTask) -> SubPipelineTask:
        for t in self.tasks:
            t.after(*tasks)
        return self

    def set_caching_options(self, enable_caching: bool) -> SubPipelineTask:
        for t in self.tasks:
            t.set_caching_options(enable_caching)
        return self


def _as_output(pipeline: str, value: Any) -> TaskOutput:
    if isinstance(value, PipelineTask | SubPipelineTask):
        value = value.output
    if not isinstance(value, TaskOutput):
        raise CompileError(f"pipeline {pipeline!r} returns {value!r}, which is not a task output")
    return value


class _NamedOutputs:
    def __init__(self, pipeline: str, named: dict[str, Any]) -> None:
        self.pipeline, self.named = pipeline, named

    def __getitem__(self, name: str) -> TaskOutput:
        if name not in self.named:
            names = ", ".join(self.named) or "none"
            raise CompileError(
                f"pipeline {self.pipeline!r} has no output {name!r} (it returns: {names})"
            )
        return _as_output(self.pipeline, self.named[name])


class _Outputs:
    def __init__(self, task: PipelineTask) -> None:
        self.task = task

    def __getitem__(self, name: str) -> TaskOutput:
        for p in self.task.component.outputs:
            if p.name == name:
                return TaskOutput(self.task, p)
        names = ", ".join(p.name for p in self.task.component.outputs) or "none"
        raise CompileError(
            f"task {self.task.name!r} has no output {name!r} "
            f"(component {self.task.component.name!r} outputs: {names})"
        )


# ---------------------------------------------------------------------------------------------
# Tracing


class _Builder:
    _stack: typing.ClassVar[list[_Builder]] = []

    def __init__(self) -> None:
        self.tasks: dict[str, PipelineTask] = {}
        self.loops: dict[str, Obj] = {}
        self.when: list[Obj] = []
        self.when_deps: list[str] = []
        self.loop: str | None = None
        self.group: str | None = None
        self.groups: dict[str, list[str]] = {}
        self.prefix: list[str] = []
        self.chains: list[list[ConditionExpr]] = [[]]
        self.counter = 0

    @classmethod
    def current(cls) -> _Builder | None:
        return cls._stack[-1] if cls._stack else None

    def chain(self, loop: str | None) -> list[str]:
        """``loop`` and the loops around it, outermost first."""
        out: list[str] = []
        while loop:
            out.insert(0, loop)
            loop = self.loops[loop].get("parent")
        return out

    def encloses(self, loop: str | None) -> bool:
        """Whether what is being added now runs inside ``loop`` (None: no loop)."""
        return loop is None or loop in self.chain(self.loop)

    def unique(self, base: str) -> str:
        # No "--" in a task name: the controller marks a loop's runs with it (fit--2).
        base = re.sub("-{2,}", "-", "-".join([*self.prefix, base]))
        name, n = base, 1
        while name in self.tasks:
            n += 1
            name = f"{base}-{n}"
        return name

    def add_task(self, comp: Component, kwargs: Obj) -> PipelineTask:
        name = self.unique(comp.name.replace("_", "-"))
        task = PipelineTask(name=name, component=comp)
        opts = comp.options
        task.cache = bool(opts.get("cache", True))
        if opts.get("retries"):
            task.retry = {"maxRetryCount": int(opts["retries"])}
        for key, part in (("cpu", "cpu"), ("memory", "memory"), ("gpu", "nvidia.com/gpu")):
            if opts.get(key) is not None:
                task.resources.setdefault("requests", {})[part] = str(opts[key])
                if key != "cpu":
                    task.resources.setdefault("limits", {})[part] = str(opts[key])
        task.node_selector.update(opts.get("node_selector") or {})
        ports = {p.name: p for p in comp.inputs}
        for key in kwargs:
            if key not in ports:
                known = ", ".join(ports) or "none"
                raise CompileError(
                    f"task {name!r}: component {comp.name!r} has no input {key!r} (inputs: {known})"
                )
        for port in comp.inputs:
            if port.type == "finalStatus":
                task.inputs[port.name] = {"finalStatus": True}
                continue
            if port.name not in kwargs or (kwargs[port.name] is None and port.optional):
                # (None for an Optional input: left out, as kfp leaves it out)
                if port.default is inspect.Parameter.empty:
                    raise CompileError(
                        f"task {name!r}: missing argument {port.name!r} of component {comp.name!r}"
                    )
                continue
            task.inputs[port.name] = self._wire(task, port, kwargs[port.name])
        task.when = list(self.when)
        task.deps = sorted(set(task.deps) | set(self.when_deps))
        task.loop = self.loop
        task.group = self.group
        if self.group:
            self.groups[self.group].append(name)
        self.tasks[name] = task
        return task

    def _wire(self, task: PipelineTask, port: Port, value: Any) -> Obj:
        if isinstance(value, PipelineTask | SubPipelineTask):
            value = value.output
        if isinstance(value, _Ref):
            src = value.describe()  # type: ignore[attr-defined]
            if port.artifact != value.artifact and not isinstance(value, LoopItem):
                what = "an artifact" if value.artifact else "a parameter"
                raise CompileError(
                    f"task {task.name!r} input {port.name!r} ({port.type}) is wired to {src}, "
                    f"which is {what} ({value.type})"
                )
            if port.artifact and port.many != isinstance(value, Collected):
                if port.many:
                    raise CompileError(
                        f"task {task.name!r} input {port.name!r} takes a list of {port.type} "
                        f"(Input[List[{port.type}]]): wire it to dsl.Collected(...) of a "
                        f"looped task's output, not to {src}"
                    )
                raise CompileError(
                    f"task {task.name!r} input {port.name!r} takes one {port.type}, but "
                    f"{src} is a list: annotate the input Input[List[{port.type}]]"
                )
            # The type a Collected gathers is its output's.
            vtype = value.output.type if isinstance(value, Collected) else value.type
            if port.artifact and port.type != "Artifact" and vtype not in (port.type, "Artifact"):
                raise CompileError(
                    f"type mismatch: task {task.name!r} input {port.name!r} expects "
                    f"{port.type}, but {src} is {vtype}"
                )
            compatible = (
                port.type in ("any", value.type)
                or value.type == "any"
                or (port.type == "float" and value.type == "int")
            )
            if not port.artifact and not compatible:
                raise CompileError(
                    f"type mismatch: task {task.name!r} input {port.name!r} expects "
                    f"{port.type}, but {src} is {value.type}"
                )
            if isinstance(value, TaskOutput) and not self.encloses(value.task.loop):
                raise CompileError(
                    f"task {task.name!r} input {port.name!r} reads {src}, which runs inside "
                    f"{value.task.loop}: wrap it in dsl.Collected(...)"
                )
            gathered = value.output.task.loop if isinstance(value, Collected) else None
            if isinstance(value, Collected) and (
                gathered is None
                or gathered in self.chain(self.loop)
                or not self.encloses(self.loops[gathered].get("parent"))
            ):
                raise CompileError(
                    f"task {task.name!r} input {port.name!r} collects {src}: dsl.Collected "
                    "gathers a loop's outputs for a task outside that loop (and inside the "
                    "loops around it)"
                )
            if isinstance(value, TaskOutput | Collected):  # (dsl.OneOf: made for branches)
                producer = value.task if isinstance(value, TaskOutput) else value.output.task
                what = f"input {port.name!r} reads {src}"
                _check_context(f"task {task.name!r}", what, producer, self.when, self.group)
            task.deps += [p for p in value.producers() if p not in task.deps]
            return value.ref()
        if port.artifact:
            raise CompileError(
                f"task {task.name!r} input {port.name!r} is an artifact ({port.type}); "
                f"wire it to another task's output, not to the constant {value!r}"
            )
        _check_literal(value, f"task {task.name!r} input {port.name!r}")
        if port.type not in ("any",):
            from shipyard.pipelines.types import check_value

            try:
                check_value(value, port.type)
            except TypeError as exc:
                raise CompileError(f"task {task.name!r} input {port.name!r}: {exc}") from None
        return {"value": value}

    @contextmanager
    def condition(self, clauses: list[Obj], deps: list[str]) -> Iterator[None]:
        for name in deps:
            what = f"reads task {name!r}"
            _check_context("a dsl.If condition", what, self.tasks[name], self.when, self.group)
        saved = (self.when, self.when_deps)
        self.when = self.when + clauses
        self.when_deps = self.when_deps + [d for d in deps if d not in self.when_deps]
        self.chains.append([])
        try:
            yield
        finally:
            self.chains.pop()
            self.when, self.when_deps = saved


def _enter_branch(cond: ConditionExpr | None, kind: str) -> Any:
    builder = _Builder.current()
    if builder is None:
        raise CompileError(f"dsl.{kind} is used inside a @dsl.pipeline function only")
    chain = builder.chains[-1]
    if kind == "If":
        chain.clear()
    elif not chain:
        raise CompileError(f"dsl.{kind} must follow a dsl.If or dsl.Elif block")
    if cond is not None and not isinstance(cond, ConditionExpr):
        raise CompileError(
            f"dsl.{kind} takes a comparison of a task output or pipeline parameter, "
            f"such as `task.output > 0.9`; got {cond!r}"
        )
    clauses = [c.clause(negate=True) for c in chain]
    deps = [d for c in chain for d in c.producers()]
    if cond is not None:
        clauses.append(cond.clause())
        deps += cond.producers()
    cm = builder.condition(clauses, deps)
    if cond is not None:
        chain.append(cond)
    else:
        # After Else nothing may follow: the next If starts a new chain.
        pending = list(chain)
        chain.clear()
        chain.extend(pending)
    return cm


class If:
    """``with dsl.If(task.output > 0.9):`` run the tasks inside only when true."""

    _kind = "If"

    def __init__(self, condition: ConditionExpr, name: str | None = None) -> None:
        self.cond = condition
        self.name = name

    def __enter__(self) -> None:
        self._cm = _enter_branch(self.cond, self._kind)
        self._cm.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)


class Elif(If):
    _kind = "Elif"


class Condition(If):
    """kfp's older name for ``If``."""


class Else:
    def __init__(self, name: str | None = None) -> None:
        self.name = name

    def __enter__(self) -> None:
        self._cm = _enter_branch(None, "Else")
        self._cm.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)
        builder = _Builder.current()
        if builder is not None:
            builder.chains[-1].clear()


class ParallelFor:
    """``with dsl.ParallelFor(items, parallelism=N) as item:`` one set of tasks per item."""

    def __init__(self, items: Any, parallelism: int = 0, name: str | None = None) -> None:
        self.items, self.parallelism = items, int(parallelism)

    def __enter__(self) -> LoopItem:
        builder = _Builder.current()
        if builder is None:
            raise CompileError("dsl.ParallelFor is used inside a @dsl.pipeline function only")
        builder.counter += 1
        loop = f"for-{builder.counter}"
        items = self.items
        if isinstance(items, PipelineTask):
            items = items.output
        if isinstance(items, _Ref):
            if items.artifact or items.type not in ("list", "any"):
                raise CompileError(
                    f"dsl.ParallelFor items must be a list; {items.describe()} "  # type: ignore[attr-defined]
                    f"is {items.type}"
                )
            if isinstance(items, TaskOutput) and not builder.encloses(items.task.loop):
                raise CompileError(
                    f"dsl.ParallelFor items {items.describe()} run inside "
                    f"{items.task.loop}: wrap them in dsl.Collected(...)"
                )
            ref, deps = items.ref(), items.producers()
        elif isinstance(items, list | tuple):
            _check_literal(list(items), "dsl.ParallelFor items")
            ref, deps = {"value": list(items)}, []
        else:
            raise CompileError(f"dsl.ParallelFor items must be a list, got {items!r}")
        spec: Obj = {"items": ref}
        if self.parallelism > 0:
            spec["parallelism"] = self.parallelism
        if builder.loop is not None:  # nested: one loop per item of the loop around it
            spec["parent"] = builder.loop
        builder.loops[loop] = spec
        self._saved = (builder.loop, builder.when_deps)
        builder.loop = loop
        builder.when_deps = builder.when_deps + deps
        return LoopItem(loop)

    def __exit__(self, *exc: object) -> None:
        builder = _Builder.current()
        if builder is not None:
            builder.loop, builder.when_deps = self._saved


class ExitHandler:
    """``with dsl.ExitHandler(exit_task=cleanup(...)):``: ``exit_task`` runs after the tasks
    inside, whether they succeeded or failed."""

    def __init__(self, exit_task: PipelineTask, name: str | None = None) -> None:
        if not isinstance(exit_task, PipelineTask):
            raise CompileError("dsl.ExitHandler needs exit_task=<a task created before it>")
        self.exit_task = exit_task

    def __enter__(self) -> None:
        builder = _Builder.current()
        if builder is None:
            raise CompileError("dsl.ExitHandler is used inside a @dsl.pipeline function only")
        builder.counter += 1
        self.group = f"exit-handler-{builder.counter}"
        builder.groups[self.group] = []
        self._saved = builder.group
        builder.group = self.group

    def __exit__(self, *exc: object) -> None:
        builder = _Builder.current()
        if builder is None:
            return
        builder.group = self._saved
        members = builder.groups[self.group]
        if not members:
            raise CompileError(f"dsl.ExitHandler for task {self.exit_task.name!r} is empty")
        self.exit_task.exit_for = list(members)


# ---------------------------------------------------------------------------------------------
# Pipelines


class Pipeline:
    """A function made into a pipeline by ``@dsl.pipeline``."""

    def __init__(self, fn: Callable[..., Any], name: str | None, description: str | None) -> None:
        self.fn = fn
        self.name = (name or fn.__name__).replace("_", "-").lower()
        self.description = description or (inspect.getdoc(fn) or "").strip()
        self.params: list[Port] = []
        hints = typing.get_type_hints(fn, include_extras=True)
        for p in inspect.signature(fn).parameters.values():
            hint = hints.get(p.name, inspect.Parameter.empty)
            self.params.append(
                Port(p.name, _param_type(hint, f"pipeline {self.name!r}"), default=p.default)
            )
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder = _Builder.current()
        if builder is None:
            raise CompileError(
                f"pipeline {self.name!r} runs on the platform: use "
                f"client.run_pipeline({self.__name__}) or `shipyard run FILE`"
            )
        # A pipeline inside a pipeline: its tasks join the outer one, names prefixed. As in
        # kfp, the call is a task of its own: .output, .outputs['NAME'], .after(...).
        builder.prefix.append(self.name)
        before = set(builder.tasks)
        try:
            result = self.fn(*args, **kwargs)
        finally:
            builder.prefix.pop()
        tasks = [t for name, t in builder.tasks.items() if name not in before]
        return SubPipelineTask(self.name, tasks, result)

    def trace(self) -> tuple[_Builder, Any]:
        builder = _Builder()
        _Builder._stack.append(builder)
        try:
            result = self.fn(**{p.name: PipelineParam(p.name, p.type) for p in self.params})
        finally:
            _Builder._stack.pop()
        return builder, result


def pipeline(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    pipeline_root: str | None = None,
    display_name: str | None = None,
) -> Any:
    def wrap(fn: Callable[..., Any]) -> Pipeline:
        return Pipeline(fn, name, description)

    return wrap(func) if func is not None else wrap


def _canon(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


# kfp compatibility names
PipelineTaskFinalStatus = PipelineTaskFinalStatus
ARTIFACT_CLASSES = ARTIFACT_TYPES
