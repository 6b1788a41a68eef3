"""The warm path of the local runtime (runtime/warm.py): Pods annotated ``shipyard.dev/warm``
whose command is a Python invocation are forked from a zygote, and must behave exactly as
normally spawned containers: exit codes, logs, env, cwd, restarts, kill, re-adoption."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from shipyard.runtime import warm
from shipyard.runtime.base import Assignment
from shipyard.runtime.local import LocalRuntime
from waiting import process_gone, wait_until

Obj = dict[str, Any]


def warm_pod(*containers: Obj, warm: str = "", restart: str = "Never", **ann: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"w-{uuid.uuid4().hex[:6]}",
            "namespace": "default",
            "uid": str(uuid.uuid4()),
            "annotations": {"shipyard.dev/warm": warm, **ann},
        },
        "spec": {"containers": list(containers), "restartPolicy": restart},
    }


def py(code: str, name: str = "main", **extra: Any) -> Obj:
    return {"name": name, "command": ["python", "-c", code], **extra}


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[LocalRuntime]:
    r = LocalRuntime(tmp_path / "data", backoff_base=0.05, backoff_cap=0.2)
    try:
        yield r
    finally:
        r.shutdown(grace=2)


def finished(rt: LocalRuntime, pod: Obj) -> Obj:
    def done() -> Obj | None:
        st = rt.status(pod)
        return st if st and st["phase"] in ("Succeeded", "Failed") else None

    result: Obj = wait_until(done, what=f"pod {pod['metadata']['name']} to finish")
    return result


def terminated(status: Obj) -> Obj:
    state: Obj = status["containerStatuses"][0]["state"]["terminated"]
    return state


def pid_of(status: Obj) -> int:
    """The pid in a container's id (``local://PID/TICKS``)."""
    return int(status["containerStatuses"][0]["containerID"].split("/")[2])


def beside_fresh_python(rt: LocalRuntime, code: str, env: list[Obj]) -> tuple[Obj, str, str]:
    """Run ``python -c code`` with ``env`` as a warm container, to its end: its status, its
    log, and what a new ``python`` prints (its standard output) given the same env items
    over this process's environment."""
    pod = warm_pod(py(code, env=env))
    rt.start(pod, Assignment())
    status = finished(rt, pod)
    fresh = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **{item["name"]: item["value"] for item in env}},
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return status, log_of(rt, pod), fresh


def log_of(rt: LocalRuntime, pod: Obj) -> str:
    return b"".join(rt.logs(pod)).decode()


