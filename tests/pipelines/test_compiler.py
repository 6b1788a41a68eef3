"""The DSL and compiler: what a pipeline compiles to, and compile errors that name the tasks
and ports involved."""

from __future__ import annotations

import pytest

from shipyard import dsl
from shipyard.dsl import Dataset, Input, Model, Output
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
