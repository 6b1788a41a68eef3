"""KFP v2 IR → Shipyard Pipeline translation (no platform): shapes, ints, CEL conditions,
the runtime contract helpers, detection in the client and loader, and clear refusals."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import tempfile
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.pipelines import kfp
from shipyard.pipelines.api import resolve_parameters
from shipyard.pipelines.compiler import load
from shipyard.pipelines.sdk import _pipeline_object

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "kfp_fixtures"
HELLO = ROOT / "examples" / "pipelines" / "kfp_hello.yaml"


def ir(name: str) -> dict[str, Any]:
    path = HELLO if name == "hello" else FIXTURES / f"{name}.yaml"
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def tasks(p: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in p["spec"]["tasks"]}


def test_hello_translates_to_a_pipeline_with_int_defaults_and_outputs() -> None:
    p = kfp.translate(ir("hello"))
    assert p["kind"] == "Pipeline" and p["metadata"]["name"] == "kfp-hello"
    assert p["metadata"]["annotations"]["kfp.shipyard.dev/sdk-version"] == "kfp-2.17.0"
    spec = p["spec"]
    assert spec["description"] == "Two lightweight kfp components in a chain."
    # kfp wrote `defaultValue: 2.0` for `times: int = 2`.
    assert spec["parameters"]["times"] == {"type": "int", "default": 2}
    assert type(spec["parameters"]["times"]["default"]) is int
    assert resolve_parameters(spec, {"times": 3.0})["times"] == 3
    assert spec["outputs"] == {"Output": {"task": "shout", "output": "Output"}}
    t = tasks(p)
    assert t["shout"]["dependsOn"] == ["greet"]
    assert t["shout"]["inputs"]["text"] == {"task": "greet", "output": "Output"}
    comp = spec["components"]["greet"]
    assert comp["image"] == "python:3.11" and comp["inputs"]["times"] == {"type": "int"}
    assert "kfp" not in comp["imports"] and "import kfp" not in comp["source"]
    assert comp["digest"].startswith("sha256:")
    # Same IR, same translation (byte-identical digests).
    assert kfp.translate(ir("hello")) == p


def test_features_flatten_conditions_loops_collected_and_exit_handler() -> None:
    p = kfp.translate(ir("features"))
    spec, t = p["spec"], tasks(p)
    add_out = {"task": "add", "output": "Output"}
    threshold = {"parameter": "threshold"}
    assert t["say"]["when"] == [{"left": add_out, "op": ">", "right": threshold}]
    assert t["say-3"]["when"] == [
        {"left": add_out, "op": ">", "right": threshold, "negate": True},
        {"left": add_out, "op": "==", "right": threshold, "negate": True},
    ]
    assert "add" in t["say-2"]["dependsOn"]
    assert spec["loops"]["for-loop-6"] == {
        "items": {"task": "numbers", "output": "Output"},
        "parallelism": 2,
    }
    assert t["square"]["loop"] == "for-loop-6"
    assert t["square"]["inputs"]["x"] == {"loopItem": "for-loop-6"}
    assert t["add-2"]["inputs"]["a"] == {"loopItem": "for-loop-8", "field": "a"}
    assert spec["loops"]["for-loop-8"]["items"]["value"][1] == {"a": 20, "b": 2}
    assert t["total"]["inputs"]["values"] == {"collected": {"task": "square", "output": "Output"}}
    assert t["count-rows"]["inputs"]["rows"] == {"task": "make-dataset", "output": "rows"}
    assert spec["components"]["count-rows"]["outputs"]["metrics"] == {
        "type": "Metrics",
        "artifact": True,
    }
    report = t["report"]
    assert report["inputs"] == {"status": {"finalStatus": True}}
    assert "dependsOn" not in report and set(report["exitFor"]) == set(t) - {"report"}
    assert spec["components"]["report"]["inputs"]["status"] == {"type": "finalStatus"}


def test_ops_container_components_retry_cache_env_packages() -> None:
    p = kfp.translate(ir("ops"))
    spec, t = p["spec"], tasks(p)
    assert t["flaky"]["retry"]["maxRetryCount"] == 2 and t["flaky"]["cache"] is False
    assert t["flaky"]["inputs"]["fail_times"] == {"value": 1}  # kfp wrote 1.0
    assert type(t["flaky"]["inputs"]["fail_times"]["value"]) is int
    assert t["env-value"]["env"] == {"GREETING": "hello"}
    assert spec["components"]["env-value"]["packages"] == ["pyyaml"]
    assert spec["components"]["shout"]["function"] == "_kfp_container"
    assert spec["components"]["shout"]["image"] == "python:3.11-slim"
    assert t["report"]["exitFor"] and "guard" not in t


def test_loader_and_client_detect_kfp_ir(tmp_path: Path) -> None:
    from_file = load(FIXTURES / "ops.yaml")
    assert from_file == kfp.translate(ir("ops"))
    text = (FIXTURES / "ops.yaml").read_text()
    assert _pipeline_object(text) == from_file
    assert _pipeline_object(ir("ops")) == from_file
    assert _pipeline_object(str(FIXTURES / "ops.yaml")) == from_file
    # A Shipyard Pipeline dict is passed through unchanged.
    assert _pipeline_object(from_file) is from_file
    # JSON IR (kfp can write .json) and a kfp-kubernetes platform document with a node selector.
    (tmp_path / "p.json").write_text(json.dumps(ir("hello")))
    assert load(tmp_path / "p.json")["spec"]["tasks"] == kfp.translate(ir("hello"))["spec"]["tasks"]
    platform = {
        "platforms": {
            "kubernetes": {
                "deploymentSpec": {
                    "executors": {"exec-greet": {"nodeSelector": {"labels": {"disk": "ssd"}}}}
                }
            }
        }
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump_all([ir("hello"), platform]))
    assert tasks(load(tmp_path / "p.yaml"))["greet"]["nodeSelector"] == {"disk": "ssd"}


def test_cel_subset() -> None:
    env = {"x": {"task": "t", "output": "Output"}, "y": {"parameter": "y"}}

    def fail(msg: str) -> kfp.KfpError:
        return kfp.KfpError(msg)

    def cel(text: str) -> list[dict[str, Any]]:
        return kfp._cel(text, env.__getitem__, fail, "task 'c'")

    assert cel("inputs.parameter_values['x'] == 'heads'") == [
        {"left": env["x"], "op": "==", "right": {"value": "heads"}}
    ]
    assert cel(
        "double(inputs.parameter_values['x']) >= 0.5 && !(inputs.parameter_values['y'] != true)"
    ) == [
        {"left": env["x"], "op": ">=", "right": {"value": 0.5}},
        {"left": env["y"], "op": "!=", "right": {"value": True}, "negate": True},
    ]
    assert cel('int(inputs.parameter_values["x"]) < int("3")')[0]["right"] == {"value": 3}
    with pytest.raises(kfp.KfpError, match=r"task 'c'.*\|\|"):
        cel("inputs.parameter_values['x'] == 1 || inputs.parameter_values['x'] == 2")
    with pytest.raises(kfp.KfpError, match="not supported"):
        cel("size(inputs.parameter_values['x']) > 1")


def _refusal(doc: dict[str, Any], *needles: str) -> None:
    with pytest.raises(kfp.KfpError) as err:
        kfp.translate(doc, "p.yaml")
    for needle in needles:
        assert needle in str(err.value), str(err.value)


def test_unsupported_features_are_refused_naming_task_and_feature() -> None:
    base = ir("features")

    doc = copy.deepcopy(base)
    doc["components"]["comp-exit-handler-1"]["dag"]["tasks"]["for-loop-8"]["artifactIterator"] = {}
    _refusal(doc, "task 'for-loop-8'", "artifactIterator", "over artifacts")

    # A group output that selects nothing (an empty dsl.OneOf).
    doc = copy.deepcopy(base)
    outs = doc["components"]["comp-for-loop-6"]["dag"]["outputs"]["parameters"]
    outs["pipelinechannel--square-Output"] = {"valueFromOneof": {}}
    _refusal(doc, "pipelinechannel--square-Output", "selects no output")

    # An importer executor.
    doc = copy.deepcopy(base)
    doc["deploymentSpec"]["executors"]["exec-add"] = {"importer": {"artifactUri": {}}}
    _refusal(doc, "task 'add'", "importer")

    # Pipeline artifact inputs, a CEL ||, an unknown placeholder, a containerized component.
    doc = copy.deepcopy(base)
    doc["root"]["inputDefinitions"]["artifacts"] = {"data": {}}
    _refusal(doc, "pipeline artifact inputs", "data")
    doc = copy.deepcopy(base)
    branches = doc["components"]["comp-condition-branches-2"]["dag"]["tasks"]
    branches["condition-3"]["triggerPolicy"]["condition"] += " || true"
    _refusal(doc, "task 'condition-3'", "||")
    doc = ir("ops")
    doc["deploymentSpec"]["executors"]["exec-shout"]["container"]["args"].append(
        "{{$.pipeline_job_name}}"
    )
    _refusal(doc, "task 'shout'", "{{$.pipeline_job_name}}")
    doc = ir("hello")
    doc["deploymentSpec"]["executors"]["exec-greet"]["container"]["command"] = [
        "python3",
        "-m",
        "kfp.dsl.executor_main",
    ]
    _refusal(doc, "task 'greet'", "containerized Python component")
    doc = ir("hello")
    doc["deploymentSpec"]["executors"]["exec-greet"]["container"]["lifecycle"] = {}
    _refusal(doc, "task 'greet'", "lifecycle")
    with pytest.raises(kfp.KfpError, match="secretAsEnv"):
        platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {
            "exec-greet": {"secretAsEnv": [{}]}}}}}}  # fmt: skip
        kfp.translate_if_kfp(yaml.safe_dump_all([ir("hello"), platform]))


def test_not_kfp_is_left_alone() -> None:
    assert kfp.translate_if_kfp({"kind": "Pipeline"}) is None
    assert kfp.translate_if_kfp("kind: Pipeline\n") is None
    assert kfp.translate_if_kfp("pipelineInfo: {}\ndeploymentSpec: {}\n") is None


# -- the runtime contract (inside the task's process) ------------------------------------------


@pytest.fixture
def task_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The task process's temporary folder: the runtime contract must leave nothing in it."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_run_component_maps_paths_namedtuples_and_ints(tmp_path: Path, task_tmp: Path) -> None:
    art_in = types.SimpleNamespace(path=str(tmp_path / "in.txt"))
    Path(art_in.path).write_text("data")
    art_out = types.SimpleNamespace(path=str(tmp_path / "out.txt"))

    def fn(n: int, src: str, dst: str, note: str) -> Any:
        assert type(n) is int
        Path(dst).write_text(Path(src).read_text() + "!")
        Path(note).write_text("7")
        return {"biggest": n}

    contract = {
        "function": "fn",
        "paths": {"src": "in-artifact", "dst": "out-artifact", "note": "out-param"},
        "types": {"n": "int"},
        "outputs": {"biggest": "int", "note": "int"},
    }
    result = kfp.run_component(fn, {"n": 4.0, "src": art_in, "dst": art_out}, contract)
    assert (result.biggest, result.note) == (4, 7)
    assert Path(art_out.path).read_text() == "data!"
    single = kfp.run_component(lambda x: x + 1, {"x": 1}, {**contract, "paths": {},
                               "outputs": {"Output": "int"}})  # fmt: skip
    assert single == 2
    assert list(task_tmp.iterdir()) == []  # its parameter files went with the call


def test_run_container_substitutes_placeholders(tmp_path: Path, task_tmp: Path) -> None:
    data = types.SimpleNamespace(path=str(tmp_path / "d" / "data"), uri="", metadata={})
    contract = {
        "command": ["sh", "-c", 'printf "%s" "$0" > "$1"; printf 3 > "$2"'],
        "args": [
            '{"Concat": ["{{$.inputs.parameters[\'n\']}}", "-", "{{$.inputs.parameters[\'s\']}}"]}',
            "{{$.outputs.artifacts['data'].path}}",
            "{{$.outputs.parameters['count'].output_file}}",
        ],
        "types": {"n": "int", "s": "str"},
        "defaults": {"s": "x"},
        "outputs": {"count": "int"},
    }
    result = kfp.run_container({"n": 2.0, "data": data}, contract)
    assert Path(data.path).read_text() == "2-x" and result.count == 3
    contract["command"] = ["sh", "-c", "exit 3"]
    with pytest.raises(RuntimeError, match="exited with code 3"):
        kfp.run_container({"n": 1, "data": data}, contract)
    assert list(task_tmp.iterdir()) == []  # nor after a failure


def test_component_source_imports_point_at_shipyard() -> None:
    src = (
        "import kfp\nfrom kfp import dsl\nfrom kfp.dsl import *\n"
        "def f():\n    from kfp.dsl import (Input,\n        Output)\n    return Input, Output\n"
    )
    out = kfp._rewrite_imports(src)
    assert "kfp." not in out.replace("shipyard.pipelines.kfp", "")
    ns: dict[str, Any] = {}
    exec(out, ns)
    assert ns["dsl"].OutputPath is kfp.OutputPath and ns["f"]()[0] is not None
    assert ns["dsl"].Dataset.__name__ == "Dataset"


def _kfp_python() -> str | None:
    py = os.environ.get("KFP_PYTHON") or str(
        Path.home() / ".cache" / "shipyard" / "kfp-venv" / "bin" / "python"
    )
    return py if Path(py).exists() else None


@pytest.mark.skipif(_kfp_python() is None, reason="no kfp venv (scripts/gen-kfp-fixtures.py)")
def test_committed_fixtures_are_what_the_real_kfp_compiler_writes() -> None:
    env = {**os.environ, "KFP_PYTHON": str(_kfp_python())}
    script = ROOT / "scripts" / "gen-kfp-fixtures.py"
    r = subprocess.run(
        [str(_kfp_python()), str(script), "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