def test_exit_codes_logs_env_and_cwd_like_a_normal_container(
    rt: LocalRuntime, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    code = (
        "import os, sys; print('out', os.getcwd(), os.environ['GREETING'], "
        "os.environ['SHIPYARD_POD_NAME'], os.getpid() == os.getpgid(0)); "
        "print('err', file=sys.stderr); sys.exit(3)"
    )
    pod = warm_pod(py(code, env=[{"name": "GREETING", "value": "hi"}], workingDir=str(work)))
    rt.start(pod, Assignment())
    st = finished(rt, pod)
    assert st["phase"] == "Failed"
    assert terminated(st)["exitCode"] == 3
    text = log_of(rt, pod)
    assert f"out {work} hi {pod['metadata']['name']} True" in text
    assert "err" in text
    # Forked from the zygote, not spawned through the shell wrapper.
    assert rt.warm.zygote_pids(), "no zygote was started"
    pid = pid_of(st)
    assert pid not in rt.warm.zygote_pids()


def test_modules_scripts_and_uncaught_exceptions(rt: LocalRuntime, tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("import sys\nprint('script args', sys.argv[1:])\n")
    ok = warm_pod({"name": "main", "command": ["python", str(script)], "args": ["a", "b"]})
    mod = warm_pod({"name": "main", "command": ["python", "-m", "json.tool", "--help"]})
    boom = warm_pod(py("raise RuntimeError('kaboom')"))
    for p in (ok, mod, boom):
        rt.start(p, Assignment())
    assert finished(rt, ok)["phase"] == "Succeeded"
    assert "script args ['a', 'b']" in log_of(rt, ok)
    assert finished(rt, mod)["phase"] == "Succeeded"
    assert "usage" in log_of(rt, mod)
    st = finished(rt, boom)
    assert terminated(st)["exitCode"] == 1
    assert "RuntimeError: kaboom" in log_of(rt, boom)


def test_a_process_the_container_forks_ends_on_its_own_not_as_the_container(
    rt: LocalRuntime,
) -> None:
    """A child the program forks (os.fork, a server's worker) that ends by raising
    SystemExit, or an exception, unwinds through the code the container runs in: it must end
    as a forked child of `python` would, without reporting its code as the container's."""
    code = (
        "import os, sys, time\n"
        "for how in ('exit', 'raise'):\n"
        "    if os.fork() == 0:\n"
        "        sys.exit(7) if how == 'exit' else int('not a number')\n"
        "time.sleep(0.5)\n"
        "print('parent done', os.wait()[1] >> 8, os.wait()[1] >> 8)\n"
    )
    pod = warm_pod(py(code))
    rt.start(pod, Assignment())
    st = finished(rt, pod)
    text = log_of(rt, pod)
    assert st["phase"] == "Succeeded", text
    assert terminated(st)["exitCode"] == 0
    assert "parent done" in text and "ValueError" in text


def test_a_program_ends_after_its_threads_as_in_python(rt: LocalRuntime) -> None:
    """As the interpreter does when a program ends: its non-daemon threads and the work
    submitted to a ThreadPoolExecutor finish before the atexit handlers run and the
    process exits, whether the program returns or calls sys.exit."""
    code = (
        "import atexit, sys, threading, time\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "atexit.register(lambda: print('atexit', flush=True))\n"
        "def late(what):\n    time.sleep(0.3)\n    print(what, flush=True)\n"
        "threading.Thread(target=late, args=('thread done',)).start()\n"
        "ThreadPoolExecutor(1).submit(late, 'future done')\n"
        "sys.exit(4)\n"
    )
    pod = warm_pod(py(code))
    rt.start(pod, Assignment())
    st = finished(rt, pod)
    assert terminated(st)["exitCode"] == 4
    lines = log_of(rt, pod).splitlines()
    assert sorted(lines[:2]) == ["future done", "thread done"] and lines[2:] == ["atexit"]


def test_a_pipeline_steps_zygote_has_no_module_with_an_at_fork_hook(rt: LocalRuntime) -> None:
    """threading, random and logging register hooks that run in every forked child (and
    subprocess and tempfile bring them in); shutil and uuid load extensions and libraries
    (bz2, lzma, _uuid) whose mappings every fork copies: the pipeline executor's zygote
    does not import them, so a step's fork does not pay for them. A container that needs
    them imports them (the program above shows its threads are still waited for)."""
    code = (
        "import sys\n"
        "mods = ('threading', 'logging', 'random', 'subprocess', 'tempfile', 'shutil', 'uuid')\n"
        "print(sorted(m for m in mods if m in sys.modules))\n"
    )
    pod = warm_pod(py(code), warm="shipyard.pipelines.dsl,shipyard.pipelines.executor_main")
    rt.start(pod, Assignment())
    assert terminated(finished(rt, pod))["exitCode"] == 0, log_of(rt, pod)
    assert log_of(rt, pod).strip() == "[]"
    assert rt.warm.zygote_pids()


def test_settings_python_reads_only_at_start_are_honoured(rt: LocalRuntime) -> None:
    """PYTHONHASHSEED, PYTHONWARNINGS and the like take effect only when an interpreter
    starts: a container that sets them to other values than the zygote has is started the
    normal way, and sees them as a fresh python would."""
    code = (
        "import sys, warnings\n"
        "print(hash('shipyard'), sys.flags.optimize)\n"
        "warnings.warn('boom', UserWarning)\n"
    )
    env = [
        {"name": "PYTHONHASHSEED", "value": "0"},
        {"name": "PYTHONOPTIMIZE", "value": "1"},
        {"name": "PYTHONWARNINGS", "value": "error"},
    ]
    st, text, fresh = beside_fresh_python(rt, code, env)
    assert text.startswith(fresh), text
    assert terminated(st)["exitCode"] == 1 and "UserWarning: boom" in text


def test_time_zone_and_locale_are_the_containers(rt: LocalRuntime) -> None:
    """TZ takes effect in a forked container (python read the zygote's as it imported
    `time`); a locale other than the zygote's starts the container the normal way."""
    code = (
        "import locale, sys, time\n"
        "print(time.strftime('%Z', time.localtime(0)), locale.getlocale(), sys.dont_write_bytecode)"
    )
    env = [
        {"name": "TZ", "value": "Asia/Tokyo"},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        {"name": "LC_ALL", "value": "C"},
    ]
    st, text, fresh = beside_fresh_python(rt, code, env)
    assert st["phase"] == "Succeeded" and text == fresh and fresh.startswith("JST ")
    # Its interpreter flags too (which a program passes on to the pythons it starts).
    flags = "import subprocess; print(subprocess._args_from_interpreter_flags())"
    st, text, fresh = beside_fresh_python(rt, flags, [])
    assert st["phase"] == "Succeeded" and text == fresh, (text, fresh)
    # With the zygote's locale, it is forked.
    st, text, fresh = beside_fresh_python(rt, code, env[:2])
    assert st["phase"] == "Succeeded" and text == fresh and text.endswith(" True\n")


PICKLES_MAIN = """
import multiprocessing, pickle, threading

class Point:
    pass

def double(x):
    return 2 * x

def late():  # after the program's end, while python waits for its threads
    print("late", len(pickle.dumps(Point())) > 0, flush=True)

if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool(2) as pool:
        print(pool.map(double, [1, 2, 3]), flush=True)
    threading.Timer(0.2, late).start()
"""


def test_what_a_program_defines_pickles_as_in_python(rt: LocalRuntime, tmp_path: Path) -> None:
    """Classes and functions a program defines live in its __main__ module for as long as
    it runs, as in python: a multiprocessing pool can send them, pickle finds them, also
    after the main code returned. With -c, a script and -m."""
    (tmp_path / "job.py").write_text(PICKLES_MAIN)
    pods = [
        warm_pod(py(PICKLES_MAIN)),
        warm_pod({"name": "main", "command": ["python", str(tmp_path / "job.py")]}),
        warm_pod(
            {
                "name": "main",
                "command": ["python", "-m", "job"],
                "env": [{"name": "PYTHONPATH", "value": str(tmp_path)}],
            }
        ),
    ]
    for p in pods:
        rt.start(p, Assignment())
    for p in pods:
        st = finished(rt, p)
        assert terminated(st)["exitCode"] == 0, log_of(rt, p)
        assert log_of(rt, p).splitlines() == ["[2, 4, 6]", "late True"]


def test_a_programs_traceback_shows_its_own_frames_as_in_python(
    rt: LocalRuntime, tmp_path: Path
) -> None:
    script = tmp_path / "fails.py"
    script.write_text("def f():\n    raise ValueError('bad value')\n\nf()\n")
    pods = [
        warm_pod({"name": "main", "command": ["python", str(script)]}),
        warm_pod(py("def f():\n    raise ValueError('bad value')\nf()\n")),
    ]
    for p in pods:
        rt.start(p, Assignment())
    for p in pods:
        assert terminated(finished(rt, p))["exitCode"] == 1
        text = log_of(rt, p)
        assert text.startswith("Traceback (most recent call last):\n  File "), text
        assert "shipyard" not in text and "ValueError: bad value" in text, text


def test_preloaded_modules_are_already_imported_in_the_child(rt: LocalRuntime) -> None:
    code = "import sys; print('preloaded', 'csv' in sys.modules)"
    pod = warm_pod(py(code), warm="csv")
    cold = warm_pod(py(code), **{"shipyard.dev/isolation": "process"})
    rt.start(pod, Assignment())
    rt.start(cold, Assignment())
    finished(rt, pod)
    finished(rt, cold)
    assert "preloaded True" in log_of(rt, pod)
    # Opted out: a fresh interpreter, which does not import csv at start.
    assert "preloaded False" in log_of(rt, cold)


def test_on_failure_restarts_with_the_exit_file_recorded(rt: LocalRuntime, tmp_path: Path) -> None:
    counter = tmp_path / "n"
    code = (
        f"import pathlib, sys; p = pathlib.Path({str(counter)!r}); "
        "n = int(p.read_text()) if p.exists() else 0; p.write_text(str(n + 1)); "
        "print('run', n); sys.exit(0 if n >= 2 else 7)"
    )
    pod = warm_pod(py(code), restart="OnFailure")
    rt.start(pod, Assignment())
    st = finished(rt, pod)
    assert st["phase"] == "Succeeded"
    cs = st["containerStatuses"][0]
    assert cs["restartCount"] == 2
    assert cs["lastState"]["terminated"]["exitCode"] == 7
    # Each run appended to the one log (a spare's ready log is not linked over it).
    assert log_of(rt, pod).split() == ["run", "0", "run", "1", "run", "2"]


def test_stop_kills_the_process_group_and_reports_the_signal_code(rt: LocalRuntime) -> None:
    code = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print('up', flush=True); time.sleep(60)"
    )
    pod = warm_pod(py(code))
    rt.start(pod, Assignment())
    wait_until(lambda: "up" in log_of(rt, pod), what="child to start")
    st = rt.status(pod)
    assert st is not None
    pid = pid_of(st)
    kids = psutil.Process(pid).children(recursive=True)
    assert kids
    rt.stop(pod, grace_seconds=5)
    st = finished(rt, pod)
    assert terminated(st)["exitCode"] == 128 + signal.SIGTERM
    wait_until(lambda: not any(k.is_running() and k.status() != "zombie" for k in kids))


def test_a_dead_zygote_is_replaced(rt: LocalRuntime) -> None:
    first = warm_pod(py("print('one')"))
    rt.start(first, Assignment())
    finished(rt, first)
    (zpid,) = rt.warm.zygote_pids()
    os.kill(zpid, signal.SIGKILL)
    wait_until(lambda: process_gone(zpid))
    second = warm_pod(py("print('two')"))
    rt.start(second, Assignment())
    assert finished(rt, second)["phase"] == "Succeeded"
    assert "two" in log_of(rt, second)
    assert rt.warm.zygote_pids() and zpid not in rt.warm.zygote_pids()


def test_a_running_container_outlives_its_zygote(rt: LocalRuntime, tmp_path: Path) -> None:
    """A zygote that dies (or that the pool drops) takes no running container with it: the
    container goes on, watched as a re-adopted process, and its code comes from the exit
    file it writes itself."""
    gate = tmp_path / "gate"
    code = (
        f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.02)\n"
        "print('still here', flush=True)\nraise SystemExit(5)\n"
    )
    pod = warm_pod(py(code))
    rt.start(pod, Assignment())
    st = wait_until(lambda: (s := rt.status(pod)) and s["phase"] == "Running" and s)
    pid = pid_of(st)
    (zpid,) = rt.warm.zygote_pids()
    os.kill(zpid, signal.SIGKILL)
    container = rt._pods[pod["metadata"]["uid"]].containers()[0]
    # The runtime noticed (the zygote's connection closed): it watches the process itself.
    wait_until(
        lambda: not container.warm or rt.status(pod)["phase"] != "Running",
        what="the runtime to notice the zygote's end",
    )
    assert rt.status(pod)["phase"] == "Running" and psutil.pid_exists(pid)
    gate.touch()
    st = finished(rt, pod)
    assert terminated(st)["exitCode"] == 5
    assert "still here" in log_of(rt, pod)


