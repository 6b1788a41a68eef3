"""The process shim (runtime/shim.py): the parent of local containers, in its own process,
which records every exit code so a control plane killed with SIGKILL loses none."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.runtime.base import Assignment
from shipyard.runtime.local import LocalRuntime
from shipyard.runtime.shim import Shim, ShimError, make_dir, open_log
from waiting import process_gone, wait_until


@pytest.fixture
def shim(tmp_path: Path) -> Iterator[Shim]:
    s = Shim(tmp_path / "shim.log")
    try:
        yield s
    finally:
        s.close()


# Exits heard while waiting for an answer, kept for collect().
_heard: dict[int, list[tuple[Any, ...]]] = {}


def answer(shim: Shim, rid: int) -> tuple[Any, ...]:
    """Wait for the answer to request ``rid``."""
    found: list[tuple[Any, ...]] = []

    def check() -> bool:
        for ev in shim.events():
            if ev[0] == "exited":
                _heard.setdefault(id(shim), []).append(ev)
            elif ev[1] == rid:
                found.append(ev)
        return bool(found)

    wait_until(check, what=f"the answer to request {rid}")
    return found[0]


def start(shim: Shim, tmp_path: Path, name: str, *argv: str) -> tuple[int, Path, Path]:
    log, exit_file = tmp_path / f"{name}.log", tmp_path / f"{name}.exit"
    rid = shim.start(list(argv), dict(os.environ), str(tmp_path), str(log), str(exit_file))
    got = answer(shim, rid)
    if got[0] == "error":
        raise ShimError(got[2])
    pid, ticks = got[2], got[3]
    assert pid > 0 and ticks >= 0
    return pid, log, exit_file


def collect(shim: Shim, pids: set[int]) -> dict[int, tuple[int, int | None]]:
    got: dict[int, tuple[int, int | None]] = {}

    def done() -> bool:
        heard = _heard.pop(id(shim), []) + [e for e in shim.events() if e[0] == "exited"]
        got.update({ev[1]: (ev[2], ev[3]) for ev in heard})
        return pids <= got.keys()

    wait_until(done, what=f"exits of {pids}")
    return got


def test_exit_codes_and_signals_are_reported_and_kept_until_forgotten(tmp_path: Path) -> None:
    shim = Shim(tmp_path / "shim.log")
    ok, ok_log, ok_exit = start(shim, tmp_path, "ok", "sh", "-c", "echo hi; echo err >&2")
    bad, _, bad_exit = start(shim, tmp_path, "bad", "sh", "-c", "exit 7")
    killed, _, killed_exit = start(shim, tmp_path, "killed", "sleep", "30")
    os.killpg(killed, signal.SIGTERM)  # its own process group
    got = collect(shim, {ok, bad, killed})
    assert got[ok] == (0, None) and got[bad] == (7, None)
    assert got[killed] == (128 + signal.SIGTERM, signal.SIGTERM)
    assert ok_log.read_text() == "hi\nerr\n"
    # Told, and kept by the shim rather than in files while the control plane is there.
    assert not any(p.exists() for p in (ok_exit, bad_exit, killed_exit))
    assert shim.forget(str(ok_exit))  # recorded by the control plane
    shim.close()  # as a control plane killed with SIGKILL would: the rest are written
    shim.proc.wait(timeout=10)
    assert not ok_exit.exists()
    assert (bad_exit.read_text(), killed_exit.read_text()) == ("7\n", f"{128 + signal.SIGTERM}\n")
    assert not shim.forget(str(bad_exit)), "a shim that is gone holds nothing"


def test_what_a_container_leaves_in_its_group_dies_with_it(shim: Shim, tmp_path: Path) -> None:
    leader, _, _ = start(shim, tmp_path, "lead", "sh", "-c", "sleep 60 & echo $! > kid; sleep 0.3")
    got = collect(shim, {leader})
    assert got[leader] == (0, None)
    kid = int((tmp_path / "kid").read_text())
    wait_until(lambda: process_gone(kid))


def test_a_container_that_cannot_start_is_an_error_naming_why(shim: Shim, tmp_path: Path) -> None:
    with pytest.raises(ShimError, match="no-such-program"):
        start(shim, tmp_path, "x", "no-such-program")
    (tmp_path / "file").write_text("")  # a folder cannot be made under a file
    where = str(tmp_path / "file" / "sub")
    rid = shim.start(["true"], {}, where, str(tmp_path / "l"), str(tmp_path / "e"))
    kind, _, why = answer(shim, rid)
    assert kind == "error" and "Not a directory" in why and "file" in why
    pid, _, _ = start(shim, tmp_path, "after", "true")  # and the shim still works
    assert collect(shim, {pid})[pid] == (0, None)


def test_after_hang_up_the_shim_records_the_rest_then_exits(tmp_path: Path) -> None:
    shim = Shim()
    gate = tmp_path / "gate"
    pid, _, exit_file = start(
        shim, tmp_path, "late", "sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.02; done; exit 3"
    )
    shim.close()  # as a control plane killed with SIGKILL would
    time.sleep(0.2)
    assert shim.proc.poll() is None, "the shim must outlive its control plane while work runs"
    gate.touch()
    wait_until(lambda: exit_file.exists(), what="the exit file")
    assert exit_file.read_text() == "3\n"
    shim.proc.wait(timeout=10)
    assert process_gone(pid)


def test_runtime_survives_the_death_of_its_shim(tmp_path: Path) -> None:
    rt = LocalRuntime(tmp_path / "data")
    try:

        def pod(name: str, command: list[str]) -> dict[str, Any]:
            return {
                "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "command": command}],
                },
            }

        long = pod("long", ["sleep", "30"])
        rt.start(long, Assignment())
        wait_until(lambda: (rt.status(long) or {}).get("phase") == "Running")
        shim = rt._shim
        assert shim is not None
        shim.proc.kill()
        # Its orphan is watched directly; killed now, its code is lost and says so (137).
        cid = (rt.status(long) or {})["containerStatuses"][0]["containerID"]
        pid = int(cid[len("local://") :].split("/")[0])
        wait_until(lambda: rt._shim is None or not rt._shim.alive or rt._shim is not shim)
        os.killpg(pid, signal.SIGKILL)
        status = wait_until(
            lambda: (s := rt.status(long)) and s["phase"] in ("Succeeded", "Failed") and s
        )
        assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
        # A new shim starts the next Pod.
        quick = pod("quick", [sys.executable, "-c", "raise SystemExit(5)"])
        rt.start(quick, Assignment())
        status = wait_until(
            lambda: (s := rt.status(quick)) and s["phase"] in ("Succeeded", "Failed") and s
        )
        assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 5
    finally:
        rt.shutdown(grace=1.0)


def test_start_returns_at_once_and_the_runtime_calls_back_when_running(tmp_path: Path) -> None:
    rt = LocalRuntime(tmp_path / "data")
    heard: list[str] = []
    rt.set_on_change(lambda ns, name: heard.append(name))
    try:
        pod = {
            "metadata": {"name": "p", "namespace": "default", "uid": "uid-p"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "command": ["sleep", "5"]}],
            },
        }
        rt.start(pod, Assignment())
        first = rt.status(pod)
        assert first is not None
        cs = first["containerStatuses"][0]
        if first["phase"] == "Pending":  # the shim has not answered yet: nothing to adopt
            assert cs["state"]["waiting"]["reason"] == "ContainerCreating"
            assert "containerID" not in cs
        wait_until(lambda: "p" in heard, what="the call back")
        running = rt.status(pod)
        assert running is not None and running["phase"] == "Running"
        assert running["containerStatuses"][0]["containerID"].startswith("local://")
        # Stopped right away: stop() says so only when the process is really gone.
        assert not rt.stop(pod, grace_seconds=1.0)
        wait_until(lambda: rt.stop(pod), what="the stop")
    finally:
        rt.shutdown(grace=1.0)


def test_the_runtime_lets_the_shim_forget_a_code_once_its_pod_is_forgotten(
    tmp_path: Path,
) -> None:
    rt = LocalRuntime(tmp_path / "data")
    try:
        pods = {
            name: {
                "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "command": cmd}]},
            }
            for name, cmd in (("recorded", ["true"]), ("unrecorded", ["sh", "-c", "exit 4"]))
        }
        for p in pods.values():
            rt.start(p, Assignment())
        for p in pods.values():
            wait_until(lambda p=p: (rt.status(p) or {}).get("phase") in ("Succeeded", "Failed"))
        rt.forget(pods["recorded"])
        assert not list(rt.run_dir.glob("*.exit")), "no exit file while the control plane is up"
        shim = rt._shim
        assert shim is not None
        shim.close()  # the control plane dies before it recorded the second Pod's end
        shim.proc.wait(timeout=10)
        assert sorted(p.name for p in rt.run_dir.glob("*.exit")) == ["uid-unrecorded.c.exit"]
        assert (rt.run_dir / "uid-unrecorded.c.exit").read_text() == "4\n"
    finally:
        rt.shutdown(grace=1.0)


def test_a_container_gets_default_signals_and_not_the_shims_socket(
    shim: Shim, tmp_path: Path
) -> None:
    # The shim ignores SIGINT (Ctrl-C is the control plane's) and Python ignores SIGPIPE;
    # a container starts with neither ignored, and with only stdin, stdout and stderr open.
    pid, log, _ = start(
        shim, tmp_path, "sigs", "sh", "-c", "grep SigIgn /proc/$$/status; ls /proc/$$/fd"
    )
    assert collect(shim, {pid})[pid] == (0, None)
    first, *fds = log.read_text().split()[1:]
    ignored = int(first, 16)
    assert not ignored & (1 << (signal.SIGINT - 1)), "SIGINT is ignored in the container"
    assert not ignored & (1 << (signal.SIGPIPE - 1)), "SIGPIPE is ignored in the container"
    assert sorted(fds) == ["0", "1", "2"], f"the container holds fds {fds}"


def test_a_command_is_found_in_the_containers_path(shim: Shim, tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "only-here"
    tool.write_text("#!/bin/sh\necho found me\n")
    tool.chmod(0o755)
    env = {"PATH": f"{bindir}:/usr/bin:/bin"}
    log = tmp_path / "found.log"
    rid = shim.start(["only-here"], env, str(tmp_path), str(log), str(tmp_path / "x"))
    got = answer(shim, rid)
    assert got[0] == "started", got
    assert collect(shim, {got[2]})[got[2]] == (0, None)
    assert log.read_text() == "found me\n"


def test_a_containers_folders_are_made_whether_new_existing_or_deeper(tmp_path: Path) -> None:
    new = tmp_path / "pods" / "ns"
    make_dir(str(new))  # its parent is missing: made too
    make_dir(str(new / "p"))  # the usual case: one mkdir
    make_dir(str(new / "p"))  # a Pod of the same name again, or a restart: left as is
    assert (new / "p").is_dir()
    fd = open_log(str(tmp_path / "logs" / "ns" / "p_main.log"))
    os.write(fd, b"one\n")
    os.close(fd)
    fd = open_log(str(tmp_path / "logs" / "ns" / "p_main.log"))  # appends
    os.write(fd, b"two\n")
    os.close(fd)
    assert (tmp_path / "logs" / "ns" / "p_main.log").read_text() == "one\ntwo\n"
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        make_dir(str(tmp_path / "file" / "p"))
