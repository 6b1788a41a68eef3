"""KFP v2 pipelines (``from kfp import dsl``) compiled by the real kfp compiler into the
YAML fixtures beside this file: ``python scripts/gen-kfp-fixtures.py``.

Not imported by the tests (the kfp SDK conflicts with the project's kubernetes pin); the
tests run the compiled YAML. Keep each pipeline small: the e2e tests run them all.
"""

from typing import NamedTuple, Optional

from kfp import dsl, kubernetes
from kfp.dsl import (
    ClassificationMetrics,
    Dataset,
    Input,
    Metrics,
    Output,
    PipelineTaskFinalStatus,
    SlicedClassificationMetrics,
)

# -- lightweight Python components ---------------------------------------------------------


@dsl.component(base_image="python:3.11")
def add(a: int, b: int) -> int:
    return a + b


@dsl.component
def describe_type(x: int, f: float) -> str:
    return f"{type(x).__name__}:{x} {type(f).__name__}:{f}"


@dsl.component
def say(msg: str) -> str:
    print(msg)
    return msg


@dsl.component
def make_dataset(n: int, rows: Output[Dataset]) -> None:
    with open(rows.path, "w") as f:
        f.write("\n".join(str(i) for i in range(n)))
    rows.metadata["rows"] = n


@dsl.component
def count_rows(rows: Input[Dataset], metrics: Output[Metrics]) -> int:
    with open(rows.path) as f:
        n = len(f.read().splitlines())
    metrics.log_metric("rows", n)
    return n


@dsl.component
def numbers(n: int) -> list:
    return list(range(1, n + 1))


@dsl.component
def square(x: int) -> int:
    return x * x


@dsl.component
def total(values: list) -> int:
    return sum(values)


@dsl.component
def stats(values: list) -> NamedTuple("Stats", [("biggest", int), ("count", int)]):
    from collections import namedtuple

    out = namedtuple("Stats", ["biggest", "count"])
    return out(max(values), len(values))


@dsl.component
def report(status: PipelineTaskFinalStatus) -> str:
    print("exit handler:", status.state, status.error_message)
    return status.state


@dsl.pipeline(name="kfp-features", description="Every KFP feature Shipyard runs, in one DAG.")
def features(a: int = 2, b: int = 3, factor: float = 1.5, threshold: int = 4) -> None:
    final = report()
    with dsl.ExitHandler(final):
        s = add(a=a, b=b)
        describe_type(x=s.output, f=factor)
        with dsl.If(s.output > threshold):
            say(msg="big")
        with dsl.Elif(s.output == threshold):
            say(msg="equal")
        with dsl.Else():
            say(msg="small")
        ds = make_dataset(n=s.output)
        rows = count_rows(rows=ds.outputs["rows"])
        nums = numbers(n=rows.outputs["Output"])
        with dsl.ParallelFor(nums.output, parallelism=2) as item:
            sq = square(x=item)
        total(values=dsl.Collected(sq.output))
        stats(values=dsl.Collected(sq.output))
        with dsl.ParallelFor([{"a": 10, "b": 1}, {"a": 20, "b": 2}]) as pair:
            add(a=pair.a, b=pair.b)


# -- container components, paths, retries, caching, env ----------------------------------------


@dsl.container_component
def shout(msg: str, times: int, out: dsl.OutputPath(str)):
    return dsl.ContainerSpec(
        image="python:3.11-slim",
        command=["python3", "-c"],
        args=[
            "import sys, pathlib; p = pathlib.Path(sys.argv[3]); "
            "p.parent.mkdir(parents=True, exist_ok=True); "
            "p.write_text((sys.argv[1].upper() + '!') * int(sys.argv[2]))",
            msg,
            times,
            out,
        ],
    )


@dsl.container_component
def write_file(text: str, data: Output[Dataset], suffix: str = "", tag: Optional[str] = None):  # noqa: UP045
    return dsl.ContainerSpec(
        image="busybox",
        command=["sh", "-c", 'mkdir -p "$(dirname "$1")" && printf "%s" "$0 $2" > "$1"'],
        args=[
            dsl.ConcatPlaceholder([text, suffix]),
            data.path,
            dsl.IfPresentPlaceholder(input_name="tag", then=["tagged"], else_=["untagged"]),
        ],
    )


@dsl.component
def read_path(data: dsl.InputPath("Dataset")) -> str:
    with open(data) as f:
        return f.read()


@dsl.component
def write_path(text: str, out: dsl.OutputPath("Dataset")) -> None:
    with open(out, "w") as f:
        f.write(text + " via OutputPath")


@dsl.component
def flaky(marker: str, fail_times: int) -> int:
    import pathlib

    p = pathlib.Path(marker)
    n = int(p.read_text()) if p.exists() else 0
    p.write_text(str(n + 1))
    if n < fail_times:
        raise ValueError(f"flaky failure {n + 1}")
    return n + 1