def test_non_python_commands_and_other_interpreters_spawn_normally(rt: LocalRuntime) -> None:
    pod = warm_pod({"name": "main", "command": ["sh", "-c", "echo from-sh"]})
    rt.start(pod, Assignment())
    assert finished(rt, pod)["phase"] == "Succeeded"
    assert "from-sh" in log_of(rt, pod)
    assert rt.warm.zygote_pids() == []


def test_shutdown_stops_zygotes(tmp_path: Path) -> None:
    r = LocalRuntime(tmp_path / "d")
    pod = warm_pod(py("print('x')"))
    r.start(pod, Assignment())
    wait_until(lambda: (r.status(pod) or {}).get("phase") == "Succeeded")
    pids = r.warm.zygote_pids()
    assert pids
    r.shutdown(grace=2)
    for pid in pids:
        assert process_gone(pid)
    # Each zygote removed its ready folder (what its spares made ahead) as it stopped.
    assert not list((tmp_path / "d" / "run" / "warm").glob("ready-*"))


def test_many_concurrent_forks_all_report_their_own_exit_code(rt: LocalRuntime) -> None:
    pods = [warm_pod(py(f"import sys; print({i}); sys.exit({i % 5})")) for i in range(30)]
    for p in pods:
        rt.start(p, Assignment())
    for i, p in enumerate(pods):
        assert terminated(finished(rt, p))["exitCode"] == i % 5
        assert log_of(rt, p).strip() == str(i)


