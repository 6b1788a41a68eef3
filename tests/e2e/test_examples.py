"""``make up`` for real: ``shipyard up --apply examples/`` as a subprocess, then the example
Pod and the namespace with its quota through the client, then Ctrl-C (SIGINT) stops the
platform together with its Pods.

Only ``examples/pod.yaml`` and ``examples/namespace-with-quota.yaml`` are checked here; other
examples have their own tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from platform_fixtures import ROOT, shipyard_cmd
from shipyard import errors
from shipyard.client import Client
from shipyard.server.serve import free_port

pytestmark = pytest.mark.e2e


class Up:
    """A ``shipyard up`` subprocess started exactly as ``make up`` starts it."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out = open(log, "w")  # noqa: SIM115  (closed in stop())
        self.proc = subprocess.Popen(
            [
                *shipyard_cmd(),
                "up",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(data_dir),
                "--apply",
                "examples/",
            ],
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if k != "SHIPYARD_URL"},
            stdout=self._out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.wait_healthy()

    def output(self) -> str:
        return self.log.read_text()

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"shipyard up exited early:\n{self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).text == "ok":
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"shipyard up did not become healthy:\n{self.output()}")

    def wait_output(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert time.monotonic() < deadline, f"{text!r} never printed:\n{self.output()}"
            assert self.proc.poll() is None, self.output()
            assert "error:" not in self.output(), self.output()
            time.sleep(0.05)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        self._out.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("up")
    server = Up(tmp / "data", tmp / "up.log")
    try:
        yield server
    finally:
        server.stop()


def test_examples_are_applied_on_up(up: Up) -> None:
    up.wait_output("pod/hello")
    out = up.output()
    assert f"is up at {up.url}" in out
    for ref in ("namespace/team-a", "resourcequota/team-a-quota", "pod/hello"):
        assert ref in out, out
    assert "error" not in out.lower(), out


def test_example_pod_succeeds_with_its_output(up: Up) -> None:
    up.wait_output("pod/hello")
    with Client(up.url) as c:
        pod = c.wait("pod", "hello", phase="Succeeded,Failed", timeout=60)
        assert pod is not None and pod["status"]["phase"] == "Succeeded", pod
        term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 0
        lines = "".join(c.logs("hello")).splitlines()
    assert lines[0].startswith("hello from hello on Python 3.")
    assert lines[1] == "GREETING=ahoy"


def test_example_namespace_and_quota(up: Up) -> None:
    up.wait_output("resourcequota/team-a-quota")
    with Client(up.url) as c:
        assert c.get("namespace", "team-a")["kind"] == "Namespace"
        quota = c.get("quota", "team-a-quota", "team-a")
        assert quota["spec"]["hard"] == {"pods": "5", "requests.cpu": "1", "requests.memory": "1Gi"}
        # The quota is enforced: a Pod asking for more CPU than it allows is refused.
        big = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "too-big", "namespace": "team-a"},
            "spec": {
                "containers": [
                    {"name": "main", "command": ["true"], "resources": {"requests": {"cpu": "2"}}}
                ]
            },
        }
        with pytest.raises(errors.Forbidden) as info:
            c.apply(big)
        assert "team-a-quota" in info.value.message


def _processes_with(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and marker in " ".join(
                p.info["cmdline"] or []
            ):
                found.append(p)
        except psutil.Error:
            continue
    return found


def test_sigint_stops_the_platform_and_its_pods(tmp_path: Path) -> None:
    """Runs last in this file on its own server: Ctrl-C ends ``shipyard up`` and every
    process of its Pods."""
    server = Up(tmp_path / "data", tmp_path / "up.log")
    marker = f"shipyard-e2e-{uuid.uuid4().hex}"
    try:
        with Client(server.url) as c:
            c.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "sleeper"},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "main",
                                # A child of its own too: the whole process group must go.
                                "command": [
                                    sys.executable,
                                    "-c",
                                    "import subprocess, sys, time;"
                                    "subprocess.Popen([sys.executable, '-c',"
                                    " 'import time; time.sleep(300)', sys.argv[1]]);"
                                    "time.sleep(300)",
                                    marker,
                                ],
                            }
                        ],
                    },
                }
            )
            c.wait("pod", "sleeper", phase="Running", timeout=60)
        deadline = time.monotonic() + 30
        while len(_processes_with(marker)) < 2:
            assert time.monotonic() < deadline, "the Pod's processes never appeared"
            time.sleep(0.05)
    finally:
        rc = server.stop()
    assert rc == 0, server.output()
    assert "Shipyard stopped." in server.output()
    assert "Traceback" not in server.output()
    deadline = time.monotonic() + 10
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(marker) == [], "Pod processes outlived shipyard up"
