"""The DSL and compiler: what a pipeline compiles to, and compile errors that name the tasks
and ports involved."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple, Optional

import pytest
import yaml

from shipyard import dsl
from shipyard.dsl import Dataset, Input, InputPath, Model, Output, OutputPath
from shipyard.errors import BadRequest
from shipyard.pipelines.compiler import compile_pipeline, to_yaml
from shipyard.pipelines.dsl import CompileError


@dsl.component
def produce(n: int, data: Output[Dataset]) -> str:
    return str(n)


@dsl.component
def consume_model(model: Input[Model]) -> int:
    return 1


@dsl.component
def consume_int(x: int) -> int:
    return x


def test_compile_embeds_sources_digests_and_is_deterministic() -> None:
    @dsl.pipeline
    def p(n: int = 3) -> int:
        a = produce(n=n)
        with dsl.If(a.outputs["Output"] == "3"):
            consume_int(x=n)
        with dsl.ParallelFor([1, 2], parallelism=1) as item:
            consume_int(x=item)
        return consume_int(x=n).after(a).output

    first, second = to_yaml(compile_pipeline(p)), to_yaml(compile_pipeline(p))
    assert first == second
    spec = compile_pipeline(p)["spec"]
    assert (
        "def produce(n: int, data: Output[Dataset]) -> str:"
        in spec["components"]["produce"]["source"]
    )
    assert spec["components"]["produce"]["digest"].startswith("sha256:")
    assert spec["parameters"] == {"n": {"type": "int", "default": 3}}
    tasks = {t["name"]: t for t in spec["tasks"]}
    assert tasks["consume-int"]["when"][0]["op"] == "=="
    assert tasks["consume-int-2"]["loop"] == "for-1"
    assert spec["loops"]["for-1"] == {"items": {"value": [1, 2]}, "parallelism": 1}
    assert tasks["consume-int-3"]["dependsOn"] == ["produce"]


def test_wiring_a_missing_output_names_the_task_and_port() -> None:
    @dsl.pipeline
    def p() -> None:
        a = produce(n=1)
        consume_int(x=a.outputs["nope"])

    with pytest.raises(CompileError, match=r"task 'produce' has no output 'nope'.*data, Output"):
        compile_pipeline(p)


def test_type_mismatches_name_both_tasks_and_ports() -> None:
    @dsl.pipeline
    def artifacts() -> None:
        a = produce(n=1)
        consume_model(model=a.outputs["data"])

    with pytest.raises(
        CompileError,
        match=r"task 'consume-model' input 'model' expects Model, but task 'produce' "
        r"output 'data' is Dataset",
    ):
        compile_pipeline(artifacts)

    @dsl.pipeline
    def params() -> None:
        a = produce(n=1)
        consume_int(x=a.outputs["Output"])

    with pytest.raises(
        CompileError,
        match=r"task 'consume-int' input 'x' expects int, but task 'produce' output 'Output' "
        r"is str",
    ):
        compile_pipeline(params)


def test_missing_arguments_and_constants_of_the_wrong_type() -> None:
    @dsl.pipeline
    def missing() -> None:
        consume_int()

    with pytest.raises(CompileError, match="task 'consume-int': missing argument 'x'"):
        compile_pipeline(missing)

    @dsl.pipeline
    def wrong() -> None:
        consume_int(x="seven")

    with pytest.raises(CompileError, match="input 'x': expected an int"):
        compile_pipeline(wrong)


def test_nested_pipelines_inline_with_prefixed_names() -> None:
    @dsl.pipeline
    def inner(v: int) -> int:
        return consume_int(x=v).output

    @dsl.pipeline
    def outer() -> int:
        return consume_int(x=inner(v=5)).output

    tasks = [t["name"] for t in compile_pipeline(outer)["spec"]["tasks"]]
    assert tasks == ["inner-consume-int", "consume-int"]


class Twice(NamedTuple):
    double: int
    triple: int


@dsl.pipeline
def twice(x: int) -> Twice:
    d = consume_int(x=x)
    t = consume_int(x=d.output)
    return Twice(double=d.output, triple=t.output)


def test_a_nested_pipeline_call_is_a_task_as_in_kfp() -> None:
    """kfp returns a task for a pipeline called inside another: .outputs['NAME'] of its
    NamedTuple, .after(...) on it (every task in it waits) and .after(it) on others; a
    pipeline may return a NamedTuple too."""

    @dsl.pipeline
    def outer(x: int = 2) -> Twice:
        first = consume_int(x=1)
        inner = twice(x=x).after(first).set_caching_options(False)
        total = consume_int(x=inner.outputs["triple"])
        last = consume_int(x=3).after(inner)
        return Twice(double=total.output, triple=last.output)

    spec = compile_pipeline(outer)["spec"]
    tasks = {t["name"]: t for t in spec["tasks"]}
    assert list(tasks) == ["consume-int", "twice-consume-int", "twice-consume-int-2",
                           "consume-int-2", "consume-int-3"]  # fmt: skip
    assert tasks["twice-consume-int"]["dependsOn"] == ["consume-int"]
    assert tasks["twice-consume-int-2"]["dependsOn"] == ["consume-int", "twice-consume-int"]
    assert tasks["twice-consume-int"]["cache"] is False
    assert tasks["consume-int-2"]["inputs"] == {
        "x": {"task": "twice-consume-int-2", "output": "Output"}
    }
    assert tasks["consume-int-3"]["dependsOn"] == ["twice-consume-int", "twice-consume-int-2"]
    assert spec["outputs"] == {
        "double": {"task": "consume-int-2", "output": "Output"},
        "triple": {"task": "consume-int-3", "output": "Output"},
    }


def test_a_nested_pipeline_output_that_does_not_fit_is_a_compile_error() -> None:
    @dsl.pipeline
    def single() -> None:
        consume_int(x=twice(x=1).output)

    with pytest.raises(CompileError, match=r"pipeline 'twice': \.output needs exactly one"):
        compile_pipeline(single)

    @dsl.pipeline
    def unknown() -> None:
        consume_int(x=twice(x=1).outputs["quadruple"])

    with pytest.raises(CompileError, match=r"no output 'quadruple' \(it returns: double, triple\)"):
        compile_pipeline(unknown)

    @dsl.pipeline
    def constant() -> dict:
        return {"n": 3}

    with pytest.raises(CompileError, match="pipeline output 'n' must be a task output, not int"):
        compile_pipeline(constant)


@dsl.component
def part(i: int, out: Output[Dataset]) -> None:
    pass


@dsl.component
def numbers(n: int) -> list:
    return list(range(n))


@dsl.component
def total_of(xs: list) -> int:
    return sum(xs)


@dsl.component
def gather(parts: Input[list[Dataset]]) -> int:
    return len(parts)


@dsl.component
def one(data: Input[Dataset]) -> int:
    return 1


def test_input_list_of_artifacts_takes_a_collected_loop_output() -> None:
    @dsl.pipeline
    def p() -> int:
        with dsl.ParallelFor([1, 2]) as i:
            t = part(i=i)
        return gather(parts=dsl.Collected(t.outputs["out"])).output

    spec = compile_pipeline(p)["spec"]
    assert spec["components"]["gather"]["inputs"]["parts"] == {
        "type": "Dataset",
        "artifact": True,
        "list": True,
    }
    (g,) = [t for t in spec["tasks"] if t["name"] == "gather"]
    assert g["inputs"]["parts"] == {"collected": {"task": "part", "output": "out"}}


def test_lists_of_artifacts_that_do_not_fit_are_compile_errors() -> None:
    @dsl.pipeline
    def single() -> None:
        gather(parts=part(i=1).outputs["out"])

    with pytest.raises(CompileError, match=r"input 'parts' takes a list of Dataset .* dsl\.Coll"):
        compile_pipeline(single)

    @dsl.pipeline
    def many() -> None:
        with dsl.ParallelFor([1, 2]) as i:
            t = part(i=i)
        one(data=dsl.Collected(t.outputs["out"]))

    with pytest.raises(CompileError, match=r"annotate the input Input\[List\[Dataset\]\]"):
        compile_pipeline(many)

    with pytest.raises(CompileError, match="cannot output a list of artifacts"):

        @dsl.component
        def outs(out: Output[list[Dataset]]) -> None:
            pass


def test_input_and_output_paths_compile_as_kfp_declares_them() -> None:
    """InputPath(artifact) is an artifact input, InputPath(str) a parameter; OutputPath(str)
    an output parameter, OutputPath('Model') an output artifact; the function gets a path
    for each, so the ports say so."""

    @dsl.component
    def paths(
        data: InputPath("Dataset"),
        note: InputPath(str),
        model: OutputPath("system.Model@0.0.1"),
        count: OutputPath(int),
        blob: OutputPath(),
    ) -> None:
        pass

    spec = paths.spec()
    assert spec["inputs"] == {
        "data": {"type": "Dataset", "artifact": True, "path": True},
        "note": {"type": "str", "path": True},
    }
    assert spec["outputs"] == {
        "model": {"type": "Model", "artifact": True, "path": True},
        "count": {"type": "int", "path": True},
        "blob": {"type": "Artifact", "artifact": True, "path": True},
    }

    @dsl.pipeline
    def p() -> int:
        t = paths(data=produce(n=1).outputs["data"], note="x")
        one(data=t.outputs["model"])
        return consume_int(x=t.outputs["count"]).output

    with pytest.raises(CompileError, match=r"expects Dataset, but task 'paths' output 'model'"):
        compile_pipeline(p)

    with pytest.raises(CompileError, match="two outputs are named 'Output'"):

        @dsl.component
        def clash(Output: OutputPath(str)) -> int:
            return 1


def test_optional_inputs_may_be_left_out_or_given_none() -> None:
    @dsl.component
    def opt(x: Optional[int] = None, name: str | None = "a") -> str:  # noqa: UP045  (kfp's spelling)
        return f"{x} {name}"

    assert opt.spec()["inputs"] == {
        "x": {"type": "int", "default": None},
        "name": {"type": "str", "default": "a"},
    }

    @dsl.pipeline
    def p(v: Optional[int] = None) -> str:  # noqa: UP045
        opt(x=None, name=None)
        return opt(x=v).output

    spec = compile_pipeline(p)["spec"]
    assert spec["parameters"] == {"v": {"type": "int", "default": None}}
    first, second = spec["tasks"]
    assert "inputs" not in first  # None leaves an Optional input out: its default applies
    assert second["inputs"] == {"x": {"parameter": "v"}}


def test_a_container_component_compiles_its_command_with_kfp_placeholders() -> None:
    @dsl.container_component
    def greet(name: str, data: Input[Dataset], out: Output[Model], note: OutputPath(str),
              tag: Optional[str] = None):  # fmt: skip  # noqa: UP045
        return dsl.ContainerSpec(
            image="alpine:3",
            command=["sh", "-c", f"cat {data.path} > {out.path}; echo {name} > {note}", 3],
            args=[dsl.ConcatPlaceholder(["--tag=", dsl.IfPresentPlaceholder("tag", tag, "none")])],
        )

    spec = greet.spec()
    assert spec["image"] == "alpine:3"
    assert spec["function"] == "_kfp_container"
    assert spec["inputs"] == {
        "name": {"type": "str"},
        "data": {"type": "Dataset", "artifact": True},
        "tag": {"type": "str", "default": None},
    }
    assert spec["outputs"] == {
        "out": {"type": "Model", "artifact": True},
        "note": {"type": "str"},
    }
    script = (
        "cat {{$.inputs.artifacts['data'].path}} > {{$.outputs.artifacts['out'].path}}; "
        "echo {{$.inputs.parameters['name']}} > {{$.outputs.parameters['note'].output_file}}"
    )
    assert repr(["sh", "-c", script, "3"]) in spec["source"]
    concat = {"Concat": ["--tag=", {"IfPresent": {"InputName": "tag", "Then": [
        "{{$.inputs.parameters['tag']}}"], "Else": ["none"]}}]}  # fmt: skip
    assert repr([json.dumps(concat, sort_keys=True)]) in spec["source"]


def test_container_components_that_cannot_run_are_compile_errors() -> None:
    with pytest.raises(CompileError, match=r"must return dsl\.ContainerSpec"):

        @dsl.container_component
        def nothing(x: int):
            return ["echo", x]

    with pytest.raises(CompileError, match="has no command or args"):

        @dsl.container_component
        def empty(x: int):
            return dsl.ContainerSpec(image="alpine")

    with pytest.raises(CompileError, match="IfPresentPlaceholder names no input 'y'"):

        @dsl.container_component
        def unknown(x: int):
            return dsl.ContainerSpec(image="a", args=[dsl.IfPresentPlaceholder("y", ["-y"])])

    with pytest.raises(CompileError, match="takes strings, numbers and the function's inputs"):

        @dsl.container_component
        def odd(x: int):
            return dsl.ContainerSpec(image="a", command=["echo", {"x": 1}])

    with pytest.raises(CompileError, match="parameter 'x': a container component takes"):

        @dsl.container_component
        def by_file(x: InputPath(int)):
            return dsl.ContainerSpec(image="a", command=["cat", x])


def test_dsl_importer_is_a_task_whose_output_is_the_artifact() -> None:
    @dsl.pipeline
    def p(uri: str) -> int:
        data = dsl.importer(artifact_uri=uri, artifact_class=Dataset, metadata={"k": 1})
        return one(data=data.output).output

    spec = compile_pipeline(p)["spec"]
    imp = spec["components"]["importer-dataset"]
    assert imp["outputs"] == {"artifact": {"type": "Dataset", "artifact": True}}
    assert imp["inputs"] == {
        "artifact_uri": {"type": "str"},
        "metadata": {"type": "dict", "default": {}},
    }
    task = spec["tasks"][0]
    assert task["inputs"] == {"artifact_uri": {"parameter": "uri"}, "metadata": {"value": {"k": 1}}}
    assert task["cache"] is False  # its URI's content may change between runs
    with pytest.raises(CompileError, match="artifact_class must be an artifact class"):
        compile_pipeline(dsl.pipeline(lambda: dsl.importer(artifact_uri="x", artifact_class=int)))


def test_ignore_upstream_failure_makes_a_task_follow_its_upstream_whatever_the_outcome() -> None:
    @dsl.component
    def report(x: int = -1) -> int:
        return x

    @dsl.pipeline
    def p() -> None:
        first = consume_int(x=1)
        report(x=first.output).after(produce(n=1)).ignore_upstream_failure()

    tasks = {t["name"]: t for t in compile_pipeline(p)["spec"]["tasks"]}
    rep = tasks["report"]
    assert rep["exitFor"] == ["consume-int", "produce"] and "dependsOn" not in rep

    @dsl.pipeline
    def no_default() -> None:
        consume_int(x=consume_int(x=1).output).ignore_upstream_failure()

    with pytest.raises(CompileError, match="needs a default for input 'x', which reads the output"):
        compile_pipeline(no_default)


def test_kfp_component_options_and_task_settings() -> None:
    def helper(x: int) -> int:
        return x * 2

    @dsl.component(
        target_image="registry.local/step:1",
        packages_to_install=["probe"],
        pip_index_urls=["https://a.example/simple", "https://b.example/simple"],
        pip_trusted_hosts=["a.example"],
        additional_funcs=[helper],
        use_venv=True,
        install_kfp_package=False,
        kfp_package_path="kfp==2.0",
    )
    def step(x: int) -> int:
        return helper(x)

    spec = step.spec()
    assert spec["image"] == "registry.local/step:1"
    assert spec["pipIndexUrls"] == ["https://a.example/simple", "https://b.example/simple"]
    assert spec["pipTrustedHosts"] == ["a.example"]
    assert spec["source"].startswith("def helper(x: int) -> int:")
    assert "def step(x: int) -> int:" in spec["source"]

    @dsl.pipeline
    def p() -> None:
        a = step(x=1).set_container_image("other:2").set_accelerator_limit(2)
        a.set_accelerator_type("amd.com/gpu")
        step(x=2).add_node_selector_constraint("nvidia.com/gpu").set_accelerator_limit(1)
        step(x=3).add_node_selector_constraint("disk", "ssd")

    first, second, third = compile_pipeline(p)["spec"]["tasks"]
    assert first["image"] == "other:2"
    assert first["resources"] == {"limits": {"amd.com/gpu": "2"}}
    assert second["resources"] == {"limits": {"nvidia.com/gpu": "1"}}  # kfp v2's one argument
    assert third["nodeSelector"] == {"disk": "ssd"}  # kfp v1's label and value
    with pytest.raises(CompileError, match=r"output_component_file=\.\.\.\) is not supported"):
        dsl.component(output_component_file="c.yaml")(step.python_func)


def test_one_of_takes_the_output_of_the_branch_that_ran() -> None:
    @dsl.pipeline
    def p(v: int = 1) -> int:
        with dsl.If(v > 0):
            a = consume_int(x=1)
        with dsl.Else():
            b = consume_int(x=2)
        return consume_int(x=dsl.OneOf(a.output, b)).output

    spec = compile_pipeline(p)["spec"]
    last = spec["tasks"][-1]
    refs = [
        {"task": "consume-int", "output": "Output"},
        {"task": "consume-int-2", "output": "Output"},
    ]
    assert last["inputs"] == {"x": {"oneOf": refs}}
    assert last["dependsOn"] == ["consume-int", "consume-int-2"]

    @dsl.pipeline
    def returned(v: int = 1) -> int:
        with dsl.If(v > 0):
            a = consume_int(x=1)
        with dsl.Else():
            b = consume_int(x=2)
        return dsl.OneOf(a.output, b.output)

    assert compile_pipeline(returned)["spec"]["outputs"] == {"Output": {"oneOf": refs}}


def test_one_of_outputs_that_cannot_be_merged_are_compile_errors() -> None:
    def compiled(fn: object) -> None:
        compile_pipeline(dsl.pipeline(fn))

    def unconditional() -> None:
        dsl.OneOf(consume_int(x=1).output, consume_int(x=2).output)

    with pytest.raises(CompileError, match=r"is not inside a dsl\.If/Elif/Else branch"):
        compiled(unconditional)

    def mixed(v: int = 1) -> None:
        with dsl.If(v > 0):
            a = consume_int(x=1)
        with dsl.Else():
            b = produce(n=1)
        dsl.OneOf(a.output, b.outputs["data"])

    with pytest.raises(CompileError, match="outputs must be of one type"):
        compiled(mixed)

    def alone(v: int = 1) -> None:
        with dsl.If(v > 0):
            a = consume_int(x=1)
        dsl.OneOf(a.output)

    with pytest.raises(CompileError, match="two or more tasks"):
        compiled(alone)

    def interpolated(v: int = 1) -> None:
        with dsl.If(v > 0):
            a = consume_int(x=1)
        with dsl.Else():
            b = consume_int(x=2)
        produce(n=1).set_display_name(f"{dsl.OneOf(a.output, b.output)}")

    with pytest.raises(CompileError, match="does not support string interpolation"):
        compiled(interpolated)


def test_pipeline_outputs_come_from_the_top_level_only() -> None:
    def in_if(v: int = 1) -> int:
        with dsl.If(v > 0):
            return consume_int(x=1).output
        return None  # type: ignore[unreachable]

    def in_loop() -> int:
        with dsl.ParallelFor([1, 2]) as i:
            t = consume_int(x=i)
        return t.output

    def in_handler() -> int:
        with dsl.ExitHandler(consume_int(x=0)):
            t = consume_int(x=1)
        return t.output

    for fn, group in ((in_if, "dsl.If"), (in_loop, "dsl.ParallelFor"), (in_handler, "dsl.ExitH")):
        with pytest.raises(CompileError, match=f"from the top level .* inside a {group}"):
            compile_pipeline(dsl.pipeline(fn))


def test_a_task_outside_a_branch_or_exit_handler_cannot_use_a_task_inside_it() -> None:
    """kfp's rule ("Illegal task dependency across DSL context managers"): outside the block
    it is not known whether the task ran."""

    def reads_branch(v: int = 1) -> None:
        with dsl.If(v > 0):
            inside = consume_int(x=v)
        consume_int(x=inside.output)

    def collects_loop_in_branch(v: int = 1) -> None:
        with dsl.If(v > 0), dsl.ParallelFor([1, 2]) as i:
            looped = consume_int(x=i)
        total_of(xs=dsl.Collected(looped.output))

    def after_branch(v: int = 1) -> None:
        with dsl.If(v > 0):
            inside = consume_int(x=v)
        consume_int(x=0).after(inside)

    def other_if_same_condition(v: int = 1) -> None:
        with dsl.If(v > 0):
            inside = consume_int(x=v)
        with dsl.If(v > 0):
            consume_int(x=inside.output)

    def else_reads_if(v: int = 1) -> None:
        with dsl.If(v > 0):
            inside = consume_int(x=v)
        with dsl.Else():
            consume_int(x=inside.output)

    def condition_reads_branch(v: int = 1) -> None:
        with dsl.If(v > 0):
            inside = consume_int(x=v)
        with dsl.If(inside.output > 1):
            consume_int(x=0)

    def reads_exit_handler() -> None:
        with dsl.ExitHandler(consume_int(x=0)):
            inside = consume_int(x=1)
        consume_int(x=inside.output)

    cases = [
        (reads_branch, "task 'consume-int-2' input 'x' reads task 'consume-int' output", "If"),
        (collects_loop_in_branch, "input 'xs' reads collected task 'consume-int'", "If"),
        (after_branch, "task 'consume-int-2' runs .after task 'consume-int'", "If"),
        (other_if_same_condition, "task 'consume-int-2' input 'x'", "If"),
        (else_reads_if, "task 'consume-int-2' input 'x'", "If"),
        (condition_reads_branch, "a dsl.If condition reads task 'consume-int'", "If"),
        (reads_exit_handler, "task 'consume-int-3' input 'x'", "ExitHandler"),
    ]
    for fn, what, kind in cases:
        with pytest.raises(CompileError, match=f"{what}.* inside a dsl.{kind} block that"):
            compile_pipeline(dsl.pipeline(fn))

    def fine(v: int = 1) -> None:  # inside the same block, nested ones, or through OneOf
        first = consume_int(x=v)
        with dsl.If(v > 0):
            a = consume_int(x=first.output)
            with dsl.If(a.output > 0):
                consume_int(x=a.output).after(first)
            with dsl.ParallelFor([1, 2]) as i:
                looped = consume_int(x=i)
            total_of(xs=dsl.Collected(looped.output))
        with dsl.Else():
            b = consume_int(x=0)
        consume_int(x=dsl.OneOf(a.output, b.output))

    compile_pipeline(dsl.pipeline(fine))


def test_kfp_shaped_compiler_writes_the_pipeline_yaml(tmp_path: Path) -> None:
    from shipyard import compiler

    @dsl.pipeline(name="adds")
    def adds(n: int = 3) -> int:
        return consume_int(x=n).output

    compiler.Compiler().compile(adds, tmp_path / "a.yaml")
    assert (tmp_path / "a.yaml").read_text() == to_yaml(compile_pipeline(adds))
    compiler.Compiler().compile(adds, tmp_path / "b.yaml", "renamed", {"n": 7})
    doc = yaml.safe_load((tmp_path / "b.yaml").read_text())
    assert doc["metadata"]["name"] == "renamed"
    assert doc["spec"]["parameters"] == {"n": {"type": "int", "default": 7}}
    assert doc["spec"]["digest"] != compile_pipeline(adds)["spec"]["digest"]
    with pytest.raises(CompileError, match=r"has no parameter 'm' \(parameters: n\)"):
        compiler.Compiler().compile(adds, tmp_path / "c.yaml", pipeline_parameters={"m": 1})
    with pytest.raises(CompileError, match="parameter 'n': expected an int"):
        compiler.Compiler().compile(adds, tmp_path / "c.yaml", pipeline_parameters={"n": "x"})
    with pytest.raises(CompileError, match="'consume_int' is a component"):
        compiler.Compiler().compile(consume_int, tmp_path / "c.yaml")
    assert not (tmp_path / "c.yaml").exists()


def test_nested_parallel_for_records_each_loop_s_parent() -> None:
    @dsl.pipeline
    def grid(rows: list) -> int:
        with dsl.ParallelFor(rows, parallelism=2) as row:
            with dsl.ParallelFor(row.cols) as col:
                made = part(i=consume_int(x=col).output)
            s = gather(parts=dsl.Collected(made.outputs["out"]))
        return total_of(xs=dsl.Collected(s.output)).output

    spec = compile_pipeline(grid)["spec"]
    assert spec["loops"] == {
        "for-1": {"items": {"parameter": "rows"}, "parallelism": 2},
        "for-2": {"items": {"loopItem": "for-1", "field": "cols"}, "parent": "for-1"},
    }
    loops = {t["name"]: t.get("loop") for t in spec["tasks"]}
    assert loops == {"consume-int": "for-2", "part": "for-2", "gather": "for-1",
                     "total-of": None}  # fmt: skip


def test_nested_loops_that_cannot_be_read_so_are_compile_errors() -> None:
    def inner_output() -> None:
        with dsl.ParallelFor([1]):
            with dsl.ParallelFor([2]) as b:
                t = consume_int(x=b)
            consume_int(x=t.output)

    with pytest.raises(CompileError, match=r"runs inside for-2: wrap it in dsl\.Collected"):
        compile_pipeline(dsl.pipeline(inner_output))

    def two_levels() -> None:
        with dsl.ParallelFor([1]), dsl.ParallelFor([2]) as b:
            t = consume_int(x=b)
        total_of(xs=dsl.Collected(t.output))

    with pytest.raises(CompileError, match="gathers a loop's outputs for a task outside that"):
        compile_pipeline(dsl.pipeline(two_levels))

    def not_looped() -> None:
        total_of(xs=dsl.Collected(consume_int(x=1).output))

    with pytest.raises(CompileError, match="gathers a loop's outputs"):
        compile_pipeline(dsl.pipeline(not_looped))

    def sibling_items() -> None:
        with dsl.ParallelFor([1]) as a:
            t = numbers(n=a)
        with dsl.ParallelFor(t.output):
            consume_int(x=1)

    with pytest.raises(CompileError, match="items task 'numbers' output 'Output' run inside"):
        compile_pipeline(dsl.pipeline(sibling_items))


def test_task_names_have_no_double_hyphen() -> None:
    @dsl.component
    def step__two(x: int) -> int:
        return x

    @dsl.pipeline
    def p() -> None:
        step__two(x=1)

    assert [t["name"] for t in compile_pipeline(p)["spec"]["tasks"]] == ["step-two"]


def test_a_run_source_that_is_no_pipeline_says_why(tmp_path: Path) -> None:
    """What client.run_pipeline (and `shipyard run`) is given: a path that is not there is
    named as such, YAML that does not parse says so, anything else lists what is taken."""
    from shipyard.pipelines.sdk import _pipeline_object

    for missing in (str(tmp_path / "pipline.py"), tmp_path / "pipline.yaml", "pipline"):
        with pytest.raises(BadRequest, match=f"^{re.escape(str(missing))}: no such file$"):
            _pipeline_object(missing)
    with pytest.raises(BadRequest, match=r"^the pipeline YAML does not parse: "):
        _pipeline_object("kind: Pipeline\nspec: [\n")
    with pytest.raises(BadRequest, match=r"takes a @dsl\.pipeline function"):
        _pipeline_object("kind: Other\nspec: {}\n")
