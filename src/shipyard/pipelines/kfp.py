"""Run KFP v2 pipeline YAML (what ``kfp.compiler.Compiler().compile(...)`` writes, schemaVersion
2.1.0) by translating its IR into Shipyard's own ``Pipeline`` resource.

The IR's nested DAGs (conditions, loops, exit handlers, pipelines used as components) are
flattened into Shipyard's task list: a ``triggerPolicy.condition`` (the CEL subset KFP emits
for ``dsl.If/Elif/Else``) becomes ``when`` clauses on every task inside, a
``parameterIterator`` becomes a loop, a loop's DAG output becomes ``collected``, and a task
with ``taskFinalStatus`` becomes an exit task for the tasks of the group it names.

Components run with Shipyard's executor, without the kfp package: a lightweight Python
component's source is taken from the executor's command (the ``kfp.dsl.executor_main``
heredoc) with its ``kfp`` imports pointed at Shipyard's DSL, and a small generated entry
function maps KFP's contract (``InputPath``/``OutputPath``, NamedTuple returns) onto
Shipyard's. A container component runs its command with the placeholders
(``{{$.inputs.parameters['x']}}``, ``{{$.outputs.artifacts['y'].path}}``, …) substituted.
Integers stay integers (KFP writes ``defaultValue: 2.0`` for an int, kubeflow/pipelines#9442).

An IR feature Shipyard cannot honour is refused with an error naming the task and the
feature, never dropped. The helpers at the end (``run_component``, ``run_container``) run
inside the task's process; this module imports only the standard library and PyYAML.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from shipyard.errors import Invalid
from shipyard.pipelines.importer import body as importer_body

Obj = dict[str, Any]
API_VERSION = "shipyard.dev/v1"
SOURCE_ANNOTATION = "pipelines.shipyard.dev/source"

PARAM_TYPES = {
    "NUMBER_INTEGER": "int",
    "NUMBER_DOUBLE": "float",
    "STRING": "str",
    "BOOLEAN": "bool",
    "LIST": "list",
    "STRUCT": "dict",
    "TASK_FINAL_STATUS": "finalStatus",
}
ARTIFACT_CLASSES = {
    "system.Artifact": "Artifact",
    "system.Dataset": "Dataset",
    "system.Model": "Model",
    "system.Metrics": "Metrics",
    "system.ClassificationMetrics": "ClassificationMetrics",
    "system.SlicedClassificationMetrics": "SlicedClassificationMetrics",
    "system.HTML": "HTML",
    "system.Markdown": "Markdown",
}
TASK_KEYS = {
    "componentRef",
    "dependentTasks",
    "inputs",
    "taskInfo",
    "cachingOptions",
    "retryPolicy",
    "triggerPolicy",
    "parameterIterator",
    "iteratorPolicy",
}
CONTAINER_KEYS = {"image", "command", "args", "env", "resources"}
_SELECTOR = re.compile(r"""^parseJson\(string_value\)\[\s*["']([^"']+)["']\s*\]$""")


class KfpError(Invalid):
    """KFP IR that Shipyard cannot run; the message names the task and the feature."""


# ---------------------------------------------------------------------------------------------
# Detection and entry points


def is_kfp(doc: Any) -> bool:
    """True for a KFP v2 IR document (top-level ``pipelineInfo``, ``deploymentSpec``, ``root``)."""
    return isinstance(doc, dict) and all(
        k in doc for k in ("pipelineInfo", "deploymentSpec", "root")
    )


def translate_if_kfp(source: Any, where: str = "pipeline") -> Obj | None:
    """The Shipyard ``Pipeline`` for KFP IR given as a dict or YAML/JSON text; None when
    ``source`` is not KFP IR."""
    if isinstance(source, dict):
        return translate(source, where) if is_kfp(source) else None
    if (
        not isinstance(source, str)
        or "pipelineInfo" not in source
        or "deploymentSpec" not in source
    ):
        return None
    try:
        docs = [d for d in yaml.safe_load_all(source) if d is not None]
    except yaml.YAMLError:
        return None
    if not docs or not is_kfp(docs[0]):
        return None
    platform = docs[1] if len(docs) > 1 else None
    return translate(docs[0], where, platform=platform)


def translate(ir: Obj, where: str = "pipeline", platform: Obj | None = None) -> Obj:
    """The Shipyard ``Pipeline`` resource (a dict) for a KFP v2 IR document."""
    return _Translator(ir, where, platform).pipeline()


# ---------------------------------------------------------------------------------------------
# Translation


@dataclass
class _Node:
    """A task of one KFP DAG, after translation: its leaf tasks and how to read its outputs."""

    leaves: list[str]
    output: Callable[[str, str], Obj]
    # An If/Elif/Else group: a task after it reads a dsl.OneOf of its branches' outputs (kfp
    # allows no other dependency on a condition from outside), whose producers it waits for.
    branches: bool = False


@dataclass
class _Scope:
    path: str
    comp: Obj
    env: dict[str, Callable[[], Obj]]
    when: list[Obj] = field(default_factory=list)
    deps: list[str] = field(default_factory=list)
    loop: str | None = None
    item_input: str | None = None


class _Translator:
    def __init__(self, ir: Obj, where: str, platform: Obj | None) -> None:
        self.ir = ir
        self.where = where
        self.kcomps: Obj = ir.get("components") or {}
        self.executors: Obj = (ir.get("deploymentSpec") or {}).get("executors") or {}
        self.name = str((ir.get("pipelineInfo") or {}).get("name") or "kfp-pipeline")
        self.comps: Obj = {}
        self.tasks: list[Obj] = []
        self.loops: Obj = {}
        self.used: set[str] = set()
        self.platform = self._platform(platform)

    def fail(self, message: str) -> KfpError:
        return KfpError(f"{self.where}: KFP pipeline {self.name!r}: {message}")

    def _platform(self, platform: Obj | None) -> Obj:
        if not platform:
            return {}
        k8s = ((platform.get("platforms") or {}).get("kubernetes") or {}).get("deploymentSpec")
        execs: Obj = (k8s or {}).get("executors") or {}
        for label, conf in execs.items():
            extra = sorted(set(conf) - set(PLATFORM_KEYS))
            if extra:
                raise self.fail(
                    f"executor {label!r} uses kfp-kubernetes platform config {', '.join(extra)}, "
                    f"which Shipyard does not support yet (only {', '.join(PLATFORM_KEYS)})"
                )
        other = sorted(set(platform.get("platforms") or {}) - {"kubernetes"})
        if other:
            raise self.fail(f"platform config for {', '.join(other)} is not supported")
        return execs

    # -- the whole pipeline ---------------------------------------------------------------------

    def pipeline(self) -> Obj:
        version = str(self.ir.get("schemaVersion", ""))
        if version and not version.startswith("2."):
            raise self.fail(f"schemaVersion {version} is not KFP v2 IR (2.x)")
        root = self.ir["root"]
        if "dag" not in root:
            raise self.fail("root has no dag")
        defs = root.get("inputDefinitions") or {}
        if defs.get("artifacts"):
            raise self.fail(
                f"pipeline artifact inputs ({', '.join(defs['artifacts'])}) are not supported"
            )
        params: Obj = {}
        for pname, pdef in (defs.get("parameters") or {}).items():
            ptype = self._ptype(pdef, f"pipeline parameter {pname!r}")
            port: Obj = {"type": ptype}
            if "defaultValue" in pdef:
                port["default"] = _coerce(pdef["defaultValue"], ptype)
            elif pdef.get("isOptional"):
                port["default"] = None
            params[pname] = port
        env = {n: _const({"parameter": n}) for n in params}
        scope = _Scope(path="root", comp=root, env=env)
        nodes = self._dag(root, scope)
        spec: Obj = {}
        info = self.ir.get("pipelineInfo") or {}
        if info.get("description"):
            spec["description"] = str(info["description"])
        spec["parameters"] = params
        spec["components"] = dict(sorted(self.comps.items()))
        if self.loops:
            spec["loops"] = self.loops
        spec["tasks"] = self.tasks
        outputs = self._dag_outputs(root, nodes, "root")
        if outputs:
            spec["outputs"] = outputs
        spec["digest"] = "sha256:" + hashlib.sha256(_canon(spec)).hexdigest()
        from shipyard.pipelines.api import validate_pipeline_spec

        validate_pipeline_spec(spec)
        annotations = {SOURCE_ANNOTATION: "kfp"}
        for key, ann in (
            ("sdkVersion", "kfp.shipyard.dev/sdk-version"),
            ("schemaVersion", "kfp.shipyard.dev/schema-version"),
            ("defaultPipelineRoot", "kfp.shipyard.dev/pipeline-root"),
        ):
            if self.ir.get(key):
                annotations[ann] = str(self.ir[key])
        if info.get("displayName"):
            annotations["kfp.shipyard.dev/display-name"] = str(info["displayName"])
        return {
            "apiVersion": API_VERSION,
            "kind": "Pipeline",
            "metadata": {"name": dns_name(self.name), "annotations": annotations},
            "spec": spec,
        }

    def _ptype(self, pdef: Obj, what: str) -> str:
        kind = pdef.get("parameterType")
        if kind not in PARAM_TYPES:
            raise self.fail(f"{what} has parameterType {kind!r}, which is not supported")
        return PARAM_TYPES[kind]

    def _dag_outputs(self, comp: Obj, nodes: dict[str, _Node], where: str) -> Obj:
        outs: Obj = {}
        dag_outs = (comp.get("dag") or {}).get("outputs") or {}
        for key, sel in (dag_outs.get("parameters") or {}).items():
            outs[key] = self._selected(sel, nodes, f"{where} output {key!r}", "parameter")
        for key, sel in (dag_outs.get("artifacts") or {}).items():
            outs[key] = self._selected(sel, nodes, f"{where} output {key!r}", "artifact")
        return outs

    def _selected(self, sel: Obj, nodes: dict[str, _Node], what: str, kind: str) -> Obj:
        if kind == "parameter":
            if "valueFromOneof" in sel:  # dsl.OneOf: one selector per branch
                oneof = sel["valueFromOneof"] or {}
                picks = [
                    (p.get("producerSubtask"), p.get("outputParameterKey"))
                    for p in oneof.get("parameterSelectors") or []
                ]
            elif "valueFromParameter" in sel:
                v = sel["valueFromParameter"]
                picks = [(v.get("producerSubtask"), v.get("outputParameterKey"))]
            else:
                feature = ", ".join(sel) or "an empty selector"
                raise self.fail(f"{what} uses {feature}, which is not supported")
        else:
            picks = [
                (a.get("producerSubtask"), a.get("outputArtifactKey"))
                for a in sel.get("artifactSelectors") or []
            ]
        if not picks:
            raise self.fail(f"{what} selects no output")
        refs = []
        for producer, key in picks:
            if producer not in nodes:
                raise self.fail(f"{what} reads unknown task {producer!r}")
            refs.append(nodes[producer].output(str(key), kind))
        if len(refs) == 1:
            return refs[0]
        if any("task" not in ref for ref in refs):
            raise self.fail(f"{what}: a dsl.OneOf of {refs} is not supported")
        return {"oneOf": refs}

    # -- one DAG --------------------------------------------------------------------------------

    def _dag(self, comp: Obj, scope: _Scope) -> dict[str, _Node]:
        ktasks: Obj = (comp.get("dag") or {}).get("tasks") or {}
        nodes: dict[str, _Node] = {}
        for tname in _topo(ktasks, self.fail):
            nodes[tname] = self._task(tname, ktasks[tname], scope, nodes)
        return nodes

    def _task(self, tname: str, kt: Obj, scope: _Scope, nodes: dict[str, _Node]) -> _Node:
        what = f"task {tname!r}"
        extra = sorted(set(kt) - TASK_KEYS)
        if extra:
            feature = ", ".join(extra)
            if "artifactIterator" in extra:
                feature += " (dsl.ParallelFor over artifacts)"
            raise self.fail(f"{what} uses {feature}, which Shipyard does not support yet")
        cname = str((kt.get("componentRef") or {}).get("name"))
        kcomp = self.kcomps.get(cname)
        if kcomp is None:
            raise self.fail(f"{what} uses unknown component {cname!r}")
        trigger = kt.get("triggerPolicy") or {}
        extra = sorted(set(trigger) - {"condition", "strategy"})
        if extra:
            raise self.fail(f"{what} triggerPolicy uses {', '.join(extra)}")
        strategy = trigger.get("strategy") or "ALL_UPSTREAM_TASKS_SUCCEEDED"
        if strategy not in ("ALL_UPSTREAM_TASKS_SUCCEEDED", "ALL_UPSTREAM_TASKS_COMPLETED"):
            raise self.fail(f"{what} uses triggerPolicy.strategy {strategy}")
        deps: list[str] = []
        for dep in kt.get("dependentTasks") or []:
            if dep not in nodes:
                raise self.fail(f"{what} depends on unknown task {dep!r}")
            if nodes[dep].branches:
                continue  # the producers of its dsl.OneOf come in with the inputs
            deps += [d for d in nodes[dep].leaves if d not in deps]
        if "dag" in kcomp:
            return self._group(tname, kt, kcomp, scope, nodes, deps, strategy)
        if kt.get("parameterIterator") or kt.get("iteratorPolicy"):
            raise self.fail(f"{what} has a parameterIterator but its component is not a DAG")
        if trigger.get("condition"):
            raise self.fail(f"{what} has a triggerPolicy.condition but is not a condition group")
        return self._leaf(tname, kt, cname, kcomp, scope, nodes, deps, strategy)

    def _flat(self, tname: str, scope: _Scope) -> str:
        name = tname
        if name in self.used:
            name = f"{scope.path.split('/')[-1]}-{tname}"
            n = 1
            while name in self.used:
                n += 1
                name = f"{scope.path.split('/')[-1]}-{tname}-{n}"
        self.used.add(name)
        return name

    # -- groups: conditions, loops, exit handlers, nested pipelines ----------------------------

    def _group(
        self,
        tname: str,
        kt: Obj,
        kcomp: Obj,
        scope: _Scope,
        nodes: dict[str, _Node],
        deps: list[str],
        strategy: str,
    ) -> _Node:
        what = f"task {tname!r}"
        if strategy != "ALL_UPSTREAM_TASKS_SUCCEEDED":
            raise self.fail(f"{what}: a group with triggerPolicy.strategy {strategy}")
        env = self._group_env(tname, kt, kcomp, scope, nodes)
        inner = _Scope(
            path=f"{scope.path}/{tname}",
            comp=kcomp,
            env=env,
            when=list(scope.when),
            deps=list(scope.deps) + [d for d in deps if d not in scope.deps],
            loop=scope.loop,
        )
        cond = (kt.get("triggerPolicy") or {}).get("condition")
        if cond:
            clauses = _cel(str(cond), lambda n: self._lookup(inner, n, what), self.fail, what)
            inner.when += clauses
            for c in clauses:
                for side in (c["left"], c["right"]):
                    inner.deps += [p for p in _producers(side) if p not in inner.deps]
        iterator = kt.get("parameterIterator")
        if iterator:
            items = iterator.get("items") or {}
            if "raw" in items:
                try:
                    ref: Obj = {"value": json.loads(items["raw"])}
                except ValueError:
                    raise self.fail(f"{what} loop items are not JSON: {items['raw']!r}") from None
            elif "inputParameter" in items:
                ref = self._lookup(inner, str(items["inputParameter"]), what)
            else:
                raise self.fail(f"{what} loop items use {', '.join(items)}, not supported")
            loop = dns_name(tname)
            spec: Obj = {"items": ref}
            limit = int((kt.get("iteratorPolicy") or {}).get("parallelismLimit") or 0)
            if limit > 0:
                spec["parallelism"] = limit
            if scope.loop:  # a ParallelFor inside another: one loop per outer item
                spec["parent"] = scope.loop
            self.loops[loop] = spec
            inner.loop = loop
            inner.item_input = str(iterator.get("itemInput") or "")
            inner.deps += [p for p in _producers(ref) if p not in inner.deps]
        elif kt.get("iteratorPolicy"):
            raise self.fail(f"{what} has an iteratorPolicy without a parameterIterator")
        children = self._dag(kcomp, inner)
        leaves = [leaf for child in children.values() for leaf in child.leaves]
        outputs = kcomp.get("dag") or {}
        looped = inner.loop if iterator else None

        def output(key: str, kind: str) -> Obj:
            sel = ((outputs.get("outputs") or {}).get(kind + "s") or {}).get(key)
            if sel is None:
                raise self.fail(f"group {tname!r} has no {kind} output {key!r}")
            ref = self._selected(sel, children, f"group {tname!r} output {key!r}", kind)
            if looped:
                if "task" not in ref:
                    raise self.fail(
                        f"group {tname!r} output {key!r}: collecting {ref} is not supported"
                    )
                return {"collected": ref}
            return ref

        return _Node(leaves=leaves, output=output, branches=tname.startswith("condition-branches"))

    def _group_env(
        self, tname: str, kt: Obj, kcomp: Obj, scope: _Scope, nodes: dict[str, _Node]
    ) -> dict[str, Callable[[], Obj]]:
        """The group's input names → lazily resolved refs (KFP passes some it never uses)."""
        env: dict[str, Callable[[], Obj]] = {}
        inputs = kt.get("inputs") or {}
        for kind in ("parameters", "artifacts"):
            for name, kin in (inputs.get(kind) or {}).items():
                what = f"task {tname!r} input {name!r}"
                env[name] = _memo(functools.partial(self._input, kin, scope, nodes, what))
        defs = kcomp.get("inputDefinitions") or {}
        for name, pdef in (defs.get("parameters") or {}).items():
            if name not in env and "defaultValue" in pdef:
                ptype = self._ptype(pdef, f"task {tname!r} input {name!r}")
                value = _coerce(pdef["defaultValue"], ptype)
                env[name] = _const({"value": value})
        return env

    def _lookup(self, scope: _Scope, name: str, what: str) -> Obj:
        if scope.item_input and name == scope.item_input and scope.loop:
            return {"loopItem": scope.loop}
        if name not in scope.env:
            raise self.fail(f"{what} reads {name!r}, which its DAG ({scope.path}) does not have")
        return scope.env[name]()

    def _input(self, kin: Obj, scope: _Scope, nodes: dict[str, _Node], what: str) -> Obj:
        keys = set(kin) - {"parameterExpressionSelector"}
        selector = kin.get("parameterExpressionSelector")
        if "runtimeValue" in kin:
            rv = kin["runtimeValue"] or {}
            if "constant" not in rv:
                raise self.fail(f"{what} uses runtimeValue {', '.join(rv)}")
            ref: Obj = {"value": rv["constant"]}
        elif "componentInputParameter" in kin:
            ref = self._lookup(scope, str(kin["componentInputParameter"]), what)
        elif "componentInputArtifact" in kin:
            ref = self._lookup(scope, str(kin["componentInputArtifact"]), what)
        elif "taskOutputParameter" in kin or "taskOutputArtifact" in kin:
            art = "taskOutputArtifact" in kin
            v = kin["taskOutputArtifact" if art else "taskOutputParameter"]
            producer = v.get("producerTask")
            key = v.get("outputArtifactKey" if art else "outputParameterKey")
            if producer not in nodes:
                raise self.fail(f"{what} reads task {producer!r}, which is not in its DAG")
            ref = nodes[producer].output(str(key), "artifact" if art else "parameter")
        else:
            feature = ", ".join(sorted(keys)) or "an empty input"
            raise self.fail(f"{what} uses {feature}, which Shipyard does not support")
        if selector:
            m = _SELECTOR.match(str(selector).strip())
            if not m:
                raise self.fail(f"{what} uses parameterExpressionSelector {selector!r}")
            if "loopItem" in ref and "field" not in ref:
                ref = {**ref, "field": m.group(1)}
            elif "value" in ref and isinstance(ref["value"], dict):
                ref = {"value": ref["value"].get(m.group(1))}
            else:
                raise self.fail(f"{what}: selecting a field of {ref} is not supported")
        return ref

    # -- leaf tasks -------------------------------------------------------------------------------

    def _leaf(
        self,
        tname: str,
        kt: Obj,
        cname: str,
        kcomp: Obj,
        scope: _Scope,
        nodes: dict[str, _Node],
        deps: list[str],
        strategy: str,
    ) -> _Node:
        what = f"task {tname!r}"
        label = str(kcomp.get("executorLabel") or "")
        executor = self.executors.get(label)
        if executor is None:
            raise self.fail(f"{what}: component {cname!r} has no executor {label!r}")
        key = _component_key(cname)
        container: Obj = executor.get("container") or {}
        if "importer" in executor:
            comp = self._component(key, kcomp, container, what, importer=executor["importer"])
        elif "container" in executor:
            extra = sorted(set(container) - CONTAINER_KEYS)
            if extra:
                raise self.fail(f"{what}: executor {label!r} uses {', '.join(extra)}")
            comp = self._component(key, kcomp, container, what)
        else:
            kind = ", ".join(executor) or "empty"
            hint = {"resolver": " (a resolver)"}.get(kind, "")
            raise self.fail(f"{what} uses a {kind} executor{hint}, which is not supported")
        if key in self.comps and self.comps[key]["digest"] != comp["digest"]:
            raise self.fail(f"two components translate to the name {key!r}")
        self.comps[key] = comp
        flat = self._flat(tname, scope)
        task: Obj = {"name": flat, "component": key}
        display = (kt.get("taskInfo") or {}).get("name")
        if display and display != flat:
            task["displayName"] = str(display)
        inputs: Obj = {}
        producers: list[str] = []
        final = False
        kin_all = kt.get("inputs") or {}
        extra = sorted(set(kin_all) - {"parameters", "artifacts"})
        if extra:
            raise self.fail(f"{what} inputs use {', '.join(extra)}")
        for kind in ("parameters", "artifacts"):
            for name, kin in (kin_all.get(kind) or {}).items():
                port = comp["inputs"].get(name)
                if port is None:
                    raise self.fail(f"{what} passes {name!r}, which {cname!r} does not declare")
                if "taskFinalStatus" in kin:
                    final = True
                    inputs[name] = {"finalStatus": True}
                    continue
                ref = self._input(kin, scope, nodes, f"{what} input {name!r}")
                if "value" in ref and not port.get("artifact"):
                    ref = {"value": _coerce(ref["value"], port["type"])}
                inputs[name] = ref
                producers += [p for p in _producers(ref) if p not in producers]
        if inputs:
            task["inputs"] = inputs
        exit_for: list[str] | None = None
        if strategy == "ALL_UPSTREAM_TASKS_COMPLETED" or final:
            if not deps:
                raise self.fail(f"{what} is an exit task (taskFinalStatus) with no guarded tasks")
            exit_for = deps
            deps = []
        all_deps = [d for d in scope.deps + deps + producers if d != flat]
        all_deps = sorted(set(all_deps) - set(exit_for or []))
        if all_deps:
            task["dependsOn"] = all_deps
        if scope.when:
            task["when"] = list(scope.when)
        if scope.loop:
            task["loop"] = scope.loop
        if exit_for is not None:
            task["exitFor"] = exit_for
        retry = kt.get("retryPolicy") or {}
        if int(retry.get("maxRetryCount") or 0) > 0:
            task["retry"] = {
                k: retry[k]
                for k in ("maxRetryCount", "backoffDuration", "backoffFactor", "backoffMaxDuration")
                if k in retry
            }
        if not (kt.get("cachingOptions") or {}).get("enableCache") or "importer" in executor:
            # (an importer reads its URI each time: a cached copy could be stale)
            task["cache"] = False
        resources = _resources(container.get("resources") or {}, self.fail, what)
        if resources:
            task["resources"] = resources
        env = {str(e["name"]): str(e.get("value", "")) for e in container.get("env") or []}
        if env:
            task["env"] = dict(sorted(env.items()))
        selector = ((self.platform.get(label) or {}).get("nodeSelector") or {}).get("labels")
        if selector:
            task["nodeSelector"] = dict(sorted(selector.items()))
        refs = self._env_refs(self.platform.get(label) or {}, what)
        if refs:
            task["envFrom"] = refs
        tolerations = (self.platform.get(label) or {}).get("tolerations") or []
        if tolerations:
            task["tolerations"] = [_toleration(t) for t in tolerations]
        self.tasks.append(task)

        def output(key: str, kind: str) -> Obj:
            if key not in comp["outputs"]:
                raise self.fail(f"task {flat!r} has no output {key!r}")
            return {"task": flat, "output": key}

        return _Node(leaves=[flat], output=output)

    # -- components -------------------------------------------------------------------------------

    def _component(
        self, key: str, kcomp: Obj, container: Obj, what: str, importer: Obj | None = None
    ) -> Obj:
        inputs: Obj = {}
        outputs: Obj = {}
        for side, ports in (("input", inputs), ("output", outputs)):
            defs = kcomp.get(f"{side}Definitions") or {}
            for name, pdef in (defs.get("parameters") or {}).items():
                ptype = self._ptype(pdef, f"{what} {side} {name!r}")
                port: Obj = {"type": ptype}
                if side == "input" and "defaultValue" in pdef:
                    port["default"] = _coerce(pdef["defaultValue"], ptype)
                ports[name] = port
            for name, adef in (defs.get("artifacts") or {}).items():
                if adef.get("isArtifactList"):
                    raise self.fail(f"{what} {side} {name!r} is a list of artifacts (List[...])")
                title = str((adef.get("artifactType") or {}).get("schemaTitle") or "")
                ports[name] = {"type": ARTIFACT_CLASSES.get(title, "Artifact"), "artifact": True}
        command = [str(c) for c in container.get("command") or []]
        args = [str(a) for a in container.get("args") or []]
        body: Obj
        if importer is not None:
            body = self._importer(importer, inputs, outputs, what)
        elif any("kfp.dsl.executor_main" in c for c in command):
            body = self._lightweight(command, args, inputs, outputs, what)
        else:
            body = self._container(command, args, inputs, outputs, what)
        body["inputs"] = inputs
        body["outputs"] = outputs
        if container.get("image"):
            body["image"] = str(container["image"])
        body["kfp"] = {"component": key}
        body["digest"] = "sha256:" + hashlib.sha256(_canon(body)).hexdigest()
        return body

    def _lightweight(
        self, command: list[str], args: list[str], inputs: Obj, outputs: Obj, what: str
    ) -> Obj:
        idx = next(i for i, c in enumerate(command) if "kfp.dsl.executor_main" in c)
        if idx + 1 >= len(command) or "def " not in command[idx + 1]:
            raise self.fail(
                f"{what} is a containerized Python component (its source is in the image, "
                "not in the IR); only lightweight components (source embedded) can run"
            )
        source = command[idx + 1]
        try:
            fn = args[args.index("--function_to_execute") + 1]
        except (ValueError, IndexError):
            raise self.fail(f"{what}: no --function_to_execute in the executor args") from None
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            raise self.fail(
                f"{what}: the embedded component source does not parse: {exc}"
            ) from None
        fdef = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == fn), None)
        if fdef is None:
            raise self.fail(f"{what}: the embedded source defines no function {fn!r}")
        paths: Obj = {}
        for a in fdef.args.args + fdef.args.kwonlyargs:
            kind = _path_annotation(a.annotation)
            if kind is None:
                continue
            port = inputs.get(a.arg) if kind == "InputPath" else outputs.get(a.arg)
            if port is None:
                raise self.fail(f"{what}: {kind} parameter {a.arg!r} is not in the component")
            side = "in" if kind == "InputPath" else "out"
            paths[a.arg] = f"{side}-artifact" if port.get("artifact") else f"{side}-param"
        contract = {
            "function": fn,
            "paths": paths,
            "types": {n: p["type"] for n, p in inputs.items() if not p.get("artifact")},
            "outputs": {n: p["type"] for n, p in outputs.items() if not p.get("artifact")},
        }
        entry = f"_kfp_entry_{fn}"
        wrapper = (
            f"\n\ndef {entry}(**kwargs):\n"
            "    from shipyard.pipelines.kfp import run_component\n\n"
            f"    return run_component({fn}, kwargs, {contract!r})\n"
        )
        user = _rewrite_imports(source).strip("\n") + "\n"
        body: Obj = {
            "function": entry,
            "source": user + wrapper,
            "imports": sorted(m for m in _imports(user) if m.split(".")[0] != "shipyard"),
        }
        packages = _packages(command)
        if packages:
            body["packages"] = packages
        return body

    def _env_refs(self, conf: Obj, what: str) -> list[Obj]:
        """kfp-kubernetes' secretAsEnv / configMapAsEnv: env from Secret and ConfigMap keys,
        as a ``shipyard.kubernetes.use_secret_as_env`` task has them."""
        out: list[Obj] = []
        for key, kind, name_key, item_key in (
            ("secretAsEnv", "secretKeyRef", "secretName", "secretKey"),
            ("configMapAsEnv", "configMapKeyRef", "configMapName", "configMapKey"),
        ):
            for entry in conf.get(key) or []:
                name = entry.get(name_key)
                by_param = (entry.get(name_key + "Parameter") or {}).get("componentInputParameter")
                if by_param or not name:
                    raise self.fail(
                        f"{what}: a {key} name from a pipeline parameter is not supported"
                    )
                for pair in entry.get("keyToEnv") or []:
                    ref: Obj = {"name": str(name), "key": str(pair[item_key])}
                    if entry.get("optional"):
                        ref["optional"] = True
                    out.append({"name": str(pair["envVar"]), kind: ref})
        return out

    def _importer(self, spec: Obj, inputs: Obj, outputs: Obj, what: str) -> Obj:
        """A dsl.importer node: the component that copies its URI into the store."""
        uri = spec.get("artifactUri") or {}
        if "runtimeParameter" in uri:
            name: str | None = str(uri["runtimeParameter"])
            if name not in inputs:
                raise self.fail(f"{what}: the importer's URI input {name!r} is not declared")
            const = ""
        elif "constant" in uri:
            name, const = None, str(uri["constant"])
        else:
            raise self.fail(f"{what}: the importer has no artifactUri")
        if list(outputs) != ["artifact"]:
            raise self.fail(f"{what}: an importer outputs one artifact, named 'artifact'")
        meta = spec.get("metadata") or {}
        if "{{$" in json.dumps(meta):
            raise self.fail(f"{what}: importer metadata with placeholders is not supported")
        return importer_body(name, const, dict(meta))

    def _container(
        self, command: list[str], args: list[str], inputs: Obj, outputs: Obj, what: str
    ) -> Obj:
        if not command and not args:
            raise self.fail(f"{what}: a container component with no command or args")
        for text in command + args:
            for ph in re.findall(r"\{\{\$[^}]*\}\}", text):
                if not _PLACEHOLDER.fullmatch(ph):
                    raise self.fail(f"{what} uses the placeholder {ph}, which is not supported")
        return container_body(command, args, inputs, outputs)


