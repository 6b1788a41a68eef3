"""Pods end to end against a real ``shipyard up`` process over HTTP: the watch shows a Pod's
phases in order, ``logs?follow=true`` streams output as it is written, and a crash-looping
``restartPolicy: Always`` Pod restarts until deleted."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard import errors
from shipyard.client import Client
from waiting import wait_until

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
SHIPYARD = str(Path(sys.executable).parent / "shipyard")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """One ``shipyard up`` for the module; SIGINT at the end stops it and its Pods."""
    tmp = tmp_path_factory.mktemp("pods-e2e")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, SHIPYARD_RESTART_BACKOFF="0.05", SHIPYARD_RESTART_BACKOFF_CAP="0.1")
    env.pop("SHIPYARD_URL", None)
    log = open(tmp / "up.log", "wb")  # noqa: SIM115  closed below
    proc = subprocess.Popen(
        [SHIPYARD, "up", "--port", str(port), "--data-dir", str(tmp / "data")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"shipyard up exited: {(tmp / 'up.log').read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(url + "/healthz", timeout=1).status_code == 200
        return False

    try:
        wait_until(healthy, 30, "shipyard up to answer /healthz")
        with Client(url) as c:
            yield c
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def pod(name: str, script: str, restart: str = "Never") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": restart,
            "containers": [{"name": "main", "command": ["sh", "-c", script]}],
        },
    }


def test_watch_shows_phases_in_order(server: Client, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    phases: list[str] = []
    done = threading.Event()
    rv = server.list_page("pods")["metadata"]["resourceVersion"]

    def watch() -> None:
        for ev in server.watch("pods", name="phases", resource_version=rv, timeout=20):
            phase = (ev["object"].get("status") or {}).get("phase") or "-"
            if not phases or phases[-1] != phase:
                phases.append(phase)
            if phase in ("Succeeded", "Failed"):
                break
        done.set()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    server.apply(pod("phases", f"while [ ! -e {gate} ]; do sleep 0.05; done"))
    server.wait("pod", "phases", phase="Running", timeout=20)
    gate.touch()
    assert done.wait(20), f"watch saw only {phases}"
    assert [p for p in phases if p != "-"][-2:] == ["Running", "Succeeded"]
    assert "Succeeded" not in phases[:-1]
    assert phases[0] in ("-", "Pending"), "the watch from before the create sees it ADDED"


def test_follow_logs_stream_output_as_it_is_written(server: Client, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    script = f"echo first; while [ ! -e {gate} ]; do sleep 0.05; done; echo second"
    server.apply(pod("follow", script))
    server.wait("pod", "follow", phase="Running", timeout=20)
    received: list[str] = []
    with httpx.stream(
        "GET",
        f"{server.url}/api/v1/namespaces/default/pods/follow/log",
        params={"follow": "true"},
        timeout=httpx.Timeout(10, read=20),
    ) as resp:
        assert resp.status_code == 200
        for chunk in resp.iter_text():
            received.append(chunk)
            text = "".join(received)
            if text == "first\n":
                gate.touch()  # the second line is written only after the first arrived
    assert "".join(received) == "first\nsecond\n"


def test_always_pod_crash_loops_until_deleted(server: Client) -> None:
    server.apply(pod("loop", "echo tick; exit 1", restart="Always"))
    obj = server.wait(
        "pod", "loop", jsonpath="{.status.containerStatuses[0].restartCount}=3", timeout=30
    )
    assert obj is not None
    assert obj["status"]["phase"] == "Running"
    assert obj["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1
    server.delete("pod", "loop", wait=True, timeout=30)
    with pytest.raises(errors.NotFound):
        server.get("pod", "loop")


def test_wait_from_the_object_just_created_sees_every_later_change(
    server: Client, tmp_path: Path
) -> None:
    """wait(seen=created) starts from the object the caller holds instead of a GET: a change
    made after it (here the Pod finishing) is still seen, and an object that already
    satisfies what is asked returns at once, as it is."""
    gate = tmp_path / "gate"
    created = server.create(pod("seen", f"while [ ! -e {gate} ]; do sleep 0.05; done"))
    same = server.wait("pod", "seen", jsonpath="{.metadata.name}=seen", seen=created, timeout=1)
    assert same is created
    threading.Timer(0.3, gate.touch).start()
    done = server.wait("pod", "seen", phase="Succeeded", seen=created, timeout=20)
    assert done is not None and done["status"]["phase"] == "Succeeded"
    assert int(done["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
