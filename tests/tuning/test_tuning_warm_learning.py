"""The warm pool learns what trial processes import (runtime/warm.py): a module a container
imported lazily, from where the zygote would import it too, is preloaded for the next
containers, and a module run with ``-m`` (``shipyard.tuning.function_trial``) runs from code
the zygote compiled; what a container imported from its own folder is never taken."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.runtime.base import Assignment
from shipyard.runtime.local import LocalRuntime

Obj = dict[str, Any]


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[LocalRuntime]:
    r = LocalRuntime(tmp_path / "data")
    try:
        yield r
    finally:
        r.shutdown(grace=2)


def run(rt: LocalRuntime, command: list[str], **spec: Any) -> tuple[str, str]:
    pod: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"l-{uuid.uuid4().hex[:6]}",
            "namespace": "default",
            "uid": str(uuid.uuid4()),
            "annotations": {"shipyard.dev/warm": ""},
        },
        "spec": {
            "containers": [{"name": "main", "command": command, **spec}],
            "restartPolicy": "Never",
        },
    }
    rt.start(pod, Assignment())
    deadline = time.monotonic() + 30
    while not ((st := rt.status(pod)) and st["phase"] in ("Succeeded", "Failed")):
        assert time.monotonic() < deadline, "the pod did not finish"
        time.sleep(0.01)
    return st["phase"], b"".join(rt.logs(pod)).decode()


def test_lazily_imported_modules_are_preloaded_for_the_next_container(
    rt: LocalRuntime, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "mylocal.py").write_text("VALUE = 1\n")
    code = (
        "import sys; print('had', 'colorsys' in sys.modules, 'mylocal' in sys.modules); "
        "import colorsys, mylocal"
    )
    seen = [run(rt, ["python", "-c", code], workingDir=str(work)) for _ in range(3)]
    assert [phase for phase, _ in seen] == ["Succeeded"] * 3
    assert seen[0][1].strip() == "had False False"
    # The standard module is the zygote's now; the one from the container's folder is not.
    assert seen[1][1].strip() == seen[2][1].strip() == "had True False"


def test_a_failed_container_teaches_nothing(rt: LocalRuntime) -> None:
    code = "import sys; print('had', 'colorsys' in sys.modules); import colorsys; sys.exit(3)"
    first = run(rt, ["python", "-c", code])
    second = run(rt, ["python", "-c", code])
    assert first[0] == second[0] == "Failed"
    assert first[1].strip() == second[1].strip() == "had False"


def test_a_function_trial_runs_alike_from_learned_code(rt: LocalRuntime) -> None:
    source = (
        "def f(params):\n"
        "    import sys\n"
        "    print('argv', sys.argv[1:], 'main', sys.modules['__main__'].__spec__.name)\n"
        "    return params['x'] * 2\n"
    )
    env = [
        {"name": "SHIPYARD_TRIAL_FUNCTION", "value": source},
        {"name": "SHIPYARD_TRIAL_FUNCTION_NAME", "value": "f"},
        {"name": "SHIPYARD_TRIAL_TYPES", "value": '{"x": "double"}'},
        {"name": "SHIPYARD_TRIAL_RESULT", "value": "stdout"},
    ]
    cmd = ["python", "-m", "shipyard.tuning.function_trial", "x=1.5"]
    logs = [run(rt, cmd, env=env) for _ in range(3)]
    expected = (
        "argv ['x=1.5'] main shipyard.tuning.function_trial\nshipyard-trial-metric objective=3.0"
    )
    assert all(phase == "Succeeded" for phase, _ in logs)
    assert [text.strip() for _, text in logs] == [expected] * 3