def test_the_child_reports_its_own_end_and_no_exit_file_outlives_forget(
    rt: LocalRuntime,
) -> None:
    """A child tells the zygote its exit code as it ends (before it is reaped, which for a
    process holding much memory waits for the kernel to free it); the zygote passes it on
    and then writes no exit file of its own, so none reappears after the runtime forgot
    the Pod (here: the moment it saw the end) and removed it."""
    code = "import sys; data = b'x' * (256 << 20); sys.exit({})"
    pods = {}
    for i in range(3):
        p = warm_pod(py(code.format(i)))
        pods[p["metadata"]["name"]] = p
    ended: dict[str, Obj] = {}

    def on_change(_ns: str, name: str) -> None:
        st = rt.status(pods[name]) if name in pods else None
        if st and st["phase"] in ("Succeeded", "Failed"):
            ended[name] = st
            rt.forget(pods[name])

    rt.set_on_change(on_change)
    for p in pods.values():
        rt.start(p, Assignment())
    wait_until(lambda: len(ended) == len(pods), what="the pods to end")
    for i, name in enumerate(pods):
        assert terminated(ended[name])["exitCode"] == i
        pid = pid_of(ended[name])

        def reaped(pid: int = pid) -> bool:
            return not psutil.pid_exists(pid)

        wait_until(reaped, what=f"pid {pid} to be reaped")
    # The zygote serves in order: once a later child has ended, the earlier reaps are done.
    last = warm_pod(py("pass"))
    rt.start(last, Assignment())
    finished(rt, last)
    for p in pods.values():
        left = list(rt.run_dir.glob(f"{p['metadata']['uid']}.*"))
        assert not left, f"an exit file outlived forget: {left}"


def test_a_child_that_exits_abruptly_or_closes_its_fds_still_reports_its_code(
    rt: LocalRuntime,
) -> None:
    abrupt = warm_pod(py("import os; print('bye', flush=True); os._exit(5)"))
    closer = warm_pod(py("import os; os.closerange(3, 4096); raise SystemExit(4)"))
    reuser = warm_pod(
        py("import os; os.closerange(3, 4096); fds = [os.open(os.devnull, 1) for _ in range(20)]")
    )
    killed = warm_pod(py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))
    for p in (abrupt, closer, reuser, killed):
        rt.start(p, Assignment())
    assert terminated(finished(rt, abrupt))["exitCode"] == 5
    assert "bye" in log_of(rt, abrupt)
    assert terminated(finished(rt, closer))["exitCode"] == 4
    assert terminated(finished(rt, reuser))["exitCode"] == 0
    assert terminated(finished(rt, killed))["exitCode"] == 137


def test_a_preloaded_module_runs_as_main_without_warnings(rt: LocalRuntime) -> None:
    pod = warm_pod(
        {"name": "main", "command": ["python", "-m", "json.tool", "--help"]}, warm="json.tool"
    )
    rt.start(pod, Assignment())
    assert finished(rt, pod)["phase"] == "Succeeded"
    text = log_of(rt, pod)
    assert "usage" in text and "RuntimeWarning" not in text


def test_a_preloaded_module_runs_as_main_as_in_a_fresh_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The zygote runs a preloaded ``-m`` module from code it compiled once: the child must
    see what ``python -m`` gives (``__name__``, ``__file__``, argv, ``__main__``, spec)."""
    (tmp_path / "mainprobe.py").write_text(
        "import sys\n"
        "print('probe', __name__, sys.argv[1:], sys.argv[0] == __file__,\n"
        "      sys.modules['__main__'].__dict__ is globals(), __spec__.name, __package__ == '')\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    r = LocalRuntime(tmp_path / "data")
    try:
        cmd = {"name": "main", "command": ["python", "-m", "mainprobe"], "args": ["x", "y"]}
        warm = warm_pod(dict(cmd), warm="mainprobe")
        cold = warm_pod(dict(cmd), **{"shipyard.dev/isolation": "process"})
        for p in (warm, cold):
            r.start(p, Assignment())
        assert finished(r, warm)["phase"] == "Succeeded"
        assert finished(r, cold)["phase"] == "Succeeded"
        expected = "probe __main__ ['x', 'y'] True True mainprobe True"
        assert log_of(r, cold).strip() == expected
        assert log_of(r, warm).strip() == expected
        assert r.warm.zygote_pids()
    finally:
        r.shutdown(grace=2)


def test_the_environment_is_exactly_the_containers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The zygote's own environment does not leak into a container: variables it has that
    the container's does not are gone, changed ones take the container's value."""
    monkeypatch.setenv("SY_ZYGOTE_ONLY", "leak")
    monkeypatch.setenv("SY_CHANGED", "zygote")
    base = {"PATH": os.environ["PATH"], "SY_CHANGED": "runtime"}
    r = LocalRuntime(tmp_path / "data", base_env=base)
    try:
        code = (
            "import os; print(sorted((k, v) for k, v in os.environ.items() if k.startswith('SY_')))"
        )
        c = py(code, env=[{"name": "SY_POD", "value": "pod"}])
        warm = warm_pod(dict(c))
        cold = warm_pod(dict(c), **{"shipyard.dev/isolation": "process"})
        for p in (warm, cold):
            r.start(p, Assignment())
        assert finished(r, warm)["phase"] == "Succeeded"
        assert finished(r, cold)["phase"] == "Succeeded"
        expected = "[('SY_CHANGED', 'runtime'), ('SY_POD', 'pod')]"
        assert log_of(r, cold).strip() == expected
        assert log_of(r, warm).strip() == expected
        assert r.warm.zygote_pids()
    finally:
        r.shutdown(grace=2)


