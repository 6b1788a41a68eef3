"""Crash safety for real: ``kill -9`` a running ``shipyard up`` while Pods run, let some of
them end while the control plane is down, start it again on the same data dir and check
what it makes of them. Also: SIGINT stops ``shipyard up`` together with its Pods.

Pods that must end "while the control plane is down" wait for a gate file the test creates
after the kill, so the order of events does not depend on timing.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from shipyard.client import Client
from shipyard.runtime.local import proc_start_ticks
from waiting import wait_until

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
SHIPYARD = str(Path(sys.executable).parent / "shipyard")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def container_pid(obj: Obj, index: int = 0) -> tuple[int, int]:
    cid = obj["status"]["containerStatuses"][index]["containerID"]
    pid, _, ticks = cid[len("local://") :].partition("/")
    return int(pid), int(ticks)


def alive(pid: int, ticks: int | None = None) -> bool:
    """The process lives (not a zombie) and, given ``ticks``, is still the same process."""
    now = proc_start_ticks(pid)
    return now is not None and (ticks is None or now == ticks)


def gone(proc: tuple[int, int]) -> bool:
    return not alive(*proc)


class Up:
    """``shipyard up`` as a child process; remembers every Pod process it saw, so that
    teardown can kill whatever is left even when the test failed half-way."""

    def __init__(self, data_dir: Path, port: int, log: Path) -> None:
        self.data_dir, self.port, self.log = data_dir, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pod_processes: set[tuple[int, int]] = set()

    def start(self) -> Client:
        env = dict(os.environ, SHIPYARD_RESTART_BACKOFF="0.05")
        env.pop("SHIPYARD_URL", None)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [SHIPYARD, "up", "--port", str(self.port), "--data-dir", str(self.data_dir)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_until(self._healthy, 30, f"/healthz of shipyard up (log: {self.tail()})")
        return Client(self.url)

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"shipyard up exited with {self.proc.returncode}: {self.tail()}")
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def tail(self) -> str:
        try:
            return self.log.read_text()[-3000:]
        except OSError:
            return ""

    def remember(self, obj: Obj) -> tuple[int, int]:
        pid = container_pid(obj)
        self.pod_processes.add(pid)
        return pid

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for pid, ticks in self.pod_processes:
            if alive(pid, ticks):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    data = tmp_path / "data"
    server = Up(data, free_port(), tmp_path / "up.log")
    try:
        yield server
    finally:
        server.cleanup()


def pod(name: str, script: str, restart: str = "Never") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"test": "crash"}},
        "spec": {
            "restartPolicy": restart,
            "containers": [{"name": "main", "command": ["sh", "-c", script]}],
        },
    }


def warm_pod(name: str, code: str) -> Obj:
    """A Pod forked by the warm pool (runtime/warm.py) rather than started by the shim."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {"shipyard.dev/warm": ""}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "command": [sys.executable, "-c", code]}],
        },
    }


def forked_by_a_zygote(pid: int) -> bool:
    return "shipyard.runtime.warm" in " ".join(psutil.Process(pid).parent().cmdline())


