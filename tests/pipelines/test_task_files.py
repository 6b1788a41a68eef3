"""A task's request and results: the executor reads the request inline or from a file and
writes PREFIX.outputs.json / PREFIX.error.json; the controller passes small requests in the
Pod's args and large ones in a file."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from shipyard import dsl
from shipyard.client import Client
from shipyard.dsl import Dataset, Input, Output
from shipyard.pipelines import executor
from shipyard.pipelines.controller import INLINE_MAX


@dsl.component
def add(x: int) -> int:
    return x + 1


@dsl.component
def boom(x: int) -> int:
    raise ValueError(f"no {x}")


@dsl.component
def make(out: Output[Dataset]):
    with open(out.path, "w") as fh:
        fh.write("1,2,3")


@dsl.component
def count(inp: Input[Dataset]) -> int:
    with open(inp.path) as fh:
        return len(fh.read().split(","))


def request(comp: Any, tmp: Path, **extra: Any) -> dict[str, Any]:
    return {
        "component": comp.spec(),
        "parameters": {},
        "artifacts": {},
        "store": str(tmp / "store"),
        "envs": str(tmp / "envs"),
        **extra,
    }


def test_inline_request_writes_files_next_to_its_prefix_and_no_folder(tmp_path: Path) -> None:
    prefix = str(tmp_path / "add-0.1")
    req = request(add, tmp_path, parameters={"x": 41}, out=prefix)
    assert executor.run(json.dumps(req)) == 0
    assert json.loads(Path(f"{prefix}.outputs.json").read_text()) == {
        "parameters": {"Output": 42},
        "artifacts": {},
    }
    # No artifacts: neither the task's folder nor the artifact store is made.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["add-0.1.outputs.json"]


def test_a_missing_run_folder_is_made_again(tmp_path: Path) -> None:
    prefix = str(tmp_path / "gone" / "add.1")
    assert executor.run(json.dumps(request(add, tmp_path, parameters={"x": 1}, out=prefix))) == 0
    assert json.loads(Path(f"{prefix}.outputs.json").read_text())["parameters"] == {"Output": 2}


def test_a_failure_writes_the_error_file(tmp_path: Path) -> None:
    prefix = str(tmp_path / "boom.1")
    assert executor.run(json.dumps(request(boom, tmp_path, parameters={"x": 3}, out=prefix))) == 1
    assert json.loads(Path(f"{prefix}.error.json").read_text()) == {"message": "ValueError: no 3"}


def test_artifacts_go_under_the_prefix_folder_and_into_the_store(tmp_path: Path) -> None:
    prefix = str(tmp_path / "make.1")
    assert executor.run(json.dumps(request(make, tmp_path, out=prefix))) == 0
    out = json.loads(Path(f"{prefix}.outputs.json").read_text())["artifacts"]["out"]
    assert out["size"] == 5 and out["uri"].startswith("artifact://")
    req = request(count, tmp_path, artifacts={"inp": out}, out=str(tmp_path / "count.1"))
    assert executor.run(json.dumps(req)) == 0
    got = json.loads((tmp_path / "count.1.outputs.json").read_text())
    assert got["parameters"] == {"Output": 3}


def test_a_request_file_without_out_writes_beside_it(tmp_path: Path) -> None:
    folder = tmp_path / "add" / "1"
    folder.mkdir(parents=True)
    (folder / "input.json").write_text(json.dumps(request(add, tmp_path, parameters={"x": 1})))
    assert executor.run(folder / "input.json") == 0
    assert json.loads((folder / "outputs.json").read_text())["parameters"] == {"Output": 2}


class FakeWarm:
    """What runtime/warm.py offers a task forked by the warm pool: ready_file()."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def ready_file(self) -> str | None:
        path, self.path = self.path, None
        return str(path) if path is not None else None


