"""The start journal (runtime/journal.py): a container started just before the control plane
died, before any status write named its process, is adopted by the next control plane and
not started a second time. Two LocalRuntimes on one data dir stand for the control plane
before and after the kill: the first one's processes (and shim, and zygote) live on."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.runtime import journal
from shipyard.runtime.base import Assignment
from shipyard.runtime.journal import Start, StartJournal
from shipyard.runtime.local import LocalRuntime, proc_start_ticks
from waiting import wait_until

Obj = dict[str, Any]


def pod(command: list[str], *, warm: bool = False) -> Obj:
    md: Obj = {"name": f"j-{uuid.uuid4().hex[:6]}", "namespace": "default"}
    md["uid"] = str(uuid.uuid4())
    if warm:
        md["annotations"] = {"shipyard.dev/warm": ""}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": md,
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "command": command}]},
    }


@pytest.fixture
def runtimes(tmp_path: Path) -> Iterator[list[LocalRuntime]]:
    made: list[LocalRuntime] = []
    try:
        yield made
    finally:
        for rt in reversed(made):
            rt.shutdown(grace=1)


def status_of(rt: LocalRuntime, p: Obj, phase: str) -> Obj:
    got: Obj = wait_until(
        lambda: (st := rt.status(p)) and st["phase"] == phase and st, what=f"phase {phase}"
    )
    return got


@pytest.mark.parametrize("warm", [False, True], ids=["shim", "warm"])
def test_a_start_the_store_never_heard_of_is_adopted_not_repeated(
    tmp_path: Path, runtimes: list[LocalRuntime], warm: bool
) -> None:
    data = tmp_path / "data"
    before = LocalRuntime(data)
    runtimes.append(before)
    cmd = [sys.executable, "-c", "import time; time.sleep(60)"] if warm else ["sleep", "60"]
    p = pod(cmd, warm=warm)
    before.start(p, Assignment())
    running = status_of(before, p, "Running")
    cid = running["containerStatuses"][0]["containerID"]
    pid = int(cid[len("local://") :].split("/")[0])

    # The control plane dies before the Pod's status (with its process) is written: the
    # stored Pod has no status at all. The next one finds the process in the journal.
    after = LocalRuntime(data)
    runtimes.append(after)
    assert after.adopt(p) is True
    adopted = after.status(p)
    assert adopted is not None and adopted["phase"] == "Running"
    assert adopted["containerStatuses"][0]["containerID"] == cid
    assert after.stop(p, grace_seconds=1) is False
    wait_until(lambda: after.stop(p), what="the adopted process to stop")
    assert proc_start_ticks(pid) is None


def test_a_start_that_ended_while_down_gives_its_code_and_is_not_repeated(
    tmp_path: Path, runtimes: list[LocalRuntime]
) -> None:
    data = tmp_path / "data"
    before = LocalRuntime(data)
    runtimes.append(before)
    p = pod(["sh", "-c", "exit 3"])
    before.start(p, Assignment())
    status_of(before, p, "Failed")
    shim = before._shim
    assert shim is not None
    # The control plane dies: the shim writes the code it held. The runtime may notice
    # the shim is gone and drop it at once, so the test keeps its own reference.
    shim.close()
    shim.proc.wait(timeout=10)

    after = LocalRuntime(data)
    runtimes.append(after)
    assert after.adopt(p) is True
    ended = status_of(after, p, "Failed")
    assert ended["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert ended["containerStatuses"][0]["restartCount"] == 0


def test_the_journal_keeps_what_can_matter_and_compacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "starts.journal"
    path.write_text(
        "u1 main 11 100 0 2026-01-01T00:00:00Z\n"
        "u1 main 12 101 1 2026-01-01T00:00:01Z\n"  # a restart: the last start counts
        "u2 main 13 102 0 2026-01-01T00:00:02Z\n"
        "u3 main 14 1\n"  # cut short by a crash mid-write
        "garbage\n"
    )
    kept = StartJournal(path, keep=lambda uid, name, s: uid == "u1")
    assert kept.found("u1") == {"main": Start(12, 101, 1, "2026-01-01T00:00:01Z")}
    assert kept.found("u2") == {} and kept.found("u3") == {}
    assert path.read_text() == "u1 main 12 101 1 2026-01-01T00:00:01Z\n"

    monkeypatch.setattr(journal, "COMPACT_EVERY", 2)
    assert kept.record("u4", "main", Start(15, 103, 0, "t")) is False
    assert kept.record("u5", "main", Start(16, 104, 0, "t")) is True
    kept.compact([("u5", "main", Start(16, 104, 0, "t"))])
    kept.record("u6", "main", Start(17, 105, 0, "t"))
    kept.close()
    assert path.read_text() == "u5 main 16 104 0 t\nu6 main 17 105 0 t\n"
    assert StartJournal(path, keep=lambda *_: True).found("u6") == {"main": Start(17, 105, 0, "t")}


def test_a_journalled_process_that_is_gone_without_a_code_is_dropped_on_load(
    tmp_path: Path, runtimes: list[LocalRuntime]
) -> None:
    import subprocess

    done = subprocess.Popen(["true"])
    done.wait()  # its pid names no process now (and its start ticks no other one)
    data = tmp_path / "data"
    (data / "run").mkdir(parents=True)
    p = pod(["sleep", "60"])
    (data / "run" / "starts.journal").write_text(
        f"{p['metadata']['uid']} main {done.pid} 1 0 2026-01-01T00:00:00Z\n"
    )
    rt = LocalRuntime(data)
    runtimes.append(rt)
    assert rt.adopt(p) is False  # nothing to adopt: the Pod starts the normal way
    assert (data / "run" / "starts.journal").read_text() == ""