def test_a_container_starts_as_in_a_fresh_interpreter_whether_or_not_a_spare_took_it(
    rt: LocalRuntime,
) -> None:
    """A spare prepares itself before its request arrives (session, stdin, signals); a child
    forked for a request when no spare was ready does the same itself. Started together,
    some containers take the spare and some are forked directly: all must see the same."""
    code = (
        "import os, signal, sys\n"
        "assert os.getsid(0) == os.getpid() == os.getpgid(0), 'own session'\n"
        "assert sys.stdin.read() == '', 'stdin is /dev/null'\n"
        "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
        "for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1):\n"
        "    assert signal.getsignal(s) == signal.SIG_DFL, s\n"
        # As python sets them at start: a write to a closed pipe or socket raises
        # BrokenPipeError, it does not kill the process.
        "for s in (signal.SIGPIPE, signal.SIGXFSZ):\n"
        "    assert signal.getsignal(s) == signal.SIG_IGN, s\n"
        "import socket\n"
        "a, b = socket.socketpair()\n"
        "b.close()\n"
        "try:\n"
        "    a.send(b'x')\n"
        "    a.send(b'x')\n"
        "except BrokenPipeError:\n"
        "    pass\n"
        "print('fresh')\n"
    )
    pods = [warm_pod(py(code)) for _ in range(12)]
    for p in pods:
        rt.start(p, Assignment())
    for p in pods:
        assert terminated(finished(rt, p))["exitCode"] == 0, log_of(rt, p)
        assert log_of(rt, p).strip() == "fresh"


def test_a_warm_container_makes_its_missing_folders_but_never_a_named_working_dir(
    rt: LocalRuntime, tmp_path: Path
) -> None:
    """The runtime leaves a warm container's folders (its default working directory, its
    log's folder) to the container; a workingDir the Pod names must exist already."""
    default = warm_pod(py("import os; print(os.getcwd())"))
    rt.start(default, Assignment())
    assert terminated(finished(rt, default))["exitCode"] == 0
    cwd = Path(log_of(rt, default).strip())
    assert cwd.is_dir() and cwd.name == default["metadata"]["name"]
    assert rt.log_path(default).parent.is_dir()

    missing = tmp_path / "not-there"
    named = warm_pod(py("print('ran')", workingDir=str(missing)))
    rt.start(named, Assignment())
    state = terminated(finished(rt, named))
    assert state["reason"] == "StartError" and "does not exist" in state["message"]
    assert not missing.exists()


