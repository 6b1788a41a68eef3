"""The README's "A short CLI tour", command by command, against ``shipyard up --apply
examples/`` started as ``make up`` starts it. The commands are read from the README itself,
so the tour cannot drift from what works."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from platform_fixtures import ROOT, shipyard_cmd
from shipyard.server.serve import free_port

pytestmark = pytest.mark.e2e

MY_POD = """apiVersion: v1
kind: Pod
metadata: {name: my-pod}
spec:
  restartPolicy: Never
  containers: [{name: main, command: ["python", "-c", "print('mine')"]}]
"""


def tour_commands() -> list[str]:
    """The ``shipyard ...`` lines of the README's CLI tour, comments stripped."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A short CLI tour", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the CLI tour has no bash block"
    out = []
    for line in block.group(1).splitlines():
        cmd = line.split(" #", 1)[0].strip()
        if cmd.startswith("shipyard "):
            out.append(cmd)
    return out


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("tour")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp / "up.log", "w")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(
        [
            *shipyard_cmd(),
            "up",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(tmp / "data"),
            "--apply",
            "examples/",
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "SHIPYARD_URL"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while "pod/hello" not in (tmp / "up.log").read_text():
            text = (tmp / "up.log").read_text()
            assert proc.poll() is None and "error:" not in text, text
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
        assert httpx.get(url + "/healthz").text == "ok"
        work = tmp / "work"
        work.mkdir()
        (work / "my-pod.yaml").write_text(MY_POD)
        yield url, work
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()


def run(url: str, cwd: Path, cmd: str) -> subprocess.CompletedProcess[str]:
    """Run a tour line as a user would after ``source .venv/bin/activate``."""
    env = dict(os.environ, SHIPYARD_URL=url)
    env["PATH"] = f"{Path(shipyard_cmd()[0]).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        shlex.split(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_the_readme_tour(up: tuple[str, Path]) -> None:
    url, work = up
    cmds = tour_commands()
    expected = [
        "shipyard get pods",
        "shipyard wait pod/hello --for=jsonpath='{.status.phase}'=Succeeded --timeout=30s",
        "shipyard logs hello",
        "shipyard describe pod hello",
        "shipyard get quota -n team-a",
        "shipyard get pods -o yaml",
        "shipyard apply -f my-pod.yaml",
        "shipyard delete pod hello",
    ]
    assert cmds == expected, "the README's CLI tour changed: update this test with it"

    out = {cmd: run(url, work, cmd).stdout for cmd in cmds[:2]}
    table = out[cmds[0]].splitlines()
    assert table[0].split()[:3] == ["NAME", "READY", "STATUS"]
    assert any(line.split()[0] == "hello" for line in table[1:])
    assert "pod/hello condition met" in out[cmds[1]]

    # After the wait, the Pod has finished: the rest of the tour sees it Succeeded.
    assert "Succeeded" in run(url, work, "shipyard get pods hello").stdout

    logs = run(url, work, cmds[2]).stdout.splitlines()
    assert logs[0].startswith("hello from hello on Python 3.")
    assert logs[1] == "GREETING=ahoy"

    described = run(url, work, cmds[3]).stdout
    assert "hello" in described and "Succeeded" in described
    assert "terminated" in described and "Completed" in described
    assert "GREETING" in described

    quota = run(url, work, cmds[4]).stdout.splitlines()
    assert quota[0].split()[:2] == ["NAME", "REQUEST"]
    assert quota[1].startswith("team-a-quota")
    assert "pods: 0/5" in quota[1] and "requests.cpu: 0/1" in quota[1]

    docs = [d for d in yaml.safe_load_all(run(url, work, cmds[5]).stdout) if d]
    hello = next(d for d in docs if d["metadata"]["name"] == "hello")
    assert hello["status"]["phase"] == "Succeeded"

    assert run(url, work, cmds[6]).stdout.strip() == "pod/my-pod created"
    run(url, work, "shipyard wait pod/my-pod --for=phase=Succeeded --timeout=30s")
    assert run(url, work, "shipyard logs my-pod").stdout == "mine\n"

    assert run(url, work, cmds[7]).stdout.strip() == "pod/hello deleted"
    remaining = run(url, work, "shipyard get pods -o name").stdout.split()
    assert remaining == ["pod/my-pod"]
