"""kfp.components' loaders (``from shipyard import components``), so a reusable component kept
as YAML works in a ``shipyard.dsl`` pipeline as it does in kfp's:

    train = components.load_component_from_file("train_component.yaml")

    @dsl.pipeline
    def p(data: str):
        train(data_uri=data)

Two formats are read: a component kfp's compiler wrote (``Compiler().compile(component,
"c.yaml")``, kfp v2's IR, lightweight Python or container), and kfp v1's component YAML
(``name``, ``inputs``, ``outputs``, ``implementation.container`` with ``inputValue``,
``inputPath``, ``outputPath``, ``concat`` and ``if``/``isPresent`` in its command).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from shipyard.pipelines.dsl import CompileError, PreparedComponent, _path_artifact
from shipyard.pipelines.types import value_from_text

Obj = dict[str, Any]

# kfp v1's type names for parameters.
_V1_PARAMS = {
    "string": "str",
    "str": "str",
    "integer": "int",
    "int": "int",
    "float": "float",
    "double": "float",
    "bool": "bool",
    "boolean": "bool",
    "jsonobject": "dict",
    "dict": "dict",
    "jsonarray": "list",
    "list": "list",
}


def load_component_from_text(text: str, where: str = "component") -> PreparedComponent:
    """The component described by ``text`` (kfp v2 IR or kfp v1 component YAML)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CompileError(f"{where}: not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise CompileError(f"{where}: a component is a YAML mapping")
    if "implementation" in doc:
        return _from_v1(doc, where)
    if "deploymentSpec" in doc and "root" in doc:
        return _from_ir(doc, where)
    raise CompileError(
        f"{where}: neither a kfp-compiled component (pipelineInfo, deploymentSpec, root) nor "
        "kfp v1 component YAML (name, inputs, outputs, implementation)"
    )


def load_component_from_file(path: str | Path) -> PreparedComponent:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise CompileError(f"cannot read component file {str(path)!r}: {exc.strerror}") from None
    return load_component_from_text(text, str(path))


def load_component_from_url(url: str) -> PreparedComponent:
    import httpx

    try:
        resp = httpx.get(url, follow_redirects=True, timeout=30)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise CompileError(f"cannot fetch component {url}: {exc}") from None
    return load_component_from_text(resp.text, url)


def _from_ir(doc: Obj, where: str) -> PreparedComponent:
    from shipyard.pipelines.kfp import translate

    tasks = ((doc.get("root") or {}).get("dag") or {}).get("tasks") or {}
    if len(tasks) != 1:
        raise CompileError(
            f"{where} is a kfp pipeline of {len(tasks)} tasks: run it with `shipyard run`, or "
            "load a file compiled from one component"
        )
    spec = translate(doc, where)["spec"]
    ((key, body),) = spec["components"].items()
    name = str(((doc.get("pipelineInfo") or {}).get("name")) or key)
    return PreparedComponent(name.replace("-", "_"), body)


def _from_v1(doc: Obj, where: str) -> PreparedComponent:
    from shipyard.pipelines.kfp import container_body

    name = str(doc.get("name") or "component")
    impl = (doc.get("implementation") or {}).get("container")
    if not isinstance(impl, dict):
        raise CompileError(f"{where}: implementation.container is missing (graph components "
                           "are not supported)")  # fmt: skip
    used_as_path: set[str] = set()

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            if "inputPath" in item:
                used_as_path.add(str(item["inputPath"]))
            for value in item.values():
                walk(value)
        elif isinstance(item, list):
            for value in item:
                walk(value)

    walk([impl.get("command"), impl.get("args")])
    inputs: Obj = {}
    for spec in doc.get("inputs") or []:
        port_name = str(spec["name"])
        kind = str(spec.get("type") or "String")
        if port_name in used_as_path:
            inputs[port_name] = {"type": _path_artifact(kind) or "Artifact", "artifact": True}
            continue
        port: Obj = {"type": _V1_PARAMS.get(kind.lower(), "str")}
        if "default" in spec:
            port["default"] = _v1_default(spec["default"], port["type"], where)
        elif spec.get("optional"):
            port["default"] = None
        inputs[port_name] = port
    outputs: Obj = {}
    for spec in doc.get("outputs") or []:
        kind = str(spec.get("type") or "String")
        param = _V1_PARAMS.get(kind.lower())
        out_name = str(spec["name"])
        if param:
            outputs[out_name] = {"type": param}
        else:
            outputs[out_name] = {"type": _path_artifact(kind) or "Artifact", "artifact": True}

    def convert(item: Any) -> Any:
        if isinstance(item, str | int | float) and not isinstance(item, bool):
            return str(item)
        if isinstance(item, dict) and len(item) == 1:
            ((op, arg),) = item.items()
            if op == "inputValue":
                return f"{{{{$.inputs.parameters['{arg}']}}}}"
            if op == "inputPath":
                return f"{{{{$.inputs.artifacts['{arg}'].path}}}}"
            if op == "outputPath":
                if arg not in outputs:
                    raise CompileError(f"{where}: outputPath {arg!r} is not an output")
                if outputs[arg].get("artifact"):
                    return f"{{{{$.outputs.artifacts['{arg}'].path}}}}"
                return f"{{{{$.outputs.parameters['{arg}'].output_file}}}}"
            if op == "concat":
                return {"Concat": [convert(i) for i in arg]}
            if op == "if":
                cond = (arg.get("cond") or {}).get("isPresent")
                if cond is None:
                    raise CompileError(f"{where}: only if/isPresent conditions are supported")
                out: Obj = {"InputName": str(cond), "Then": [convert(i) for i in arg["then"]]}
                if arg.get("else") is not None:
                    out["Else"] = [convert(i) for i in arg["else"]]
                return {"IfPresent": out}
        raise CompileError(f"{where}: command item {item!r} is not supported")

    def items(key: str) -> list[str]:
        out: list[str] = []
        for raw in impl.get(key) or []:
            item = convert(raw)
            out.append(json.dumps(item, sort_keys=True) if isinstance(item, dict) else item)
        return out

    body = container_body(items("command"), items("args"), inputs, outputs)
    body.update(inputs=inputs, outputs=outputs)
    if impl.get("image"):
        body["image"] = str(impl["image"])
    if doc.get("description"):
        body["description"] = str(doc["description"])
    return PreparedComponent(name.lower().replace(" ", "_").replace("-", "_"), body)


def _v1_default(value: Any, kind: str, where: str) -> Any:
    """kfp v1 writes defaults as strings: read as an OutputPath file's content is."""
    if not isinstance(value, str):
        return value
    try:
        return value_from_text(value, kind)
    except ValueError as exc:
        raise CompileError(f"{where}: default {value!r} is not a {kind}: {exc}") from None