def test_kill9_then_restart_readopts_and_recovers(up: Up, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    second_run = tmp_path / "second-run"
    wait_gate = f"while [ ! -e {gate} ]; do sleep 0.05; done"
    c = up.start()
    c.apply(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "q", "namespace": "team-a"},
                "spec": {"hard": {"pods": "5"}},
            },
        ]
    )
    c.apply(pod("long", "exec sleep 30"))
    c.apply(pod("exits", f"{wait_gate}; exit 3"))
    c.apply(
        pod(
            "flaky",
            f"if [ -e {second_run} ]; then exec sleep 30; fi; {wait_gate}; "
            f"touch {second_run}; exit 1",
            restart="OnFailure",
        )
    )
    c.apply(
        warm_pod(
            "warm-exits",
            f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.05)\n"
            "raise SystemExit(5)",
        )
    )
    c.apply(warm_pod("warm-done", "raise SystemExit(6)"))
    c.apply(pod("done", "echo finished"))
    c.wait("pod", "done", phase="Succeeded", timeout=30)
    c.wait("pod", "warm-done", phase="Failed", timeout=30)
    procs = {}
    for name in ("long", "exits", "flaky", "warm-exits"):
        obj = c.wait("pod", name, phase="Running", timeout=30)
        assert obj is not None
        procs[name] = up.remember(obj)
    before = {
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
        for kind in ("pods", "namespaces", "resourcequotas")
        for o in c.list(kind, all_namespaces=True)
    }
    c.close()

    assert forked_by_a_zygote(procs["warm-exits"][0])

    up.kill9()
    assert alive(*procs["long"]), "kill -9 of the control plane must not take Pods with it"
    assert alive(*procs["warm-exits"]), "nor those forked by its warm pool"
    gate.touch()
    for name in ("exits", "flaky", "warm-exits"):
        wait_until(functools.partial(gone, procs[name]), what=f"{name} to exit while down")

    c = up.start()
    try:
        # (b) ended while the control plane was down: its real exit code.
        obj = c.wait("pod", "exits", phase="Failed,Succeeded", timeout=30)
        assert obj is not None
        term = obj["status"]["containerStatuses"][0]["state"]["terminated"]
        assert obj["status"]["phase"] == "Failed"
        assert term["exitCode"] == 3
        assert term["reason"] == "Error"
        # The same for a warm container: its zygote wrote the code it could not tell.
        obj = c.wait("pod", "warm-exits", phase="Failed,Succeeded", timeout=30)
        assert obj is not None
        assert obj["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 5
        # No exit file is left behind by a code recorded before the kill, nor after.
        wait_until(
            lambda: not list((up.data_dir / "run").glob("*.exit")),
            what="no exit file once every code is recorded",
        )

        # (c) died while down, restartPolicy OnFailure: restarted, and now runs again.
        obj = c.wait(
            "pod",
            "flaky",
            jsonpath="{.status.containerStatuses[0].restartCount}=1",
            timeout=30,
        )
        assert obj is not None
        cs = obj["status"]["containerStatuses"][0]
        assert cs["lastState"]["terminated"]["exitCode"] == 1
        obj = c.wait("pod", "flaky", phase="Running", timeout=30)
        assert obj is not None
        up.remember(obj)

        # (a) still running: re-adopted, the same process, and stoppable through the API.
        obj = c.get("pod", "long")
        assert obj["status"]["phase"] == "Running"
        assert container_pid(obj) == procs["long"]
        assert alive(*procs["long"])
        c.delete("pod", "long", wait=True, timeout=30)
        wait_until(lambda: not alive(*procs["long"]), what="the re-adopted process to stop")

        # Everything committed before the kill is still there, unchanged in identity.
        after = {
            (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
            for kind in ("pods", "namespaces", "resourcequotas")
            for o in c.list(kind, all_namespaces=True)
        }
        missing = set(before) - set(after) - {("Pod", "default", "long")}
        assert not missing
        for key, old in before.items():
            if key in after:
                assert after[key]["metadata"]["uid"] == old["metadata"]["uid"]
                assert after[key].get("spec") == old.get("spec")
        assert after[("Pod", "default", "done")]["status"]["phase"] == "Succeeded"
        assert "finished" in "".join(c.logs("done"))
    finally:
        c.close()


def test_sigint_stops_shipyard_up_and_its_pods(up: Up) -> None:
    c = up.start()
    c.apply(pod("sleeper", "exec sleep 60"))
    c.apply(pod("sleeper2", "sleep 60 & wait"))
    procs = []
    for name in ("sleeper", "sleeper2"):
        obj = c.wait("pod", name, phase="Running", timeout=30)
        assert obj is not None
        procs.append(up.remember(obj))
    # The background sleep of sleeper2 (a grandchild of the container's wrapper) too.
    kids = wait_until(
        lambda: [
            k for k in psutil.Process(procs[1][0]).children(recursive=True) if k.name() == "sleep"
        ],
        what="sleeper2's background sleep",
    )
    procs += [(k.pid, proc_start_ticks(k.pid) or 0) for k in kids]
    c.close()
    assert up.proc is not None
    up.proc.send_signal(signal.SIGINT)
    assert up.proc.wait(timeout=30) == 0, up.tail()
    for pid, ticks in procs:
        assert not alive(pid, ticks), f"pod process {pid} outlived shipyard up"