@dsl.component(packages_to_install=["pyyaml"])
def env_value(name: str) -> str:
    import os

    import yaml

    return yaml.safe_dump({name: os.environ.get(name, "")}).strip()


@dsl.component
def maybe_fail(fail: bool) -> str:
    if fail:
        raise RuntimeError("failing on purpose")
    return "ok"


@dsl.pipeline(name="kfp-ops")
def ops(msg: str = "hey", marker: str = "/tmp/kfp-flaky", fail: bool = False) -> None:
    final = report()
    with dsl.ExitHandler(final, name="guard"):
        loud = shout(msg=msg, times=2)
        wf = write_file(text=loud.outputs["out"], suffix="?")
        read_path(data=wf.outputs["data"])
        wp = write_path(text=msg)
        read_path(data=wp.outputs["out"])
        fl = flaky(marker=marker, fail_times=1).set_retry(num_retries=2, backoff_duration="0s")
        fl.set_caching_options(False)
        env = env_value(name="GREETING").set_env_variable("GREETING", "hello")
        env.after(fl)
        maybe_fail(fail=fail).after(env)
        say(msg=f"run {dsl.PIPELINE_JOB_NAME_PLACEHOLDER}")


@dsl.component
def read_text(data: Input[Dataset]) -> str:
    with open(data.path) as fh:
        return f"{fh.read()} {data.metadata}"


@dsl.pipeline(name="kfp-imports")
def imports(uri: str) -> str:
    imported = dsl.importer(artifact_uri=uri, artifact_class=Dataset, metadata={"origin": "test"})
    return read_text(data=imported.output).output


@dsl.component
def summary(msg: str = "upstream failed") -> str:
    return f"summary: {msg}"


@dsl.pipeline(name="kfp-ignore")
def ignores(fail: bool = True) -> None:
    step = maybe_fail(fail=fail)
    summary(msg=step.output).ignore_upstream_failure()


@dsl.component
def cells(n: int) -> list:
    return [{"id": i, "cols": list(range(i + 1))} for i in range(n)]


@dsl.component
def times(a: int, b: int) -> int:
    return a * b


@dsl.pipeline(name="kfp-nested")
def nested(n: int = 3) -> int:
    table = cells(n=n)
    with dsl.ParallelFor(table.output, parallelism=2) as row:
        with dsl.ParallelFor(row.cols) as col:
            cell = times(a=row.id, b=col)
        per_row = total(values=dsl.Collected(cell.output))
    return total(values=dsl.Collected(per_row.output)).output


@dsl.component
def flip(v: int) -> str:
    return "heads" if v > 0 else "tails"


@dsl.pipeline(name="kfp-oneof")
def oneof(v: int = 1) -> str:
    side = flip(v=v)
    with dsl.If(side.output == "heads"):
        heads = say(msg="it was heads")
        made_heads = write_path(text="A")
    with dsl.Else():
        tails = say(msg="it was tails")
        made_tails = write_path(text="B")
    read_path(data=dsl.OneOf(made_heads.outputs["out"], made_tails.outputs["out"]))
    return say(msg=dsl.OneOf(heads.output, tails.output)).output


@dsl.pipeline(name="kfp-platform")
def platform() -> str:
    password = env_value(name="PASSWORD")
    kubernetes.use_secret_as_env(password, secret_name="db", secret_key_to_env={"pw": "PASSWORD"})
    mode = env_value(name="MODE")
    kubernetes.use_config_map_as_env(
        mode, config_map_name="settings", config_map_key_to_env={"mode": "MODE"}
    )
    kubernetes.add_node_selector(mode, label_key="disk", label_value="ssd")
    kubernetes.add_toleration(mode, key="gpu", operator="Exists", effect="NoSchedule")
    return mode.output


@dsl.component
def evaluate(roc: Output[ClassificationMetrics], sliced: Output[SlicedClassificationMetrics]):
    roc.log_roc_curve(fpr=[0.0, 0.25, 1.0], tpr=[0.0, 0.875, 1.0], threshold=[0.9, 0.5, 0.1])
    roc.log_confusion_matrix(["neg", "pos"], [[8, 2], [1, 9]])
    # (kfp's own SlicedClassificationMetrics fails on these: it never sets up its slices.)
    sliced.set_confusion_matrix_categories("young", ["neg", "pos"])
    sliced.log_confusion_matrix_row("young", "pos", [1, 4])


@dsl.component
def read_matrix(roc: Input[ClassificationMetrics]) -> list:
    return [r["row"] for r in roc.metadata["confusionMatrix"]["rows"]]


@dsl.pipeline(name="kfp-metrics")
def metrics() -> list:
    scores = evaluate()
    return read_matrix(roc=scores.outputs["roc"]).output


# Compiled on their own into component_<name>.yaml, for components.load_component_from_file.
COMPONENT_FIXTURES = [add, shout]