@pytest.mark.parametrize("folder", ["made", "not made yet"])
def test_in_a_warm_container_the_file_made_ahead_is_written_and_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    """Also for the run's first task, whose folder the executor makes: the file made ahead
    is renamed into it, not left for the warm pool to delete."""
    ready = tmp_path / "ready.file"
    ready.touch()
    ino = ready.stat().st_ino
    monkeypatch.setitem(sys.modules, "shipyard.runtime.warm", FakeWarm(ready))
    run = tmp_path / "run" if folder == "made" else tmp_path / "runs" / "r1" / "uid"
    if folder == "made":
        run.mkdir()
    prefix = str(run / "add.1")
    assert executor.run(json.dumps(request(add, tmp_path, parameters={"x": 1}, out=prefix))) == 0
    out = Path(f"{prefix}.outputs.json")
    assert json.loads(out.read_text())["parameters"] == {"Output": 2}
    assert out.stat().st_ino == ino
    assert not ready.exists()


def test_a_file_made_ahead_that_is_gone_falls_back_to_a_plain_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "shipyard.runtime.warm", FakeWarm(tmp_path / "gone"))
    prefix = str(tmp_path / "run" / "add.1")
    assert executor.run(json.dumps(request(add, tmp_path, parameters={"x": 1}, out=prefix))) == 0
    assert json.loads(Path(f"{prefix}.outputs.json").read_text())["parameters"] == {"Output": 2}


@pytest.mark.e2e
def test_small_requests_go_in_the_pod_args_and_large_ones_in_a_file(
    client: Client, tmp_path: Path
) -> None:
    # A component whose source (a long literal) makes its request larger than INLINE_MAX.
    mod = tmp_path / "bigcomp.py"
    mod.write_text(
        "from shipyard import dsl\n\n\n@dsl.component\n"
        f"def big(x: int) -> int:\n    return x + len({'x' * INLINE_MAX!r})\n"
    )
    spec = importlib.util.spec_from_file_location("bigcomp", mod)
    assert spec is not None and spec.loader is not None
    bigcomp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bigcomp)

    @dsl.pipeline
    def two() -> int:
        return bigcomp.big(x=add(x=1).output).output

    st = client.run_pipeline(two, {}, cache=False).wait(60, check=True)
    assert st["outputs"] == {"Output": 2 + INLINE_MAX}
    small = client.get("pods", st["tasks"]["add"]["pod"])["spec"]["containers"][0]["args"]
    assert json.loads(small[0])["parameters"] == {"x": 1}
    large = client.get("pods", st["tasks"]["big"]["pod"])["spec"]["containers"][0]["args"]
    assert large[0].endswith("big.1.input.json")
    assert json.loads(Path(large[0]).read_text())["parameters"] == {"x": 2}


def test_the_executor_loads_what_installs_packages_only_when_a_component_names_some() -> None:
    # A warm zygote preloads the executor and every task is a fork of it: importlib.metadata
    # (with email, zipfile, csv, ...) made the zygote a sixth larger, subprocess brings
    # threading, whose at-fork hook runs in every fork, and uuid (for the DSL's placeholders)
    # a C extension and platform.
    code = (
        "import sys, shipyard.pipelines.executor_main\n"
        "assert 'importlib.metadata' not in sys.modules, 'loaded at import'\n"
        "assert 'subprocess' not in sys.modules, 'loaded at import'\n"
        "assert 'uuid' not in sys.modules, 'loaded at import'\n"
    )
    import subprocess

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@dsl.component
def defines_a_name(x: int) -> int:
    return x


def test_the_first_task_takes_the_preloaded_globals_and_later_ones_get_new_ones(
    tmp_path: Path,
) -> None:
    import importlib

    fresh = importlib.reload(executor)  # as a zygote imports it
    preloaded = fresh._PRELOADED_NS
    assert preloaded is not None and "dsl" in preloaded
    assert fresh._namespace() is preloaded  # no copy in a container's one task
    req = request(defines_a_name, tmp_path, parameters={"x": 1}, out=str(tmp_path / "a.1"))
    assert fresh.run(json.dumps(req)) == 0
    assert "defines_a_name" not in fresh._namespace()  # a second task: new globals
    again = fresh._namespace()
    assert again is not fresh._namespace() and "Input" in again
