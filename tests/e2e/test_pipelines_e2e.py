"""Pipelines end to end: the examples from the CLI and the client, and each feature
(caching, retries, conditions, loops, exit handlers, cancel, retry-run, recurring runs)
on a real embedded platform whose tasks are real (warm-forked) processes."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, Optional

import pytest

from platform_fixtures import EXAMPLES, shipyard_cmd
from shipyard import dsl
from shipyard.client import Client
from shipyard.dsl import Dataset, Input, InputPath, Output, OutputPath
from shipyard.errors import Invalid, ShipyardError
from waiting import process_gone, wait_until

pytestmark = pytest.mark.e2e
PIPES = EXAMPLES / "pipelines"


def states(status: dict[str, Any]) -> dict[str, str]:
    return {tid: t["state"] for tid, t in status["tasks"].items()}


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*shipyard_cmd(), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


# -- components shared by the tests ------------------------------------------------------------


@dsl.component
def add(a: int, b: int) -> int:
    return a + b


@dsl.component
def flaky(marker: str, fail_times: int) -> int:
    import pathlib

    p = pathlib.Path(marker)
    n = int(p.read_text()) if p.exists() else 0
    p.write_text(str(n + 1))
    if n < fail_times:
        raise ValueError(f"flaky failure {n + 1}")
    return n + 1


@dsl.component
def sleeper(seconds: float, marker: str) -> str:
    import os
    import pathlib
    import time

    pathlib.Path(marker).write_text(str(os.getpid()))
    time.sleep(seconds)
    return "woke"


@dsl.component
def echo(value: str) -> str:
    return value


@dsl.component
def bad_output() -> int:
    return {1, 2}  # type: ignore[return-value]


def test_examples_run_from_the_cli_with_conditions_and_describe(
    client: Client, cli_env: dict[str, str]
) -> None:
    r = cli(cli_env, "run", str(PIPES / "iris_train.py"), "--name", "iris", "--watch")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.endswith("\n")  # piped: the task tree's last line ends too
    st = client.get("pipelineruns", "iris")["status"]
    assert st["phase"] == "Succeeded"
    s = states(st)
    assert s["register"] == "Succeeded" and s["report-low"] == "Skipped"
    acc = st["tasks"]["evaluate"]["outputs"]["Output"]
    assert acc >= 0.9
    metrics = st["tasks"]["evaluate"]["artifacts"]["metrics"]
    assert metrics["metadata"]["accuracy"] == acc and metrics["digest"].startswith("sha256:")
    # Lineage: the model evaluate read is the one train_model wrote.
    read = st["tasks"]["evaluate"]["inputs"]["artifacts"]["model"]
    assert read["digest"] == st["tasks"]["train-model"]["artifacts"]["model"]["digest"]
    assert read["producer"] == {"run": "iris", "task": "train-model"}

    # An impossible threshold takes the Else branch; everything before it is cached.
    r = cli(cli_env, "run", str(PIPES / "iris_train.py"), "--name", "iris-hi", "-p",
            "min_accuracy=1.5", "--watch")  # fmt: skip
    assert r.returncode == 0, r.stderr
    st2 = client.get("pipelineruns", "iris-hi")["status"]
    s2 = states(st2)
    assert s2["register"] == "Skipped" and s2["report-low"] == "Succeeded"
    assert s2["train-model"] == "Cached" and s2["evaluate"] == "Cached"

    d = cli(cli_env, "describe", "run", "iris-hi")
    assert d.returncode == 0 and "Cached" in d.stdout and "report-low" in d.stdout
    logs = cli(cli_env, "logs", "run/iris", "--task", "evaluate")
    assert logs.returncode == 0 and f"accuracy={acc}" in logs.stdout
    # A cached task ran no Pod: its log is the run's it was cached from, which it names.
    cached = cli(cli_env, "logs", "run/iris-hi", "--task", "evaluate")
    assert cached.returncode != 0 and "Traceback" not in cached.stderr
    assert cached.stderr.strip() == (
        "error: task 'evaluate' of run iris-hi ran no Pod: it is Cached, with the outputs of "
        "run iris's task evaluate (shipyard logs run/iris --task evaluate)"
    )
    skipped = cli(cli_env, "logs", "run/iris-hi", "--task", "register")
    assert "task 'register' of run iris-hi ran no Pod: it is Skipped" in skipped.stderr
    nope = cli(cli_env, "logs", "run/iris", "--task", "nope")
    assert "run iris has no task 'nope' (tasks: " in nope.stderr
    got = cli(cli_env, "get", "runs")
    assert "iris-hi" in got.stdout and "Succeeded" in got.stdout


def test_parallel_for_collected_and_exit_handler_examples_from_the_client(
    client: Client,
) -> None:
    h = client.run_pipeline(PIPES / "fan_out.py", {"items": [1, 2, 3, 4]})
    st = h.wait(120, check=True)
    assert st["outputs"] == {"Output": 30}
    assert sorted(t for t in st["tasks"] if t.startswith("square[")) == [
        f"square[{i}]" for i in range(4)
    ]
    ok = client.run_pipeline(PIPES / "exit_handler.py", {"fail": False}).wait(60)
    assert ok["phase"] == "Succeeded"
    assert ok["tasks"]["cleanup"]["outputs"]["Output"] == "SUCCEEDED"
    bad = client.run_pipeline(PIPES / "exit_handler.py", {"fail": True}).wait(60)
    assert bad["phase"] == "Failed"
    assert bad["tasks"]["work"]["state"] == "Failed"
    assert "RuntimeError: work failed on purpose" in bad["tasks"]["work"]["message"]
    assert bad["tasks"]["cleanup"]["state"] == "Succeeded"
    assert bad["tasks"]["cleanup"]["outputs"]["Output"] == "FAILED"


class Sums(NamedTuple):
    double: int
    triple: int


@dsl.pipeline
def sums(x: int) -> Sums:
    d = add(a=x, b=x)
    return Sums(double=d.output, triple=add(a=d.output, b=x).output)


@dsl.pipeline(name="nested")
def nested(x: int = 2) -> Sums:
    inner = sums(x=x)
    total = add(a=inner.outputs["double"], b=inner.outputs["triple"])
    last = add(a=total.output, b=1).after(inner)
    return Sums(double=total.output, triple=last.output)


def test_a_pipeline_in_a_pipeline_runs_with_kfp_shaped_outputs(client: Client) -> None:
    st = client.run_pipeline(nested, {"x": 3}).wait(60, check=True)
    assert st["outputs"] == {"double": 15, "triple": 16}
    assert states(st) == dict.fromkeys(["sums-add", "sums-add-2", "add", "add-2"], "Succeeded")


@dsl.component
def shard(i: int, out: Output[Dataset]) -> None:
    with open(out.path, "w") as fh:
        fh.write(str(i * 10))
    out.metadata["i"] = i


@dsl.component
def merge(parts: Input[list[Dataset]], merged: Output[Dataset]) -> str:
    values = []
    for p in parts:
        with open(p.path) as fh:
            values.append(int(fh.read()))
    values.sort()
    with open(merged.path, "w") as fh:
        fh.write(",".join(map(str, values)))
    return f"{len(parts)}:{sorted(p.metadata['i'] for p in parts)}"


@dsl.pipeline(name="fan-in")
def fan_in(items: list) -> str:
    with dsl.ParallelFor(items) as i:
        s = shard(i=i)
    return merge(parts=dsl.Collected(s.outputs["out"])).outputs["Output"]


def test_a_loop_s_artifacts_fan_in_as_input_list(client: Client) -> None:
    st = client.run_pipeline(fan_in, {"items": [1, 2, 3]}).wait(60, check=True)
    assert st["outputs"] == {"Output": "3:[1, 2, 3]"}
    assert st["tasks"]["merge"]["artifacts"]["merged"]["type"] == "Dataset"
    # Lineage: the task records each artifact it read.
    reads = st["tasks"]["merge"]["inputs"]["artifacts"]["parts"]
    assert sorted(a["metadata"]["i"] for a in reads) == [1, 2, 3]
    # A loop over no items gathers none: the task gets an empty list.
    st = client.run_pipeline(fan_in, {"items": []}).wait(60, check=True)
    assert st["outputs"] == {"Output": "0:[]"}


@dsl.component
def write_paths(
    message: str,
    text: OutputPath("Dataset"),
    word: OutputPath(str),
    flag: OutputPath(bool),
    table: OutputPath(dict),
    count: OutputPath(int),
) -> None:
    import json

    for path, content in (
        (text, message.upper()),
        (word, message),
        (flag, "True"),
        (table, json.dumps({"a": 1})),
        (count, "41\n"),
    ):
        with open(path, "w") as fh:
            fh.write(content)


@dsl.component
def read_paths(
    text: InputPath("Dataset"), word: str, flag: InputPath(bool), table: dict, count: int
) -> str:
    with open(text) as fh, open(flag) as f2:
        return f"{fh.read()} {word} {f2.read()} {table} {count + 1}"


@dsl.component
def forgets(value: OutputPath(int)) -> None:
    pass


@dsl.component
def misspells(value: OutputPath(int)) -> None:
    with open(value, "w") as fh:
        fh.write("forty")


@dsl.pipeline(name="paths")
def paths(message: str = "hi") -> str:
    w = write_paths(message=message)
    o = w.outputs
    return read_paths(
        text=o["text"], word=o["word"], flag=o["flag"], table=o["table"], count=o["count"]
    ).output


def test_input_and_output_paths_pass_files_as_kfp_does(client: Client) -> None:
    st = client.run_pipeline(paths, {"message": "hi"}).wait(60, check=True)
    assert st["outputs"] == {"Output": "HI hi true {'a': 1} 42"}
    written = st["tasks"]["write-paths"]
    assert written["outputs"] == {"word": "hi", "flag": True, "table": {"a": 1}, "count": 41}
    assert written["artifacts"]["text"]["type"] == "Dataset"

    @dsl.pipeline(name="bad-paths")
    def bad() -> None:
        forgets()
        misspells()

    st = client.run_pipeline(bad, {}).wait(60)
    assert st["tasks"]["forgets"]["message"] == (
        "output 'value' was not written: write its value to the file at the path 'value' holds"
    )
    assert st["tasks"]["misspells"]["message"].startswith(
        "output 'value': its file does not hold an int: invalid literal"
    )


@dsl.pipeline(name="who-am-i")
def who_am_i() -> dict:
    with dsl.ParallelFor([1, 2]):
        in_loop = echo(value=dsl.PIPELINE_TASK_NAME_PLACEHOLDER)
    return {
        "job": echo(value=dsl.PIPELINE_JOB_NAME_PLACEHOLDER).output,
        "resource": echo(value=dsl.PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER).output,
        "id": echo(value=dsl.PIPELINE_JOB_ID_PLACEHOLDER).output,
        "task": echo(value=f"task {dsl.PIPELINE_TASK_NAME_PLACEHOLDER}").output,
        "task_id": echo(value=dsl.PIPELINE_TASK_ID_PLACEHOLDER).output,
        "root": echo(value=dsl.PIPELINE_ROOT_PLACEHOLDER).output,
        "created": echo(value=dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER).output,
        "scheduled": echo(value=dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER).output,
        "loop": total(xs=dsl.Collected(in_loop.output)).output,
        "unknown": echo(value="{{$.workspace_path}}").output,
    }


@dsl.component
def total(xs: list) -> str:
    return ",".join(xs)


def test_kfp_placeholders_are_filled_when_a_task_starts(client: Client) -> None:
    h = client.run_pipeline(who_am_i, {})
    st = h.wait(60, check=True)
    md = client.get("pipelineruns", h.name)["metadata"]
    out = st["outputs"]
    assert out["job"] == out["resource"] == h.name
    assert out["id"] == md["uid"]
    assert out["task"] == "task echo-5"
    assert len(out["task_id"]) == 36 and out["task_id"] != out["id"]
    assert Path(out["root"]).is_dir()
    assert out["created"] == out["scheduled"] == md["creationTimestamp"]
    assert out["loop"] == "echo,echo"
    assert out["unknown"] == "{{$.workspace_path}}"  # not one this platform knows: kept


@dsl.component
def maybe(x: Optional[int] = None, name: Optional[str] = "a") -> str:  # noqa: UP045
    return f"{x} {name}"


@dsl.pipeline(name="optional")
def optional(v: Optional[int] = None) -> dict:  # noqa: UP045
    return {"left": maybe(x=None, name=None).output, "given": maybe(x=v).output}


def test_optional_inputs_run_with_their_defaults_or_values(client: Client) -> None:
    st = client.run_pipeline(optional, {}).wait(60, check=True)
    assert st["outputs"] == {"left": "None a", "given": "None a"}
    st = client.run_pipeline(optional, {"v": 7}).wait(60, check=True)
    assert st["outputs"] == {"left": "None a", "given": "7 a"}


@dsl.container_component
def say_hello(name: str, greeting: OutputPath(str)):
    return dsl.ContainerSpec(
        image="alpine", command=["sh", "-c", 'echo Hello, "$0"! | tee "$1"'], args=[name, greeting]
    )


@dsl.container_component
def write_text(text: str, out: Output[Dataset], tag: Optional[str] = None):  # noqa: UP045
    return dsl.ContainerSpec(
        image="alpine",
        command=["sh", "-c", f'printf "%s" "$0" > {out.path}'],
        args=[dsl.ConcatPlaceholder([text, dsl.IfPresentPlaceholder("tag", ["+", tag], "!")])],
    )


@dsl.container_component
def exit_with(code: int):
    return dsl.ContainerSpec(image="alpine", command=["sh", "-c", f"exit {code}"])


@dsl.component
def read_text(data: Input[Dataset]) -> str:
    with open(data.path) as fh:
        return fh.read()


@dsl.pipeline(name="commands")
def commands(who: str = "Ada") -> dict:
    hello = say_hello(name=who)
    plain = write_text(text=hello.output)
    tagged = write_text(text="x", tag="t1")
    return {
        "greeting": hello.output,
        "plain": read_text(data=plain.outputs["out"]).output,
        "tagged": read_text(data=tagged.outputs["out"]).output,
    }


def test_container_components_run_their_commands(client: Client) -> None:
    h = client.run_pipeline(commands, {"who": "Ada"})
    st = h.wait(60, check=True)
    assert st["outputs"] == {
        "greeting": "Hello, Ada!\n",
        "plain": "Hello, Ada!\n!",
        "tagged": "x+t1",
    }
    assert "Hello, Ada!" in "".join(client.logs(st["tasks"]["say-hello"]["pod"]))

    @dsl.pipeline(name="commands-fail")
    def fails() -> None:
        exit_with(code=3)

    st = client.run_pipeline(fails, {}).wait(60)
    assert st["phase"] == "Failed"
    assert "container command 'sh' exited with code 3" in st["tasks"]["exit-with"]["message"]


@dsl.component
def describe(data: Input[Dataset]) -> str:
    import os

    if os.path.isdir(data.path):
        return f"folder {sorted(os.listdir(data.path))} {data.metadata}"
    with open(data.path) as fh:
        return f"file {fh.read()} {data.metadata}"


@dsl.pipeline(name="imports")
def imports(uri: str, folder: str) -> dict:
    one = dsl.importer(artifact_uri=uri, artifact_class=Dataset, metadata={"origin": "disk"})
    many = dsl.importer(artifact_uri=folder, artifact_class=Dataset, reimport=True)
    return {"file": describe(data=one.output).output, "folder": describe(data=many.output).output}


def test_dsl_importer_brings_files_and_folders_in_as_artifacts(
    client: Client, tmp_path: Path
) -> None:
    (tmp_path / "rows.csv").write_text("a,b")
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "p1").write_text("1")
    args = {"uri": str(tmp_path / "rows.csv"), "folder": f"file://{tmp_path / 'parts'}"}
    st = client.run_pipeline(imports, args).wait(60, check=True)
    assert st["outputs"] == {"file": "file a,b {'origin': 'disk'}", "folder": "folder ['p1'] {}"}
    (tmp_path / "rows.csv").write_text("c,d")  # read again on the next run: no stale copy
    st = client.run_pipeline(imports, args).wait(60, check=True)
    assert st["outputs"]["file"] == "file c,d {'origin': 'disk'}"
    st = client.run_pipeline(imports, {**args, "uri": str(tmp_path / "gone.csv")}).wait(60)
    assert st["phase"] == "Failed"
    assert "No such file or directory" in st["tasks"]["importer-dataset"]["message"]
    assert "gone.csv" in st["tasks"]["importer-dataset"]["message"]


@dsl.component
def fail_with(msg: str) -> str:
    raise ValueError(msg)


@dsl.component
def report(msg: str = "upstream failed") -> str:
    return "report: " + msg


@dsl.pipeline(name="ignore-upstream")
def ignore_upstream(fail: bool) -> None:
    with dsl.If(fail == True):  # noqa: E712  (a condition the pipeline compiles)
        broken = fail_with(msg="boom")
        report(msg=broken.output).ignore_upstream_failure()
    with dsl.Else():
        fine = echo(value="fine")
        report(msg=fine.output).ignore_upstream_failure()


def test_ignore_upstream_failure_runs_a_task_after_a_failure_with_its_default(
    client: Client,
) -> None:
    st = client.run_pipeline(ignore_upstream, {"fail": True}, cache=False).wait(60)
    assert st["phase"] == "Failed"  # the failure still fails the run
    assert states(st) == {"fail-with": "Failed", "report": "Succeeded", "echo": "Skipped",
                          "report-2": "Skipped"}  # fmt: skip
    assert st["tasks"]["report"]["outputs"] == {"Output": "report: upstream failed"}
    st = client.run_pipeline(ignore_upstream, {"fail": False}, cache=False).wait(60, check=True)
    assert states(st)["report"] == "Skipped"  # outside its branch, it does not run
    assert st["tasks"]["report-2"]["outputs"] == {"Output": "report: fine"}


def local_index(root: Path, name: str, body: str) -> str:
    """A package index in a folder (pip reads file:// indexes) holding one pure-Python
    wheel, NAME 0.1 with module NAME_WITH_UNDERSCORES whose source is ``body``."""
    module, dist = name.replace("-", "_"), f"{name.replace('-', '_')}-0.1"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n"
    wheel_info = "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files = {
        f"{module}/__init__.py": body.encode(),
        f"{dist}.dist-info/METADATA": meta.encode(),
        f"{dist}.dist-info/WHEEL": wheel_info.encode(),
    }

    def digest(data: bytes) -> str:
        raw = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        return "sha256=" + raw.decode()

    record = "".join(f"{p},{digest(b)},{len(b)}\n" for p, b in files.items())
    wheel = root / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
        z.writestr(f"{dist}.dist-info/RECORD", record + f"{dist}.dist-info/RECORD,,\n")
    page = root / "simple" / name
    page.mkdir(parents=True)
    page.joinpath("index.html").write_text(f'<a href="../../{wheel.name}">{wheel.name}</a>')
    return f"file://{root / 'simple'}"


def test_packages_are_installed_once_from_the_index_given(client: Client, tmp_path: Path) -> None:
    index = local_index(tmp_path, "shipyard-probe", "VALUE = 'from the local index'\n")

    def shout(text: str) -> str:
        return text.upper()

    @dsl.component(
        packages_to_install=["shipyard-probe"], pip_index_urls=[index], additional_funcs=[shout]
    )
    def probe() -> str:
        import shipyard_probe

        return shout(shipyard_probe.VALUE)

    @dsl.pipeline(name="packages")
    def packages() -> str:
        return probe().output

    logs = []
    for _ in range(2):
        st = client.run_pipeline(packages, {}, cache=False).wait(120, check=True)
        assert st["outputs"] == {"Output": "FROM THE LOCAL INDEX"}
        logs.append("".join(client.logs(st["tasks"]["probe"]["pod"])))
    assert "installing shipyard-probe into" in logs[0]
    assert "installing" not in logs[1]  # the component's folder is kept: installed once


def test_a_task_s_container_image_goes_on_its_pod(client: Client) -> None:
    @dsl.pipeline(name="image")
    def image() -> str:
        return echo(value="x").set_container_image("registry.local/echo:2").output

    st = client.run_pipeline(image, {}, cache=False).wait(60, check=True)
    pod = client.get("pods", st["tasks"]["echo"]["pod"])
    assert pod["spec"]["containers"][0]["image"] == "registry.local/echo:2"


@dsl.component
def flip(v: int) -> str:
    return "heads" if v > 0 else "tails"


@dsl.pipeline(name="one-of")
def one_of(v: int) -> dict:
    side = flip(v=v)
    with dsl.If(side.output == "heads"):
        said_a, made_a = echo(value="it was heads"), shard(i=1)
    with dsl.Elif(side.output == "tails"):
        said_b, made_b = echo(value="it was tails"), shard(i=2)
    with dsl.Else():
        said_c, made_c = echo(value="never"), shard(i=3)
    said = dsl.OneOf(said_a.output, said_b.output, said_c.output)
    made = dsl.OneOf(made_a.outputs["out"], made_b.outputs["out"], made_c.outputs["out"])
    return {"said": said, "again": echo(value=said).output, "read": read_text(data=made).output}


def test_one_of_passes_on_the_output_of_the_branch_that_ran(client: Client) -> None:
    st = client.run_pipeline(one_of, {"v": 1}).wait(60, check=True)
    assert st["outputs"] == {"said": "it was heads", "again": "it was heads", "read": "10"}
    st = client.run_pipeline(one_of, {"v": -1}).wait(60, check=True)
    assert st["outputs"] == {"said": "it was tails", "again": "it was tails", "read": "20"}
    assert states(st)["echo"] == "Skipped"  # the heads branch

    @dsl.pipeline(name="one-of-loop")
    def in_a_loop() -> str:
        with dsl.ParallelFor([1, -1, 2]) as v:
            with dsl.If(v > 0):
                pos = echo(value="pos")
            with dsl.Else():
                neg = echo(value="neg")
            picked = echo(value=dsl.OneOf(pos.output, neg.output))
        return total(xs=dsl.Collected(picked.output)).output

    st = client.run_pipeline(in_a_loop, {}).wait(60, check=True)
    assert st["outputs"] == {"Output": "pos,neg,pos"}


def test_kfp_client_calls_drive_runs(client: Client, tmp_path: Path) -> None:
    """A script written against kfp.Client runs with Client in its place."""

    @dsl.pipeline(name="kfp-client")
    def adds(a: int = 1) -> int:
        return add(a=a, b=2).output

    result = client.create_run_from_pipeline_func(
        adds, arguments={"a": 5}, experiment_name="nightly", enable_caching=False
    )
    run = result.wait_for_run_completion(timeout=60)
    assert (run.run_id, run.state, run.error) == (result.run_id, "SUCCEEDED", None)
    assert run.status["outputs"] == {"Output": 7} and run.experiment_id == "nightly"
    assert run.created_at and run.finished_at
    assert client.get("pipelineruns", run.run_id)["spec"]["cache"] is False
    package = client.create_run_from_pipeline_package(
        str(EXAMPLES / "pipelines" / "kfp_hello.yaml"), {"name": "Ada"}, run_name="hello-ada"
    )
    assert client.wait_for_run_completion("hello-ada", 60).state == "SUCCEEDED"
    assert client.get_run(package.run_id).status["outputs"] == {"Output": "HELLO ADA HELLO ADA"}

    @dsl.pipeline(name="kfp-client-slow")
    def slow() -> None:
        sleeper(seconds=30, marker=str(tmp_path / "pid"))

    running = client.create_run_from_pipeline_func(slow)
    with pytest.raises(TimeoutError):
        client.wait_for_run_completion(running.run_id, timeout=0.5)
    running.handle.cancel()
    assert running.wait_for_run_completion(60).state == "CANCELED"
    with pytest.raises(ShipyardError, match="pipeline_root is not supported here"):
        client.create_run_from_pipeline_func(adds, pipeline_root="gs://bucket/root")


def test_kfp_client_recurring_run_calls_schedule_runs(client: Client) -> None:
    """kfp.Client's create/get/list/disable/enable/delete_recurring_run on RecurringRuns."""
    made = client.create_recurring_run(
        "nightly",
        "Hello Every Second",
        cron_expression="* * * * * *",
        params={"name": "Ada"},
        pipeline_package_path=str(EXAMPLES / "pipelines" / "kfp_hello.yaml"),
        enable_caching=False,
    )
    assert (made.recurring_run_id, made.display_name) == (
        "hello-every-second",
        "Hello Every Second",
    )
    assert (made.status, made.mode, made.max_concurrency) == ("ENABLED", "ENABLE", 1)
    label = "pipelines.shipyard.dev/recurring-run=hello-every-second"

    def succeeded() -> list[dict[str, Any]]:
        runs = client.list("pipelineruns", selector=label)
        return [r for r in runs if (r.get("status") or {}).get("phase") == "Succeeded"]

    run = wait_until(succeeded, what="a scheduled run to succeed")[0]
    assert run["status"]["outputs"] == {"Output": "HELLO ADA HELLO ADA"}
    assert run["spec"]["cache"] is False
    assert client.get_run(run["metadata"]["name"]).experiment_id == "nightly"
    got = client.get_recurring_run("hello-every-second")
    assert got.runs_started >= 1 and got.last_run_time and got.next_run_time
    assert [r.recurring_run_id for r in client.list_recurring_runs(experiment_id="nightly")
            .recurring_runs] == ["hello-every-second"]  # fmt: skip
    assert client.list_recurring_runs(experiment_id="other").total_size == 0
    client.disable_recurring_run("hello-every-second")
    assert client.get_recurring_run("hello-every-second").status == "DISABLED"
    client.enable_recurring_run("hello-every-second")
    assert client.get_recurring_run("hello-every-second").status == "ENABLED"
    client.delete_recurring_run("hello-every-second")
    wait_until(lambda: not client.list("pipelineruns", selector=label), what="its runs deleted")
    with pytest.raises(ShipyardError, match="cron_expression"):
        client.create_recurring_run(
            None, "odd", interval_second=7, pipeline_id="fan-out"
        )  # fmt: skip


def test_the_kfp_port_example_runs_both_branches(client: Client, cli_env: dict[str, str]) -> None:
    r = cli(cli_env, "run", str(PIPES / "kfp_port.py"), "--name", "port-tree", "--watch")
    assert r.returncode == 0, r.stdout + r.stderr
    st = client.get("pipelineruns", "port-tree")["status"]
    assert st["outputs"]["Output"].startswith("port-tree: 150 rows, accuracy 0.9")
    assert states(st)["train-forest"] == "Skipped" and states(st)["count-rows"] == "Succeeded"
    forest = client.run_pipeline(PIPES / "kfp_port.py", {"model": "forest"}).wait(180, check=True)
    assert states(forest)["train-tree"] == "Skipped"
    assert forest["tasks"]["train-forest"]["artifacts"]["model"]["metadata"] == {"kind": "forest"}
    # The report runs even when the data cannot be read, with its inputs' defaults.
    bad = client.run_pipeline(PIPES / "kfp_port.py", {"data_uri": "/no/such.csv"}).wait(120)
    assert bad["phase"] == "Failed"
    assert bad["tasks"]["report"]["outputs"]["Output"].endswith(": 0 rows, no model")


@dsl.component
def mul(a: int, b: int) -> int:
    return a * b


@dsl.component
def rows(n: int) -> list:
    return [{"id": i, "cols": list(range(i + 1))} for i in range(n)]


@dsl.component
def summed(xs: list) -> int:
    return sum(xs)


@dsl.pipeline(name="nested-loops")
def nested_loops(n: int) -> int:
    table = rows(n=n)
    with dsl.ParallelFor(table.output, parallelism=2) as row:
        with dsl.ParallelFor(row.cols, parallelism=2) as col:
            cell = mul(a=row.id, b=col)
        per_row = summed(xs=dsl.Collected(cell.output))
    return summed(xs=dsl.Collected(per_row.output)).output


def test_nested_parallel_for_runs_a_loop_per_item_and_collects_each_level(
    client: Client,
) -> None:
    st = client.run_pipeline(nested_loops, {"n": 3}).wait(60, check=True)
    assert st["outputs"] == {"Output": 0 + (0 + 1) + (0 + 2 + 4)}
    cells = {tid: t for tid, t in st["tasks"].items() if t["task"] == "mul"}
    assert sorted(cells) == ["mul[0][0]", "mul[1][0]", "mul[1][1]", "mul[2][0]", "mul[2][1]",
                             "mul[2][2]"]  # fmt: skip
    assert cells["mul[2][1]"]["index"] == [2, 1]
    assert cells["mul[2][1]"]["inputs"]["parameters"] == {"a": 2, "b": 1}
    assert st["tasks"]["summed[2]"]["outputs"] == {"Output": 6}
    assert st["tasks"]["summed[2]"]["index"] == 2


@dsl.component
def listed(n: int) -> list:
    return list(range(n))


@dsl.pipeline(name="loop-in-branch")
def loop_in_branch(n: int) -> None:
    with dsl.If(n > 0):
        made = listed(n=n)
        with dsl.ParallelFor(made.output) as i:
            cell = mul(a=i, b=10)
        summed(xs=dsl.Collected(cell.output))


def test_a_loop_over_an_output_in_a_branch_not_taken_is_skipped_with_it(client: Client) -> None:
    """Once the run failed, "tasks can never start": a skipped task's output has no items."""
    ran = client.run_pipeline(loop_in_branch, {"n": 2}).wait(60, check=True)
    assert states(ran) == {"listed": "Succeeded", "mul[0]": "Succeeded", "mul[1]": "Succeeded",
                           "summed": "Succeeded"}  # fmt: skip
    assert ran["tasks"]["summed"]["outputs"] == {"Output": 10}
    st = client.run_pipeline(loop_in_branch, {"n": 0}).wait(60, check=True)
    assert states(st) == {"listed": "Skipped", "summed": "Skipped"}


@dsl.component
def scores(
    roc: Output[dsl.ClassificationMetrics], by_group: Output[dsl.SlicedClassificationMetrics]
) -> None:
    from sklearn.metrics import confusion_matrix, roc_curve

    truth = [0, 0, 1, 1, 0, 1]
    score = [0.1, 0.4, 0.35, 0.8, 0.2, 0.9]
    fpr, tpr, thresholds = roc_curve(truth, score)  # numpy arrays; the first threshold is inf
    roc.log_roc_curve(fpr, tpr, thresholds)
    roc.log_confusion_matrix(["neg", "pos"], confusion_matrix(truth, [int(s > 0.5) for s in score]))
    by_group.load_confusion_matrix("a", ["neg", "pos"], [[2, 0], [1, 1]])
    by_group.log_roc_reading("b", threshold=0.5, tpr=1.0, fpr=0.5)


@dsl.component
def true_positives(roc: Input[dsl.ClassificationMetrics]) -> int:
    return roc.metadata["confusionMatrix"]["rows"][1]["row"][1]


def test_classification_metrics_from_scikit_learn_travel_in_kfp_s_shape(client: Client) -> None:
    import sys

    from sklearn.metrics import roc_curve

    @dsl.pipeline(name="class-metrics")
    def class_metrics() -> int:
        return true_positives(roc=scores().outputs["roc"]).output

    st = client.run_pipeline(class_metrics, {}).wait(60, check=True)
    assert st["outputs"] == {"Output": 2}
    arts = st["tasks"]["scores"]["artifacts"]
    roc = arts["roc"]["metadata"]
    fpr, tpr, _ = roc_curve([0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    assert [(p["falsePositiveRate"], p["recall"]) for p in roc["confidenceMetrics"]] == list(
        zip(fpr.tolist(), tpr.tolist(), strict=True)
    )
    assert roc["confidenceMetrics"][0]["confidenceThreshold"] == sys.float_info.max
    assert roc["confusionMatrix"] == {
        "annotationSpecs": [{"displayName": "neg"}, {"displayName": "pos"}],
        "rows": [{"row": [3, 0]}, {"row": [1, 2]}],
    }
    assert arts["by_group"]["type"] == "SlicedClassificationMetrics"
    slices = arts["by_group"]["metadata"]["evaluationSlices"]
    assert [s["slice"] for s in slices] == ["a", "b"]
    assert slices[1]["sliceClassificationMetrics"]["confidenceMetrics"] == [
        {"confidenceThreshold": 0.5, "recall": 1.0, "falsePositiveRate": 0.5}
    ]


def test_a_loop_s_runs_and_a_task_named_like_them_keep_their_own_results(
    client: Client,
) -> None:
    """echo[2], the third run of echo in a loop, and the task echo-2 once shared files."""

    @dsl.pipeline(name="same-names")
    def same_names() -> str:
        with dsl.ParallelFor(["a", "b", "c"]) as item:
            echo(value=item)
        return echo(value="outside").output

    st = client.run_pipeline(same_names, {}, cache=False).wait(60, check=True)
    assert st["outputs"] == {"Output": "outside"}
    assert st["tasks"]["echo[2]"]["outputs"] == {"Output": "c"}
    assert st["tasks"]["echo[2]"]["pod"] != st["tasks"]["echo-2"]["pod"]


@dsl.component
def env_of(name: str) -> str:
    import os

    return os.environ.get(name, "<unset>")


def test_kubernetes_calls_give_a_task_env_from_secrets_and_config_maps(client: Client) -> None:
    from shipyard import kubernetes

    client.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                  "stringData": {"password": "s3cret"}})  # fmt: skip
    client.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tuning"},
                  "data": {"mode": "fast"}})  # fmt: skip

    @dsl.pipeline(name="env-refs")
    def env_refs() -> dict:
        secret = env_of(name="PW")
        kubernetes.use_secret_as_env(secret, "creds", {"password": "PW"})
        config = env_of(name="MODE")
        kubernetes.use_config_map_as_env(config, "tuning", {"mode": "MODE"})
        kubernetes.add_toleration(config, key="gpu", operator="Exists")
        missing = env_of(name="OPT")
        kubernetes.use_secret_as_env(missing, "absent", {"k": "OPT"}, optional=True)
        return {"pw": secret.output, "mode": config.output, "opt": missing.output}

    run = client.run_pipeline(env_refs, {}, cache=False)
    st = run.wait(60, check=True)
    assert st["outputs"] == {"pw": "s3cret", "mode": "fast", "opt": "<unset>"}
    # The Secret's value is read as the Pod starts; the run records only where it comes from.
    assert "s3cret" not in json.dumps(client.get("pipelineruns", run.name)["spec"])
    pod = client.get("pods", st["tasks"]["env-of"]["pod"])
    assert {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}} in (
        pod["spec"]["containers"][0]["env"]
    )