def container_body(command: list[Any], args: list[Any], inputs: Obj, outputs: Obj) -> Obj:
    """The component body that runs a container component's command (kfp's placeholders in
    it, and Concat / IfPresent items as the IR writes them) through :func:`run_container`,
    for a kfp IR container component and a ``@dsl.container_component`` alike."""
    contract = {
        "command": command,
        "args": args,
        "types": {n: p["type"] for n, p in inputs.items() if not p.get("artifact")},
        "defaults": {n: p["default"] for n, p in inputs.items() if "default" in p},
        "outputs": {n: p["type"] for n, p in outputs.items() if not p.get("artifact")},
    }
    return {
        "function": "_kfp_container",
        "source": (
            "def _kfp_container(**kwargs):\n"
            "    from shipyard.pipelines.kfp import run_container\n\n"
            f"    return run_container(kwargs, {contract!r})\n"
        ),
        "imports": [],
    }


# ---------------------------------------------------------------------------------------------
# Helpers (translation time)


_PLACEHOLDER = re.compile(
    r"\{\{\$\.(?:inputs\.parameters\['[^']+'\]"
    r"|inputs\.artifacts\['[^']+'\]\.(?:path|uri|metadata)"
    r"|outputs\.artifacts\['[^']+'\]\.(?:path|uri|metadata)"
    r"|outputs\.parameters\['[^']+'\]\.output_file)\}\}"
)


