"""components.load_component_from_*: kfp-compiled components and kfp v1 component YAML become
components a shipyard.dsl pipeline calls; what cannot be loaded is refused naming why."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from shipyard import components, dsl
from shipyard.pipelines.compiler import compile_pipeline
from shipyard.pipelines.dsl import CompileError

FIXTURES = Path(__file__).parent / "kfp_fixtures"


def test_a_kfp_compiled_lightweight_component_keeps_its_ports() -> None:
    add = components.load_component_from_file(FIXTURES / "component_add.yaml")
    assert add.name == "add"
    assert [(p.name, p.type) for p in add.inputs] == [("a", "int"), ("b", "int")]
    assert [(p.name, p.type) for p in add.outputs] == [("Output", "int")]


def test_a_kfp_v1_component_reads_its_inputs_and_outputs_from_the_command() -> None:
    wc = components.load_component_from_file(FIXTURES / "component_v1_word_count.yaml")
    assert wc.name == "word_count"
    ports = {p.name: (p.type, p.artifact, p.default) for p in wc.inputs + wc.outputs}
    empty = inspect.Parameter.empty
    assert ports == {
        "text": ("Dataset", True, empty),  # used as {inputPath: text}
        "label": ("str", False, "words"),
        "extra": ("str", False, None),  # optional
        "count": ("int", False, empty),
        "report": ("Markdown", True, empty),
    }
    spec = wc.spec()
    assert spec["image"] == "alpine:3.20" and spec["digest"].startswith("sha256:")
    assert "{{$.inputs.artifacts['text'].path}}" in spec["source"]
    assert '"IfPresent": {"Else": [""], "InputName": "extra"' in spec["source"]

    @dsl.pipeline
    def p() -> int:
        return wc(text=dsl.importer(artifact_uri="/x", artifact_class=dsl.Dataset).output).outputs[
            "count"
        ]

    tasks = compile_pipeline(p)["spec"]["tasks"]
    assert [t["name"] for t in tasks] == ["importer-dataset", "word-count"]


def test_what_cannot_be_loaded_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CompileError, match=r"cannot read component file .*missing\.yaml"):
        components.load_component_from_file(tmp_path / "missing.yaml")
    with pytest.raises(CompileError, match="neither a kfp-compiled component"):
        components.load_component_from_text("name: x\n", "x.yaml")
    with pytest.raises(CompileError, match=r"x\.yaml: not YAML"):
        components.load_component_from_text("a: [", "x.yaml")
    with pytest.raises(CompileError, match=r"is a kfp pipeline of \d+ tasks: run it"):
        components.load_component_from_file(FIXTURES / "features.yaml")
    bad = "name: b\nimplementation:\n  container:\n    image: a\n    command: [{inputUri: x}]\n"
    with pytest.raises(CompileError, match=r"command item \{'inputUri': 'x'\} is not supported"):
        components.load_component_from_text(bad, "b.yaml")