def test_caching_is_keyed_on_inputs_and_can_be_turned_off(client: Client) -> None:
    @dsl.pipeline
    def chain(n: int = 1) -> int:
        return add(a=add(a=n, b=1).output, b=10).output

    first = client.run_pipeline(chain, {"n": 1}).wait(60, check=True)
    assert set(states(first).values()) == {"Succeeded"} and first["outputs"]["Output"] == 12
    again = client.run_pipeline(chain, {"n": 1}).wait(60, check=True)
    assert set(states(again).values()) == {"Cached"} and again["outputs"]["Output"] == 12
    assert all("pod" not in t for t in again["tasks"].values())
    other = client.run_pipeline(chain, {"n": 2}).wait(60, check=True)
    assert set(states(other).values()) == {"Succeeded"} and other["outputs"]["Output"] == 13
    fresh = client.run_pipeline(chain, {"n": 1}, cache=False).wait(60, check=True)
    assert set(states(fresh).values()) == {"Succeeded"}


def test_retries_then_failure_stops_new_tasks_and_retry_run_resumes(
    client: Client, tmp_path: Path
) -> None:
    @dsl.pipeline
    def retrying(marker: str, fail_times: int) -> int:
        first = flaky(marker=marker, fail_times=fail_times).set_retry(2, backoff_duration="0.05s")
        return add(a=first.output, b=100).output

    ok = client.run_pipeline(retrying, {"marker": str(tmp_path / "a"), "fail_times": 2})
    st = ok.wait(60, check=True)
    assert st["tasks"]["flaky"]["attempts"] == 3 and st["outputs"]["Output"] == 103

    marker = tmp_path / "b"
    h = client.run_pipeline(retrying, {"marker": str(marker), "fail_times": 5})
    st = h.wait(60)
    assert st["phase"] == "Failed"
    assert st["tasks"]["flaky"]["attempts"] == 3
    assert "ValueError: flaky failure 3" in st["tasks"]["flaky"]["message"]
    assert st["tasks"]["add"]["state"] == "Pending"  # nothing downstream started
    assert "flaky" in st["message"]
    # retry-run: the failed task runs again (3 more attempts: failures 4, 5 then success).
    h.retry()
    deadline = time.monotonic() + 60
    while h.phase != "Succeeded" and time.monotonic() < deadline:
        time.sleep(0.05)
    st = h.status
    assert st["phase"] == "Succeeded" and st["outputs"]["Output"] == 106
    assert st["retries"] == 1