# kfp-kubernetes' per-executor settings this platform takes.
PLATFORM_KEYS = ("nodeSelector", "secretAsEnv", "configMapAsEnv", "tolerations")


def _toleration(t: Obj) -> Obj:
    """kfp-kubernetes' toleration as a Pod's (tolerationSeconds as a number)."""
    out = {k: t[k] for k in ("key", "operator", "value", "effect") if t.get(k)}
    if t.get("tolerationSeconds") is not None:
        out["tolerationSeconds"] = int(t["tolerationSeconds"])
    return out


def _canon(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def dns_name(name: str) -> str:
    """``name`` as a resource name: lowercase letters, digits and ``-``, at most 63."""
    s = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return (s or "kfp-pipeline")[:63].rstrip("-")


def _component_key(cname: str) -> str:
    return cname[5:] if cname.startswith("comp-") else cname


def _const(ref: Obj) -> Callable[[], Obj]:
    return lambda: ref


def _memo(fn: Callable[[], Obj]) -> Callable[[], Obj]:
    cache: list[Obj] = []

    def get() -> Obj:
        if not cache:
            cache.append(fn())
        return cache[0]

    return get


def _producers(ref: Obj) -> list[str]:
    if "task" in ref:
        return [str(ref["task"])]
    if "collected" in ref:
        return [str(ref["collected"]["task"])]
    if "oneOf" in ref:
        return [str(r["task"]) for r in ref["oneOf"]]
    return []


def _coerce(value: Any, ptype: str) -> Any:
    """Ints stay ints: KFP writes ``2.0`` for an int default or constant (#9442)."""
    if ptype == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if ptype == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _topo(ktasks: Obj, fail: Callable[[str], KfpError]) -> list[str]:
    def needs(kt: Obj) -> set[str]:
        out = set(kt.get("dependentTasks") or [])
        inputs = kt.get("inputs") or {}
        for kind in ("parameters", "artifacts"):
            for kin in (inputs.get(kind) or {}).values():
                for ref in ("taskOutputParameter", "taskOutputArtifact", "taskFinalStatus"):
                    if ref in kin and kin[ref].get("producerTask"):
                        out.add(kin[ref]["producerTask"])
        return out

    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise fail(f"tasks depend on each other in a cycle: {' -> '.join([*chain, name])}")
        state[name] = 1
        for dep in sorted(needs(ktasks[name])):
            if dep in ktasks:
                visit(dep, [*chain, name])
        state[name] = 2
        order.append(name)

    for name in ktasks:
        visit(name, [])
    return order


_CMP = re.compile(r"(==|!=|<=|>=|<|>)")


def _cel(
    text: str,
    lookup: Callable[[str], Obj],
    fail: Callable[[str], KfpError],
    what: str,
) -> list[Obj]:
    """Shipyard ``when`` clauses for the CEL KFP emits: ``a && !(b) && c`` of comparisons."""
    if "||" in text:
        raise fail(f"{what} condition {text!r} uses ||, which is not supported")
    clauses = []
    for part in _split_and(text, fail, what):
        part = part.strip()
        negate = False
        while part.startswith("!"):
            negate = not negate
            part = part[1:].strip()
        part = _strip_parens(part)
        if "&&" in part:
            raise fail(f"{what} condition {text!r}: a negated conjunction is not supported")
        pieces = _split_cmp(part)
        if pieces is None:
            raise fail(f"{what} condition {part!r} is not a comparison Shipyard understands")
        left, op, right = pieces
        clause: Obj = {
            "left": _cel_operand(left, lookup, fail, what),
            "op": op,
            "right": _cel_operand(right, lookup, fail, what),
        }
        if negate:
            clause["negate"] = True
        clauses.append(clause)
    return clauses


def _split_and(text: str, fail: Callable[[str], KfpError], what: str) -> list[str]:
    parts, depth, quote, start, i = [], 0, "", 0, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif text.startswith("&&", i) and depth == 0:
            parts.append(text[start:i])
            start = i + 2
            i += 1
        i += 1
    if depth or quote:
        raise fail(f"{what} condition {text!r} does not parse")
    parts.append(text[start:])
    return parts


def _strip_parens(text: str) -> str:
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(text) - 1:
                return text
        text = text[1:-1].strip()
    return text


def _split_cmp(text: str) -> tuple[str, str, str] | None:
    depth, quote = 0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0:
            m = _CMP.match(text, i)
            if m:
                return text[:i].strip(), m.group(1), text[m.end() :].strip()
        i += 1
    return None


_PARAM_REF = re.compile(r"""^inputs\.parameter_values\[\s*(['"])(.+?)\1\s*\]$""")
_CAST = re.compile(r"^(int|double|string|bool|uint)\((.*)\)$", re.S)


def _cel_operand(
    text: str, lookup: Callable[[str], Obj], fail: Callable[[str], KfpError], what: str
) -> Obj:
    text = _strip_parens(text.strip())
    cast = _CAST.match(text)
    if cast:
        inner = _cel_operand(cast.group(2), lookup, fail, what)
        if "value" in inner:
            try:
                conv = {"int": int, "uint": int, "double": float, "string": str, "bool": bool}
                return {"value": conv[cast.group(1)](inner["value"])}
            except (TypeError, ValueError):
                raise fail(f"{what} condition: cannot apply {text!r}") from None
        return inner
    m = _PARAM_REF.match(text)
    if m:
        return lookup(m.group(2))
    if text in ("true", "false"):
        return {"value": text == "true"}
    if text == "null":
        return {"value": None}
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        try:
            return {"value": ast.literal_eval(text)}
        except (ValueError, SyntaxError):
            raise fail(f"{what} condition: cannot read the string {text}") from None
    try:
        return {"value": int(text)}
    except ValueError:
        pass
    try:
        return {"value": float(text)}
    except ValueError:
        pass
    raise fail(f"{what} condition operand {text!r} is not supported")


def _resources(res: Obj, fail: Callable[[str], KfpError], what: str) -> Obj:
    out: Obj = {}

    def put(part: str, name: str, value: Any) -> None:
        if value in (None, "", 0, 0.0):
            return
        out.setdefault(part, {})[name] = str(value)

    put("limits", "cpu", res.get("resourceCpuLimit") or res.get("cpuLimit"))
    put("requests", "cpu", res.get("resourceCpuRequest") or res.get("cpuRequest"))
    mem_limit = res.get("resourceMemoryLimit")
    if not mem_limit and res.get("memoryLimit"):
        mem_limit = f"{res['memoryLimit']}G"
    put("limits", "memory", mem_limit)
    mem_req = res.get("resourceMemoryRequest")
    if not mem_req and res.get("memoryRequest"):
        mem_req = f"{res['memoryRequest']}G"
    put("requests", "memory", mem_req)
    acc = res.get("accelerator") or {}
    count = acc.get("resourceCount") or acc.get("count")
    if count:
        kind = str(acc.get("resourceType") or acc.get("type") or "nvidia.com/gpu")
        if "/" not in kind:
            raise fail(
                f"{what} asks for accelerator type {kind!r}; use a Kubernetes resource name "
                "such as nvidia.com/gpu"
            )
        put("limits", kind, int(count))
    known = {
        "resourceCpuLimit",
        "cpuLimit",
        "resourceCpuRequest",
        "cpuRequest",
        "resourceMemoryLimit",
        "memoryLimit",
        "resourceMemoryRequest",
        "memoryRequest",
        "accelerator",
    }
    extra = sorted(set(res) - known)
    if extra:
        raise fail(f"{what} uses resources {', '.join(extra)}, which are not supported")
    return out


def _path_annotation(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Call):
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
        if name in ("InputPath", "OutputPath"):
            return str(name)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _path_annotation(ast.parse(node.value, mode="eval").body)
    return None


_IMPORT_RULES = (
    (re.compile(r"^(\s*)import kfp(\.dsl)?\s*$", re.M), r"\1pass"),
    (
        re.compile(r"^(\s*)from kfp import dsl\s*$", re.M),
        r"\1from shipyard.pipelines.kfp import dsl",
    ),
    (
        re.compile(r"^(\s*)from kfp\.dsl import \*\s*$", re.M),
        r"\1from shipyard.pipelines.kfp import InputPath, OutputPath",
    ),
    (
        re.compile(r"^(\s*)from kfp\.dsl import (.+)$", re.M),
        r"\1from shipyard.pipelines.kfp import \2",
    ),
)


def _rewrite_imports(source: str) -> str:
    for pattern, repl in _IMPORT_RULES:
        source = pattern.sub(repl, source)
    return source


def _imports(source: str) -> list[str]:
    mods: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            mods.add(node.module)
    return sorted(mods)


def _packages(command: list[str]) -> list[str]:
    """``packages_to_install`` from the pip line KFP puts before the component."""
    out: list[str] = []
    for text in command:
        for m in re.finditer(r"pip install ([^\n&]*)", text):
            try:
                words = shlex.split(m.group(1))
            except ValueError:
                continue
            skip = False
            for w in words:
                if skip:
                    skip = False
                    continue
                if w in ("--index-url", "--extra-index-url", "--trusted-host", "-i"):
                    skip = True
                    continue
                if w.startswith("-") or w.startswith("kfp==") or w.startswith("typing-extensions"):
                    continue
                if w.split(";")[0].strip() and w not in out:
                    out.append(w)
    return out


# ---------------------------------------------------------------------------------------------
# Runtime: inside the task's process (called from the generated entry functions)


class InputPath:
    """kfp's ``dsl.InputPath(type)``: the function receives a file path."""

    def __init__(self, type: Any = None) -> None:
        self.type = type


class OutputPath(InputPath):
    """kfp's ``dsl.OutputPath(type)``: the function writes its output at a file path."""


_KFP_EXTRAS = {"InputPath": InputPath, "OutputPath": OutputPath}


def _dsl_names() -> dict[str, Any]:
    from shipyard.pipelines import dsl as sdsl
    from shipyard.pipelines import types as stypes

    names = {n: getattr(sdsl, n) for n in sdsl.__all__}
    names.update({n: getattr(stypes, n) for n in stypes.ARTIFACT_TYPES})
    names.update(_KFP_EXTRAS)
    return names


def __getattr__(name: str) -> Any:
    """``from kfp.dsl import X`` in a component's source becomes an import from here."""
    if name == "dsl":
        return types.SimpleNamespace(**_dsl_names())
    names = _dsl_names()
    if name in names:
        return names[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _value_coerce(value: Any, ptype: str) -> Any:
    if ptype == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if ptype == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _read_param(path: str, ptype: str, name: str) -> Any:
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise RuntimeError(f"output parameter {name!r} was not written to {path}") from None
    if ptype == "str":
        return text
    if ptype == "bool":
        return text.strip().lower() in ("true", "1")
    if ptype == "int":
        return int(float(text.strip()))
    if ptype == "float":
        return float(text.strip())
    return json.loads(text)


def _result(result: Any, files: dict[str, str], outputs: Obj) -> Any:
    values: Obj = {n: _read_param(p, outputs[n], n) for n, p in files.items()}
    rest = [n for n in outputs if n not in files]
    if rest == ["Output"] and not files:
        return result
    if rest == ["Output"]:
        values["Output"] = result
    elif rest:
        for name in rest:
            if isinstance(result, dict) and name in result:
                values[name] = result[name]
            elif hasattr(result, name):
                values[name] = getattr(result, name)
    return types.SimpleNamespace(**values)


def run_component(fn: Callable[..., Any], kwargs: Obj, contract: Obj) -> Any:
    """Call a lightweight KFP component's function with KFP's calling contract. Parameter
    files go in a temporary folder, removed once the outputs are read."""
    args: Obj = {}
    tmp: str | None = None
    files: dict[str, str] = {}
    try:
        for name, value in kwargs.items():
            kind = contract["paths"].get(name)
            if kind in ("in-artifact", "out-artifact"):
                value = value.path
            elif kind == "in-param":
                tmp = tmp or tempfile.mkdtemp(prefix="kfp-")
                path = os.path.join(tmp, "in-" + name)
                with open(path, "w") as f:
                    f.write(value if isinstance(value, str) else json.dumps(value))
                value = path
            elif name in contract["types"]:
                value = _value_coerce(value, contract["types"][name])
            args[name] = value
        for name, kind in contract["paths"].items():
            if kind == "out-param":
                tmp = tmp or tempfile.mkdtemp(prefix="kfp-")
                files[name] = args[name] = os.path.join(tmp, "out-" + name)
        return _result(fn(**args), files, contract["outputs"])
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


_SUBST = re.compile(
    r"\{\{\$\.(inputs|outputs)\.(parameters|artifacts)\['([^']+)'\]"
    r"(?:\.(path|uri|metadata|output_file))?\}\}"
)


def _render(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def run_container(kwargs: Obj, contract: Obj) -> Any:
    """Run a KFP container component's command with its placeholders substituted. Its output
    parameter files go in a temporary folder, removed once they are read."""
    tmp = tempfile.mkdtemp(prefix="kfp-")
    files: dict[str, str] = {}
    params = {**contract["defaults"], **kwargs}

    def present(name: str) -> bool:
        return params.get(name) is not None

    def sub(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            side, kind, name, attr = m.groups()
            if kind == "parameters" and side == "inputs":
                if name not in params:
                    raise RuntimeError(f"input parameter {name!r} has no value")
                return _render(_value_coerce(params[name], contract["types"].get(name, "any")))
            if kind == "parameters":
                path = files.setdefault(name, os.path.join(tmp, "outputs", name, "data"))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                return path
            art = kwargs.get(name)
            if art is None:
                raise RuntimeError(f"{side[:-1]} artifact {name!r} has no value")
            if attr == "metadata":
                return json.dumps(art.metadata)
            if attr == "uri":
                return str(art.uri or art.path)
            os.makedirs(os.path.dirname(art.path) or ".", exist_ok=True)
            return str(art.path)

        return _SUBST.sub(one, text)

    def expand(items: list[Any]) -> list[str]:
        out: list[str] = []
        for item in items:
            spec = None
            if isinstance(item, str) and item.startswith("{") and item.endswith("}"):
                try:
                    spec = json.loads(item)
                except ValueError:
                    spec = None
            if isinstance(item, dict):
                spec = item
            if isinstance(spec, dict) and "IfPresent" in spec:
                cond = spec["IfPresent"]
                branch = cond.get("Then") if present(cond["InputName"]) else cond.get("Else")
                if isinstance(branch, str | dict):
                    branch = [branch]
                out += expand(list(branch or []))
            elif isinstance(spec, dict) and "Concat" in spec:
                out.append("".join(expand(list(spec["Concat"]))))
            else:
                out.append(sub(str(item)))
        return out

    try:
        cmd = expand(contract["command"]) + expand(contract["args"])
        proc = subprocess.run(cmd)
        if proc.returncode != 0:
            raise RuntimeError(f"container command {cmd[0]!r} exited with code {proc.returncode}")
        return _result(None, files, contract["outputs"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