def test_a_zygote_that_cannot_fork_leaves_the_container_to_a_normal_start(
    rt: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing waits for the zygote's answer; when it comes back empty (no fork), the
    container starts the normal way and its Pod runs as if it had never asked."""

    def no_fork(address: str, request: bytes) -> int:
        ours, theirs = socket.socketpair()
        theirs.close()  # what a zygote that could not fork does: close without an answer
        return ours.detach()

    monkeypatch.setattr(warm, "_send", no_fork)
    pod = warm_pod(py("import os; print('ran', os.getppid() != 1)"))
    rt.start(pod, Assignment())
    assert terminated(finished(rt, pod))["exitCode"] == 0
    assert log_of(rt, pod).strip() == "ran True"


@dataclass
class HeldZygote:
    """A stand-in zygote that answers only when told: ``answer()`` sends the pid of
    ``sleeper`` (a real process in its own session) as the forked container's; ``close()``
    is the EOF a zygote sends once it reaped it."""

    sleeper: subprocess.Popen[bytes]
    ends: list[socket.socket]

    def answer(self) -> None:
        pid = self.sleeper.pid
        self.ends[0].sendall(struct.pack(">qq", pid, warm._start_ticks(pid)))

    def close(self) -> None:
        self.ends[0].close()


@pytest.fixture
def held_zygote(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldZygote]:
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    ends: list[socket.socket] = []

    def held(address: str, request: bytes) -> int:
        ours, theirs = socket.socketpair()
        ends.append(theirs)
        return ours.detach()

    monkeypatch.setattr(warm, "_send", held)
    try:
        yield HeldZygote(sleeper, ends)
    finally:
        with contextlib.suppress(ProcessLookupError):
            sleeper.kill()
        sleeper.wait()


def test_a_pod_stopped_while_its_warm_container_starts_has_it_killed_once_forked(
    rt: LocalRuntime, held_zygote: HeldZygote
) -> None:
    """stop() before the zygote answered: the container is killed as soon as its pid is
    known, and the Pod ends (the runtime never loses track of it)."""
    pod = warm_pod(py("import time; time.sleep(60)"))
    rt.start(pod, Assignment())
    assert rt.status(pod)["containerStatuses"][0]["state"]["waiting"]["reason"] == (
        "ContainerCreating"
    )
    assert rt.stop(pod, grace_seconds=5) is False  # still starting: not gone yet
    held_zygote.answer()
    assert held_zygote.sleeper.wait(timeout=10) == -signal.SIGTERM
    held_zygote.close()
    assert finished(rt, pod)["phase"] == "Failed"
    wait_until(lambda: rt.stop(pod))


def test_the_next_spare_is_forked_when_a_container_ends_or_soon_after_a_hand_over(
    rt: LocalRuntime,
) -> None:
    """The zygote forks its next spare off the request's path: when the container it handed
    its spare to ends, or shortly after the hand-over if that container runs on."""
    first = warm_pod(py("print('one')"))
    rt.start(first, Assignment())
    cid = finished(rt, first)["containerStatuses"][0]["containerID"]
    first_pid = int(cid[len("local://") :].split("/")[0])
    (zpid,) = rt.warm.zygote_pids()
    zygote = psutil.Process(zpid)
    # The first container may still be the zygote's (a zombie, until reaped) for a moment.
    wait_until(
        lambda: (
            [p.pid for p in zygote.children()] not in ([], [first_pid])
            and len(zygote.children()) == 1
        ),
        what="a spare after the first container, and only it",
    )
    (spare,) = zygote.children()

    long = warm_pod(py("import time; time.sleep(30)"))
    rt.start(long, Assignment())
    wait_until(lambda: (rt.status(long) or {}).get("phase") == "Running")
    assert rt.status(long)["containerStatuses"][0]["containerID"] == (
        f"local://{spare.pid}/{warm._start_ticks(spare.pid)}"
    )  # the spare became the container
    wait_until(lambda: len(zygote.children()) == 2, what="a new spare beside the container")
    rt.stop(long, grace_seconds=1)
    assert finished(rt, long)["phase"] == "Failed"
    wait_until(lambda: len(zygote.children()) == 1, what="only the spare once it ended")


def test_a_warm_container_forgotten_while_starting_is_killed_once_forked(
    rt: LocalRuntime, held_zygote: HeldZygote
) -> None:
    """forget() before the zygote answered: nobody wants the container any more, so it is
    killed as soon as its pid is known, and nothing of it is left (exit file, connection)."""
    pod = warm_pod(py("import time; time.sleep(60)"))
    rt.start(pod, Assignment())
    rt.forget(pod)
    assert rt.status(pod) is None
    held_zygote.answer()
    assert held_zygote.sleeper.wait(timeout=10) == -signal.SIGKILL
    exit_file = rt.run_dir / f"{pod['metadata']['uid']}.main.exit"
    exit_file.write_text("137\n")  # what the zygote writes when it reaps a killed child
    held_zygote.close()
    wait_until(lambda: not exit_file.exists(), what="the forgotten container's exit file")
    wait_until(lambda: not rt._by_fd, what="the runtime to let go of its connection")


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[warm.WarmPool]:
    p = warm.WarmPool(tmp_path / "warm")
    try:
        yield p
    finally:
        p.shutdown()


def ask(pool: warm.WarmPool, tmp_path: Path, name: str, code: str) -> tuple[int, int, Path]:
    """Have the zygote fork ``python -c code``; (its connection, its pid, its exit file)."""
    exit_file = tmp_path / f"{name}.exit"
    fd = pool.request(
        (),
        ["python", "-c", code],
        dict(os.environ),
        str(tmp_path),
        tmp_path / f"{name}.log",
        exit_file,
    )
    assert fd is not None
    wait_until(lambda: select_readable(fd), what=f"the zygote's answer for {name}")
    got = pool.started((), fd)
    assert got is not None
    return fd, got[0], exit_file


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    """A file containers wait for (at most a minute); made at the end whatever happened, so
    none is left waiting."""
    path = tmp_path / "gate"
    try:
        yield path
    finally:
        path.touch()


def after_gate(gate: Path, code: int) -> str:
    return (
        f"import os, time\nend = time.time() + 60\n"
        f"while not os.path.exists({str(gate)!r}) and time.time() < end: time.sleep(0.02)\n"
        f"raise SystemExit({code})"
    )


def select_readable(fd: int) -> bool:
    import select

    return bool(select.select([fd], [], [], 0)[0])


def test_the_zygote_keeps_an_exit_code_until_released_and_writes_it_if_the_runtime_goes(
    pool: warm.WarmPool, tmp_path: Path, gate: Path
) -> None:
    """As with the shim: while the control plane is there, a container's exit code comes on
    its connection and no exit file is made; a code the control plane did not record
    before it went (its connection hung up without a release) is written to the exit file,
    at once if the container had ended, else when it ends."""
    recorded, _, recorded_file = ask(pool, tmp_path, "recorded", "raise SystemExit(3)")
    # The exit file's path travels beside the request, as bytes: any name the file system
    # takes comes through.
    unrecorded, _, unrecorded_file = ask(pool, tmp_path, "unrecorded é", "raise SystemExit(4)")
    late, late_pid, late_file = ask(pool, tmp_path, "late", after_gate(gate, 6))
    for fd, code in ((recorded, 3), (unrecorded, 4)):
        wait_until(lambda fd=fd: select_readable(fd), what="the exit code")
        assert warm.read_code(fd) == code
    warm.release(recorded)
    assert not list(tmp_path.glob("*.exit")), "no exit file while the control plane is up"

    os.close(unrecorded)  # the control plane dies before it recorded this code...
    os.close(late)  # ...and while this container still runs
    wait_until(unrecorded_file.exists, what="the unrecorded code's exit file")
    assert unrecorded_file.read_text() == "4\n"
    assert psutil.pid_exists(late_pid) and not late_file.exists()
    gate.touch()
    wait_until(late_file.exists, what="the late container's exit file")
    assert late_file.read_text() == "6\n"
    assert not recorded_file.exists()


def test_the_zygote_writes_the_codes_it_holds_when_the_control_plane_goes(
    pool: warm.WarmPool, tmp_path: Path
) -> None:
    """The zygote's standard input closing means the control plane is gone: the codes it
    holds go to their files, and it exits once its children have ended."""
    fd, _, exit_file = ask(pool, tmp_path, "held", "raise SystemExit(7)")
    wait_until(lambda: select_readable(fd), what="the exit code")
    assert warm.read_code(fd) == 7
    (zpid,) = pool.zygote_pids()
    pool.shutdown()  # closes its standard input and waits for it
    assert process_gone(zpid)
    assert exit_file.read_text() == "7\n"
    os.close(fd)


def test_a_dropped_zygote_lets_its_containers_finish_and_then_exits(
    pool: warm.WarmPool, tmp_path: Path, gate: Path
) -> None:
    """A zygote the pool drops (it did not take a request) is not waited for nor killed: it
    hangs up, its running containers go on, and it exits after them, their codes written
    to their exit files. The next request gets a fresh zygote."""
    fd, pid, exit_file = ask(pool, tmp_path, "running", after_gate(gate, 4))
    (zpid,) = pool.zygote_pids()
    pool.failed(())
    wait_until(lambda: select_readable(fd), what="the dropped zygote to hang up")
    assert warm.read_code(fd) is None
    os.close(fd)
    assert not process_gone(zpid) and not process_gone(pid)
    gate.touch()
    wait_until(exit_file.exists, what="the container's exit file")
    assert exit_file.read_text() == "4\n"
    wait_until(lambda: process_gone(zpid), what="the dropped zygote to exit")
    fresh, _, _ = ask(pool, tmp_path, "fresh", "raise SystemExit(0)")
    assert pool.zygote_pids() and zpid not in pool.zygote_pids()
    wait_until(lambda: select_readable(fresh), what="the fresh container's code")
    assert warm.read_code(fresh) == 0
    warm.release(fresh)


def test_a_child_whose_zygote_is_gone_writes_its_own_exit_file(
    pool: warm.WarmPool, tmp_path: Path, gate: Path
) -> None:
    fd, pid, exit_file = ask(pool, tmp_path, "orphan ü", after_gate(gate, 5))
    (zpid,) = pool.zygote_pids()
    os.kill(zpid, signal.SIGKILL)
    wait_until(lambda: select_readable(fd), what="the connection's end")
    assert warm.read_code(fd) is None  # no code: the runtime reads the exit file instead
    os.close(fd)
    gate.touch()
    wait_until(exit_file.exists, what="the child's own exit file")
    assert exit_file.read_text() == "5\n"
    wait_until(lambda: process_gone(pid))


def test_the_shim_is_read_only_when_it_has_news(
    rt: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Warm containers never hear from the process shim: while only they run, the runtime
    does not read the shim's socket (a read finding nothing cost every turn of its loop)."""
    first = warm_pod({"name": "main", "command": ["sh", "-c", "exit 3"]})
    rt.start(first, Assignment())
    assert terminated(finished(rt, first))["exitCode"] == 3  # the shim's news was read
    assert rt._shim is not None
    reads: list[int] = []
    real = type(rt._shim).events

    def counted(self: Any) -> list[tuple[Any, ...]]:
        reads.append(1)
        return real(self)

    monkeypatch.setattr(type(rt._shim), "events", counted)
    for i in range(5):
        pod = warm_pod(py(f"import sys; sys.exit({i})"))
        rt.start(pod, Assignment())
        assert terminated(finished(rt, pod))["exitCode"] == i
    assert rt.warm.zygote_pids()
    assert reads == []
    last = warm_pod({"name": "main", "command": ["sh", "-c", "exit 4"]})
    rt.start(last, Assignment())
    assert terminated(finished(rt, last))["exitCode"] == 4
    assert reads


def ready_entries(rt: LocalRuntime) -> list[Path]:
    """What the spares made ahead, in the zygotes' ready folders."""
    return sorted((rt.run_dir / "warm").glob("ready-*/*"))


def test_a_spare_makes_the_folder_log_and_file_its_container_takes_and_nothing_is_left(
    rt: LocalRuntime,
) -> None:
    """A spare makes, while it waits, what its container would create after its request (a
    new inode cost a VM's disk up to 0.7 ms): the working folder and the log are renamed
    and linked into place, and ready_file() hands out an empty file, once, to write and
    rename. What the container leaves is removed once it has ended."""
    code = (
        "import os; from shipyard.runtime import warm; "
        "path = warm.ready_file(); again = warm.ready_file(); "
        "open(path, 'w').write('kept'); os.rename(path, 'out.txt'); "
        "print('cwd', os.getcwd(), 'again', again, 'files', os.listdir('.'))"
    )
    # The spare makes them only while no request waits for it: here, it has the time.
    assert rt.warm.prestart("")
    wait_until(lambda: {p.suffix for p in ready_entries(rt)} == {".d", ".log", ".file"})
    pod = warm_pod(py(code))
    rt.start(pod, Assignment())
    st = finished(rt, pod)
    assert terminated(st)["exitCode"] == 0, log_of(rt, pod)
    cwd = rt.data_dir / "pods" / "default" / pod["metadata"]["name"]
    assert log_of(rt, pod).strip() == f"cwd {cwd} again None files ['out.txt']"
    assert (cwd / "out.txt").read_text() == "kept"
    pid = pid_of(st)
    # Its entries were taken or removed; the next spare's are there, made ahead.
    wait_until(lambda: not any(p.name.startswith(f"{pid}.") for p in ready_entries(rt)))
    assert rt.log_path(pod).stat().st_nlink == 1
    wait_until(lambda: {p.suffix for p in ready_entries(rt)} == {".d", ".log", ".file"})

    # A container that takes nothing (its working folder is named) leaves nothing either.
    named = warm_pod(py("print('named')", workingDir=str(rt.data_dir)))
    rt.start(named, Assignment())
    st = finished(rt, named)
    pid = pid_of(st)
    wait_until(lambda: not any(p.name.startswith(f"{pid}.") for p in ready_entries(rt)))
    assert "named" in log_of(rt, named)


def stocked_sets(rt: LocalRuntime) -> dict[str, dict[int, str]]:
    """The complete sets the zygotes made ahead (``s<N>``): by kind, inode -> set name."""
    names = {p.stem for p in ready_entries(rt) if p.name.startswith("s")}
    sets: dict[str, dict[int, str]] = {".log": {}, ".d": {}, ".file": {}}
    for folder in (rt.run_dir / "warm").glob("ready-*"):
        for stem in names:
            with contextlib.suppress(FileNotFoundError):
                found = {kind: (folder / f"{stem}{kind}").stat().st_ino for kind in sets}
                for kind, ino in found.items():
                    sets[kind][ino] = stem
    return sets


def full_stock(rt: LocalRuntime) -> dict[str, dict[int, str]] | None:
    """The sets made ahead once there are STOCK_SETS of them (and maybe the spare's)."""
    sets = stocked_sets(rt)
    return sets if len(sets[".log"]) >= warm.STOCK_SETS else None


def test_the_zygote_makes_sets_of_entries_ahead_in_quiet_moments_for_its_spares(
    rt: LocalRuntime,
) -> None:
    """A spare forked as a container ends makes its entries while the control plane starts
    the next container, and on a file system slow to make files that container waited for
    them: the zygote makes whole sets ahead once it has had no news for a moment, up to
    STOCK_SETS, and its spares take them. A container takes the log, the working folder and
    the file of a set made ahead; what it left of its set is removed once it has ended; the
    stock is made up again in the next quiet moment."""
    assert rt.warm.prestart("")
    full = wait_until(lambda: full_stock(rt), what="a full stock")
    assert len(full[".d"]) == len(full[".file"]) == len(full[".log"])
    code = (
        "import os; from shipyard.runtime import warm; path = warm.ready_file(); "
        "open(path, 'w').write('out'); os.rename(path, 'out.txt'); print('ran')"
    )
    taken: set[str] = set()
    for _ in range(3):  # the first may still take the set its spare made itself
        # The sets there now, the waiting spare's among them (made up again in between).
        sets = stocked_sets(rt)
        pod = warm_pod(py(code))
        rt.start(pod, Assignment())
        assert terminated(finished(rt, pod))["exitCode"] == 0, log_of(rt, pod)
        cwd = rt.data_dir / "pods" / "default" / pod["metadata"]["name"]
        log_ino = rt.log_path(pod).stat().st_ino
        if log_ino not in sets[".log"]:
            continue
        stem = sets[".log"][log_ino]
        assert sets[".d"][cwd.stat().st_ino] == stem
        assert sets[".file"][(cwd / "out.txt").stat().st_ino] == stem
        assert (cwd / "out.txt").read_text() == "out"
        assert log_of(rt, pod).strip() == "ran"
        taken.add(stem)
    assert taken, "no container took a set made ahead"

    # One that takes nothing but its log (its working folder is named, it writes no file):
    # the rest of its set goes once it has ended.
    sets = stocked_sets(rt)
    named = warm_pod(py("print('named')", workingDir=str(rt.data_dir)))
    rt.start(named, Assignment())
    assert terminated(finished(rt, named))["exitCode"] == 0
    stem = sets[".log"].get(rt.log_path(named).stat().st_ino)
    assert stem is not None
    folder = next((rt.run_dir / "warm").glob("ready-*"))
    wait_until(lambda: not any(folder.glob(f"{stem}.*")), what=f"{stem}'s entries removed")
    assert rt.log_path(named).stat().st_nlink == 1
    assert "named" in log_of(rt, named)
    # Made up again: a full stock, none of its sets the ones taken.
    again = wait_until(lambda: full_stock(rt), what="the stock made up again")
    assert not taken & set(again[".log"].values())


def test_containers_make_their_own_entries_when_the_spares_are_gone(rt: LocalRuntime) -> None:
    """The ready folder removed under the zygote (its spare's entries with it): the next
    containers still get their working folder and log, and ready_file's path is simply
    gone (the pipelines executor then writes its file the plain way)."""
    first = warm_pod(py("print('first')"))
    rt.start(first, Assignment())
    finished(rt, first)
    wait_until(lambda: ready_entries(rt))
    for folder in (rt.run_dir / "warm").glob("ready-*"):
        shutil.rmtree(folder)
    code = (
        "import os; from shipyard.runtime import warm; path = warm.ready_file(); "
        "print('cwd', os.getcwd(), 'ready', path is None or not os.path.exists(path))"
    )
    pods = [warm_pod(py(code)) for _ in range(3)]
    for pod in pods:
        rt.start(pod, Assignment())
        assert terminated(finished(rt, pod))["exitCode"] == 0, log_of(rt, pod)
        cwd = rt.data_dir / "pods" / "default" / pod["metadata"]["name"]
        assert log_of(rt, pod).strip() == f"cwd {cwd} ready True"


def test_ready_file_is_none_outside_a_warm_container() -> None:
    assert warm.ready_file() is None


def test_small_containers_torn_down_at_idle_priority_still_end_on_a_busy_machine(
    rt: LocalRuntime,
) -> None:
    """A small container drops to idle priority once it has reported its end, so that the
    kernel's teardown of its memory waits for other work; with every core busy, its end is
    still reported at once and its process still goes."""
    spin = "import time\nend = time.time() + 60\nwhile time.time() < end: pass"
    busy = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 2)]
    try:
        pods = [warm_pod(py(f"print({i})")) for i in range(5)]
        for pod in pods:
            rt.start(pod, Assignment())
        pids = []
        for pod in pods:
            st = finished(rt, pod)
            assert st["phase"] == "Succeeded"
            pids.append(pid_of(st))
        for pid in pids:
            wait_until(lambda pid=pid: process_gone(pid), what=f"container {pid} to go")
    finally:
        for b in busy:
            b.kill()
            b.wait()