def test_retry_run_keeps_successful_tasks(client: Client, tmp_path: Path) -> None:
    @dsl.pipeline
    def two(marker: str) -> int:
        first = add(a=0, b=1).set_caching_options(False)
        return flaky(marker=marker, fail_times=first.output).output

    h = client.run_pipeline(two, {"marker": str(tmp_path / "m")})
    assert h.wait(60)["phase"] == "Failed"
    pod_before = h.tasks["add"]["pod"]
    h.retry()
    deadline = time.monotonic() + 60
    while h.phase != "Succeeded" and time.monotonic() < deadline:
        time.sleep(0.05)
    st = h.status
    assert st["phase"] == "Succeeded"
    assert st["tasks"]["add"]["pod"] == pod_before and st["tasks"]["add"]["attempts"] == 1


def test_cancel_stops_running_tasks(client: Client, tmp_path: Path) -> None:
    @dsl.pipeline
    def slow(marker: str) -> str:
        return sleeper(seconds=60, marker=marker).output

    marker = tmp_path / "pid"
    h = client.run_pipeline(slow, {"marker": str(marker)})
    # The step writes its pid once running: wait for the text, not just the file (it is
    # created empty first).
    pid = int(wait_until(lambda: marker.exists() and marker.read_text(), 30, "the step's pid"))
    h.cancel()
    st = h.wait(30)
    assert st["phase"] == "Cancelled" and st["tasks"]["sleeper"]["state"] == "Cancelled"
    wait_until(lambda: process_gone(pid), timeout=15, what=f"the cancelled step's process {pid}")


def test_recurring_run_starts_runs_on_schedule_within_max_concurrency(client: Client) -> None:
    @dsl.pipeline
    def tick(n: int = 1) -> dict:
        due = echo(value=dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER)
        return {"Output": add(a=n, b=1).output, "due": due.output}

    from shipyard.pipelines.compiler import compile_pipeline

    pipeline = compile_pipeline(tick, name="tick")
    client.apply(pipeline)
    client.apply(
        {
            "apiVersion": "shipyard.dev/v1",
            "kind": "RecurringRun",
            "metadata": {"name": "every-second"},
            "spec": {
                "schedule": "* * * * * *",
                "pipelineRef": {"name": "tick"},
                "parameters": {"n": 4},
                "maxConcurrency": 1,
            },
        }
    )
    deadline = time.monotonic() + 30
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = client.list("pipelineruns", selector="pipelines.shipyard.dev/recurring-run")
        done = [r for r in runs if (r.get("status") or {}).get("phase") == "Succeeded"]
        if len(done) >= 2:
            break
        time.sleep(0.1)
    assert len([r for r in runs if r["status"].get("phase") == "Succeeded"]) >= 2
    for r in runs:
        if r["status"].get("phase") == "Succeeded":
            # The time it was due: kfp's schedule-time placeholder, and the run's name.
            due = int(r["metadata"]["name"].rsplit("-", 1)[1])
            when = datetime.fromtimestamp(due, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            assert r["status"]["outputs"] == {"Output": 5, "due": when}
    client.patch("recurringrun", "every-second", {"spec": {"enabled": False}})
    rr = client.get("recurringrun", "every-second")
    assert rr["status"]["runsStarted"] >= 2


STARTED_BY_EXAMPLE = "pipelines.shipyard.dev/recurring-run=fan-out-every-minute"


def test_the_recurring_run_example_as_the_readme_applies_it(
    client: Client, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """The README's lines: compile fan_out.py, apply it, apply examples/pipelines/
    recurring.yaml. The example ticks every minute; here it is then applied again with a
    schedule of every second (as a user would edit it), and runs with its parameters."""
    out = tmp_path / "fan-out.yaml"
    assert cli(cli_env, "compile", str(PIPES / "fan_out.py"), "-o", str(out)).returncode == 0
    assert cli(cli_env, "apply", "-f", str(out)).returncode == 0
    r = cli(cli_env, "apply", "-f", str(PIPES / "recurring.yaml"))
    assert r.returncode == 0, r.stderr
    rr = wait_until(
        lambda: (client.get("recurringrun", "fan-out-every-minute").get("status") or {}).get(
            "nextScheduleTime"
        ),
        what="the example's next tick to be scheduled",
    )
    assert rr.endswith(":00Z")  # every minute
    listed = cli(cli_env, "get", "recurringruns")
    assert "fan-out-every-minute" in listed.stdout and "* * * * *" in listed.stdout

    example = (PIPES / "recurring.yaml").read_text()
    faster = tmp_path / "recurring.yaml"
    faster.write_text(example.replace('schedule: "* * * * *"', 'schedule: "* * * * * *"'))
    assert faster.read_text() != example
    assert cli(cli_env, "apply", "-f", str(faster)).returncode == 0

    def succeeded() -> list[dict[str, Any]]:
        runs = client.list("pipelineruns", selector=STARTED_BY_EXAMPLE)
        return [r for r in runs if (r.get("status") or {}).get("phase") == "Succeeded"]

    done = wait_until(succeeded, what="a run of the recurring example to succeed")
    assert done[0]["metadata"]["name"].startswith("fan-out-every-minute-")
    assert done[0]["status"]["outputs"] == {"Output": 16 + 25 + 36}  # its items, squared
    paused = tmp_path / "paused.yaml"
    paused.write_text(
        faster.read_text().replace("maxConcurrency: 1", "maxConcurrency: 1\n  enabled: false")
    )
    assert cli(cli_env, "apply", "-f", str(paused)).returncode == 0
    assert client.get("recurringrun", "fan-out-every-minute")["spec"]["enabled"] is False
    assert cli(cli_env, "delete", "recurringrun", "fan-out-every-minute").returncode == 0
    wait_until(
        lambda: not client.list("pipelineruns", selector=STARTED_BY_EXAMPLE),
        what="the runs it started to be deleted with it",
    )


def test_bad_input_is_refused_with_clear_messages(client: Client, cli_env: dict[str, str]) -> None:
    @dsl.pipeline
    def needs(n: int) -> int:
        return add(a=n, b=1).output

    with pytest.raises(Invalid, match="missing pipeline parameter 'n'"):
        client.run_pipeline(needs, {})
    with pytest.raises(Invalid, match="pipeline parameter 'n': expected an int"):
        client.run_pipeline(needs, {"n": "x"})

    @dsl.pipeline
    def unserialisable() -> None:
        bad_output()

    st = client.run_pipeline(unserialisable).wait(60)
    assert st["phase"] == "Failed"
    assert "output 'Output' cannot be serialised" in st["tasks"]["bad-output"]["message"]

    r = cli(cli_env, "run", str(PIPES / "fan_out.py"), "-p", "nope=1")
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and "unknown pipeline parameter 'nope'" in r.stderr
    assert "Traceback" not in r.stderr


def test_compile_is_byte_identical_and_the_yaml_runs(
    client: Client, cli_env: dict[str, str], tmp_path: Path
) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    for out in (a, b):
        r = cli(cli_env, "compile", str(PIPES / "fan_out.py"), "-o", str(out))
        assert r.returncode == 0, r.stderr
    assert a.read_bytes() == b.read_bytes()
    assert "def square" in a.read_text() and "sha256:" in a.read_text()
    r = cli(cli_env, "run", str(a), "--name", "from-yaml", "-p", "items=[2, 3]", "--watch")
    assert r.returncode == 0, r.stderr
    assert client.get("pipelineruns", "from-yaml")["status"]["outputs"] == {"Output": 13}


def test_user_error_fails_the_task_with_traceback_in_log(client: Client) -> None:
    @dsl.component
    def boom(x: int) -> int:
        return x // 0

    @dsl.pipeline
    def broken() -> int:
        return boom(x=1).output

    h = client.run_pipeline(broken)
    st = h.wait(60)
    assert st["phase"] == "Failed"
    assert st["tasks"]["boom"]["message"] == "ZeroDivisionError: integer division or modulo by zero"
    log = "".join(client.logs(st["tasks"]["boom"]["pod"]))
    assert "Traceback" in log and "x // 0" in log
    with pytest.raises(ShipyardError):
        h.wait(5, check=True)
