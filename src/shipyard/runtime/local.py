"""The local runtime: every container of a Pod is a process group on this machine.

It does the kubelet's job for the local node:

- containers are started by the process shim (runtime/shim.py), a small process of its own
  that is their parent: each runs in its own session (process group) with stdout and stderr
  appended to a log file per container that outlives the Pod; the shim keeps every exit
  code until the runtime has recorded it and writes those it still holds to files when the
  control plane goes, so a control plane restarted after SIGKILL can still learn how a
  container ended while it was down; containers forked by the warm pool (runtime/warm.py)
  get the same from their zygote;
- one thread hears the shim's exit reports, watches re-adopted processes through a pidfd and
  runs the timers (restart backoff, ``activeDeadlineSeconds``, SIGKILL after the grace
  period);
- init containers run in order, then the containers; ``restartPolicy`` Always / OnFailure /
  Never with exponential backoff; memory limits are enforced by a watchdog that kills the
  group and reports ``OOMKilled``; GPUs the scheduler assigned are passed in
  ``CUDA_VISIBLE_DEVICES``;
- the status is reported in Kubernetes' PodStatus shape; ``containerID`` is
  ``local://PID/STARTTICKS`` so a restarted control plane can re-adopt live processes.
"""

from __future__ import annotations

import contextlib
import glob
import heapq
import logging
import os
import re
import selectors
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from shipyard.core import quantity
from shipyard.core.resource import now_iso
from shipyard.runtime.base import TERMINAL, Assignment, Obj, OnChange
from shipyard.runtime.journal import Start, StartJournal
from shipyard.runtime.shim import Shim, ShimError, proc_start_ticks, which
from shipyard.runtime.warm import WarmPool, read_code, release

log = logging.getLogger(__name__)

# A container that has started is reported this long after (unless it ends sooner, which is
# reported at once): a short one (a pipeline step, a `true`) then costs its Pod one status
# write instead of two. The kubelet reports a start within its PLEG relist (up to 1 s). Until
# the start is written, a control plane killed with SIGKILL would, once back, not know the
# container runs; 10 ms instead of 20 halved that window but made the 10-step pipeline
# benchmark ~12% slower here (six of six interleaved pairs), so 20 ms it is.
RUNNING_NOTICE = 0.02

_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\$\$\(")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion in command and args (``$$(`` escapes)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$(":
            return "$("
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(sub, text)


@dataclass
class _Container:
    name: str
    spec: Obj
    init: bool
    log_path: Path
    exit_path: Path
    pid: int | None = None
    ticks: int | None = None
    pidfd: int | None = None
    warm: bool = False  # forked by the warm pool; pidfd is then its zygote connection
    warm_mods: tuple[str, ...] = ()  # the warm pool's zygote it asked to be forked from
    exit_waits: int = 0  # retries for the exit file of a re-adopted container
    # The shim that told its exit code and keeps it (instead of an exit file) until forgotten.
    told_by: Shim | None = None
    # A warm container that ended: its zygote connection, whose zygote keeps the exit code
    # (instead of an exit file) until released.
    held: int | None = None
    state: str = "waiting"  # waiting | starting (asked of the shim) | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    restart_count: int = 0
    last_state: Obj | None = None
    oom: bool = False
    restart_pending: bool = False
    memory_limit: float | None = None
    gpus: tuple[str, ...] = ()

    @property
    def container_id(self) -> str | None:
        return f"local://{self.pid}/{self.ticks}" if self.pid else None

    def terminated_state(self) -> Obj:
        out: Obj = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "containerID": self.container_id,
        }
        if self.signal:
            out["signal"] = self.signal
        if self.message:
            out["message"] = self.message
        return out

    def status(self) -> Obj:
        if self.state == "running":
            state: Obj = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated":
            state = {"terminated": self.terminated_state()}
        else:
            state = {
                "waiting": {
                    "reason": self.reason,
                    **({"message": self.message} if self.message else {}),
                }
            }
        out: Obj = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "ready": self.state == "running",
            "started": self.state == "running",
            "restartCount": self.restart_count,
            "state": state,
        }
        if self.container_id:
            out["containerID"] = self.container_id
        if self.last_state:
            out["lastState"] = {"terminated": self.last_state}
        return out


@dataclass
class _PodRun:
    uid: str
    namespace: str
    name: str
    pod: Obj
    assignment: Assignment
    workdir: Path
    init: list[_Container]
    main: list[_Container]
    restart_policy: str
    phase: str = "Pending"
    reason: str = ""
    message: str = ""
    start_time: str | None = None
    stopping: bool = False
    deadline_at: float | None = None
    grace: float = 30.0

    def containers(self) -> list[_Container]:
        return self.init + self.main


class LocalRuntime:
    """Runs Pods as local process groups. Thread-safe; one internal thread."""

    name = "local"

    def __init__(
        self,
        data_dir: Path,
        *,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        base_env: dict[str, str] | None = None,
        node_has_gpus: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.logs_dir = self.data_dir / "logs"
        self.run_dir = self.data_dir / "run"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Which process each container became, before the store hears of it (journal.py).
        # Listed once: loading 10,000 entries of gone processes took 115 ms with a /proc
        # lookup for each, 28 ms so.
        exit_files = set(os.listdir(self.run_dir))
        live = {int(p) for p in os.listdir("/proc") if p.isdigit()}
        self._journal = StartJournal(
            self.run_dir / "starts.journal",
            keep=lambda uid, name, s: (
                (s.pid in live and proc_start_ticks(s.pid) == s.ticks)
                or f"{uid}.{name}.exit" in exit_files
            ),
        )
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.base_env = dict(os.environ if base_env is None else base_env)
        # Locally, `python` in a container means the platform's own environment.
        bindir = os.path.dirname(sys.executable)
        path = self.base_env.get("PATH", os.defpath)
        if path.split(os.pathsep)[0] != bindir:
            self.base_env["PATH"] = bindir + os.pathsep + path
        self.node_has_gpus = node_has_gpus
        self._lock = threading.RLock()
        self._pods: dict[str, _PodRun] = {}
        # The Pods with a container under a memory limit: all the watchdog looks at (a
        # control plane knows thousands of ended Pods; scanning them held the lock ~1 ms).
        self._limited: dict[str, _PodRun] = {}
        self._by_fd: dict[int, tuple[_PodRun, _Container]] = {}
        self._by_pid: dict[int, tuple[_PodRun, _Container]] = {}  # started by the shim
        self._starting: dict[int, tuple[_PodRun, _Container]] = {}  # shim request id ->
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        self._timers: list[tuple[float, int, Callable[[], bool | None], _PodRun | None]] = []
        self._shim: Shim | None = None
        self._start_shim()
        self._timer_seq = 0
        self._on_change: OnChange = lambda ns, name: None
        self._closed = False
        self._stopping = False  # shutdown() has begun: nothing starts any more
        # Pods annotated shipyard.dev/warm fork from a zygote instead (runtime/warm.py).
        self.warm = WarmPool(self.run_dir / "warm")
        self._thread = threading.Thread(target=self._loop, name="local-runtime", daemon=True)
        self._thread.start()
        self._watchdog = threading.Thread(target=self._memory_watchdog, daemon=True)
        self._watchdog.start()

    # -- protocol ---------------------------------------------------------------------------

    def set_on_change(self, callback: OnChange) -> None:
        self._on_change = callback

    def knows(self, pod: Obj) -> bool:
        return pod["metadata"]["uid"] in self._pods

    def start(self, pod: Obj, assignment: Assignment) -> None:
        with self._lock:
            if self.knows(pod):
                return
            run = self._new_run(pod, assignment)
            self._track(run)
            run.start_time = now_iso()
            # A controller may still start a Pod while the runtime shuts down: it is known
            # (status() answers), but none of its containers starts to outlive the runtime.
            run.stopping = self._stopping
            self._arm_deadline(run, 0.0)
            self._advance(run)
        # No on_change here: the caller reads status() next (a wake-up would only make the
        # controller reconcile the Pod a second time for nothing).

    def adopt(self, pod: Obj, extra_env: dict[str, str] | None = None) -> bool:
        """Rebuild a Pod's state from its stored status and the start journal (which knows
        of starts the store had not heard of yet); re-attach to live processes."""
        status = pod.get("status") or {}
        stored = {
            cs["name"]: cs
            for key in ("initContainerStatuses", "containerStatuses")
            for cs in status.get(key) or []
        }
        for name, start in self._journal.found(pod["metadata"]["uid"]).items():
            cid = f"local://{start.pid}/{start.ticks}"
            if (stored.get(name) or {}).get("containerID") != cid:
                stored[name] = {
                    **(stored.get(name) or {}),
                    "name": name,
                    "containerID": cid,
                    "restartCount": start.restarts,
                    "state": {"running": {"startedAt": start.started_at}},
                }
        if not any(cs.get("containerID") for cs in stored.values()):
            return False
        with self._lock:
            if self.knows(pod):
                return True
            gpus = tuple(status.get("assignedGPUs") or ())
            run = self._new_run(pod, Assignment(gpus=gpus, extra_env=dict(extra_env or {})))
            run.start_time = status.get("startTime") or now_iso()
            exited: list[_Container] = []
            ended: list[_Container] = []
            for c in run.containers():
                cs = stored.get(c.name)
                if cs is None:
                    continue
                self._restore(c, cs)
                if c.state == "running":
                    if self._attach(run, c):
                        continue
                    exited.append(c)
                elif c.state == "terminated":
                    ended.append(c)
            self._track(run)
            self._arm_deadline(run, _elapsed_since(run.start_time))
            for c in exited:
                self._finish(run, c, *self._read_exit_file(c))
            for c in ended:
                # Ended under an earlier control plane, maybe waiting out its restart
                # back-off: the restart policy decides again (the back-off timer was lost).
                finished_at = c.finished_at
                self._finish(run, c, c.exit_code or 0, c.signal, c.reason or None, c.message)
                c.finished_at = finished_at
            self._advance(run)
        self._notify(run)
        return True

    def status(self, pod: Obj) -> Obj | None:
        with self._lock:
            run = self._pods.get(pod["metadata"]["uid"])
            if run is None:
                return None
            out: Obj = {
                "phase": run.phase,
                "hostIP": "127.0.0.1",
                "podIP": "127.0.0.1",
                "startTime": run.start_time,
                "containerStatuses": [c.status() for c in run.main],
            }
            if run.init:
                out["initContainerStatuses"] = [c.status() for c in run.init]
            if run.reason:
                out["reason"] = run.reason
            if run.message:
                out["message"] = run.message
            if run.assignment.gpus:
                out["assignedGPUs"] = list(run.assignment.gpus)
            return out

    def stop(self, pod: Obj, grace_seconds: float | None = None) -> bool:
        with self._lock:
            run = self._pods.get(pod["metadata"]["uid"])
            if run is None:
                return True
            if grace_seconds is not None:
                run.grace = grace_seconds
            if not run.stopping:
                run.stopping = True
                self._kill(run, signal.SIGTERM)
                self._after(run.grace, lambda: self._kill(run, signal.SIGKILL))
            return not any(c.state in ("running", "starting") for c in run.containers())

    def forget(self, pod: Obj) -> None:
        with self._lock:
            run = self._pods.pop(pod["metadata"]["uid"], None)
            self._limited.pop(pod["metadata"]["uid"], None)
            if run is not None:
                for c in run.containers():
                    if c.pid is not None and self._by_pid.get(c.pid, (None, None))[1] is c:
                        del self._by_pid[c.pid]
                    if c.state == "starting" and c.pidfd is not None:
                        continue  # the loop kills it once forked, then cleans up (_forgotten)
                    self._close_fd(c)
                    self._drop_exit_code(c)

    def _track(self, run: _PodRun) -> None:
        self._pods[run.uid] = run
        if any(c.memory_limit for c in run.containers()):
            self._limited[run.uid] = run

    @staticmethod
    def _drop_exit_code(c: _Container) -> None:
        """The container's exit code is recorded (or it starts again): the shim or zygote
        that holds it need not keep it, and an exit file (written by a shim or zygote whose
        control plane had gone) goes."""
        if c.held is not None:
            fd, c.held = c.held, None
            release(fd)
            return  # its zygote held the code: there is no file
        shim, c.told_by = c.told_by, None
        if shim is not None and shim.forget(str(c.exit_path)):
            return  # it held the code: there is no file
        if c.exit_code is None:
            return  # it never ended (or never started): there is no file
        with contextlib.suppress(FileNotFoundError):
            c.exit_path.unlink()

    def endpoint(self, pod: Obj, port: int) -> tuple[str, int]:
        return ("127.0.0.1", port)

    def log_path(self, pod: Obj, container: str | None = None) -> Path:
        spec = pod.get("spec") or {}
        names = [c["name"] for c in (spec.get("initContainers") or []) + spec.get("containers", [])]
        if container is None:
            container = (spec.get("containers") or [{}])[0].get("name", "")
        if container not in names:
            from shipyard.errors import BadRequest

            raise BadRequest(
                f"container {container!r} is not in pod {pod['metadata']['name']!r}; "
                f"choose one of: {', '.join(names)}",
                field="container",
            )
        md = pod["metadata"]
        path = self._log_file(md.get("namespace", ""), md["name"], md["uid"], container)
        if not path.exists():  # a container started before the flat layout (0.x data dirs)
            old: Path = self.logs_dir / md.get("namespace", "") / md["name"] / md["uid"][:8]
            if (old / f"{container}.log").exists():
                return old / f"{container}.log"
        return path

    def _log_file(self, namespace: str, name: str, uid: str, container: str) -> Path:
        """``logs/NAMESPACE/NAME_UID8_CONTAINER.log``: flat, as the kubelet's
        /var/log/containers is, so a new Pod costs no folder (a mkdir costs 0.3-0.6 ms on
        ext4 here, a file in an existing folder ~0.03 ms). Names never hold ``_``."""
        return self.logs_dir / namespace / f"{name}_{uid[:8]}_{container}.log"

    def archived_pod(self, namespace: str, name: str) -> Obj | None:
        """A stand-in Pod for the newest logs of a Pod that no longer exists (logs outlive
        their Pods here, unlike Kubernetes, so deleted training replicas and pipeline tasks
        keep their logs). None if there are none."""
        files: dict[str, dict[str, Path]] = {}  # uid8 -> container -> its log
        for f in (self.logs_dir / namespace).glob(f"{glob.escape(name)}_*_*.log"):
            uid, _, container = f.stem[len(name) + 1 :].partition("_")
            files.setdefault(uid, {})[container] = f
        old = self.logs_dir / namespace / name  # the layout before the flat one
        for d in old.iterdir() if old.is_dir() else []:
            for f in d.glob("*.log") if d.is_dir() else []:
                files.setdefault(d.name, {}).setdefault(f.stem, f)
        if not files:
            return None
        uid = max(files, key=lambda u: max(f.stat().st_mtime for f in files[u].values()))
        return {
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
            "spec": {"containers": [{"name": c} for c in sorted(files[uid])]},
        }

    def logs(
        self,
        pod: Obj,
        container: str | None = None,
        *,
        follow: bool = False,
        tail: int | None = None,
    ) -> Iterator[bytes]:
        path = self.log_path(pod, container)
        uid = pod["metadata"]["uid"]
        while follow and not path.exists() and self._running(uid):
            time.sleep(0.05)
        if not path.exists():
            return
        with open(path, "rb") as fh:
            if tail is not None:
                lines = fh.read().splitlines(keepends=True)[-tail:] if tail > 0 else []
                yield b"".join(lines)
            while True:
                chunk = fh.read(65536)
                if chunk:
                    yield chunk
                    continue
                if not follow or not self._running(uid):
                    rest = fh.read()
                    if rest:
                        yield rest
                    return
                time.sleep(0.05)

    def _running(self, uid: str) -> bool:
        run = self._pods.get(uid)
        return run is not None and run.phase not in ("Succeeded", "Failed")

    def shutdown(self, grace: float = 5.0) -> None:
        with self._lock:
            self._stopping = True
            for run in self._pods.values():
                run.stopping = True
                self._kill(run, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(
            c.state in ("running", "starting")
            for r in list(self._pods.values())
            for c in r.containers()
        ):
            time.sleep(0.02)
        with self._lock:
            runs = list(self._pods.values())
            for run in runs:
                self._kill(run, signal.SIGKILL)
            self._closed = True
            if self._shim is not None:
                self._shim.close()
        os.write(self._wake_w, b"x")
        self.warm.shutdown()  # a zygote writes the codes still held to their exit files
        with self._lock:
            for run in runs:
                for c in run.containers():
                    if c.held is not None:
                        os.close(c.held)
                        c.held = None
            self._journal.close()

    # -- building ---------------------------------------------------------------------------

    def _new_run(self, pod: Obj, assignment: Assignment) -> _PodRun:
        md, spec = pod["metadata"], pod.get("spec") or {}
        uid = md["uid"]
        # The log's folder (one per namespace) is made by whoever starts a container (the
        # shim, or the warm pool's child), not on the control plane's busiest thread.
        gpus = list(assignment.gpus)

        def build(spec_c: Obj, init: bool) -> _Container:
            c = _Container(
                name=spec_c["name"],
                spec=spec_c,
                init=init,
                log_path=self._log_file(md.get("namespace", ""), md["name"], uid, spec_c["name"]),
                exit_path=self.run_dir / f"{uid}.{spec_c['name']}.exit",
            )
            limits = (spec_c.get("resources") or {}).get("limits") or {}
            if "memory" in limits:
                c.memory_limit = quantity.parse(limits["memory"])
            want = int(
                quantity.pod_requests({"spec": {"containers": [spec_c]}}).get(quantity.GPU, 0)
            )
            if init:  # init containers run one at a time, first: each may use all the GPUs
                c.gpus = tuple(assignment.gpus[:want])
            else:
                c.gpus, gpus[:] = tuple(gpus[:want]), gpus[want:]
            return c

        annotations = md.get("annotations") or {}
        workdir = Path(
            annotations.get("shipyard.dev/source-dir")
            or self.data_dir / "pods" / md.get("namespace", "") / md["name"]
        )
        return _PodRun(
            uid=uid,
            namespace=md.get("namespace", ""),
            name=md["name"],
            pod=pod,
            assignment=assignment,
            workdir=workdir,
            init=[build(c, True) for c in spec.get("initContainers") or []],
            main=[build(c, False) for c in spec.get("containers") or []],
            restart_policy=spec.get("restartPolicy") or "Always",
            grace=float(spec.get("terminationGracePeriodSeconds", 30)),
        )

    def _env(self, run: _PodRun, c: _Container) -> dict[str, str]:
        md = run.pod["metadata"]
        env = dict(self.base_env)
        env.update(
            HOSTNAME=run.name,
            SHIPYARD_POD_NAME=run.name,
            SHIPYARD_POD_NAMESPACE=run.namespace,
            SHIPYARD_POD_UID=run.uid,
        )
        if c.gpus or self.node_has_gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(c.gpus)
        env.update(run.assignment.extra_env)
        for item in c.spec.get("env") or []:
            if "value" in item:
                env[item["name"]] = expand(str(item.get("value") or ""), env)
            elif "valueFrom" in item:
                resolved = run.assignment.extra_env.get(item["name"])
                source = item["valueFrom"]
                if resolved is None and ("secretKeyRef" in source or "configMapKeyRef" in source):
                    continue  # an optional key that is missing: unset, as the kubelet leaves it
                env[item["name"]] = (
                    resolved if resolved is not None else _value_from(source, md, c.spec)
                )
        return env

    # -- process control (called with the lock held) ----------------------------------------

    def _advance(self, run: _PodRun) -> None:
        """Start whatever should run next: the next init container, or the containers."""
        if run.stopping or run.phase in ("Succeeded", "Failed"):
            return
        for c in run.init:
            if c.state == "terminated" and c.exit_code == 0:
                continue
            if c.state == "waiting" and not c.restart_pending:
                self._spawn(run, c)
            return
        for c in run.main:
            if c.state == "waiting" and not c.restart_pending:
                self._spawn(run, c)
        self._update_phase(run)

    def _spawn(self, run: _PodRun, c: _Container, *, warm: bool = True) -> None:
        env = self._env(run, c)
        argv = [
            expand(str(a), env) for a in (c.spec.get("command") or []) + (c.spec.get("args") or [])
        ]
        cwd = c.spec.get("workingDir") or str(run.workdir)
        if not c.spec.get("command"):
            self._fail_start(
                run,
                c,
                "the local runtime needs the container's command "
                "(the image's entrypoint is not known here)",
            )
            return
        if which(argv[0], env.get("PATH")) is None and not os.access(argv[0], os.X_OK):
            self._fail_start(run, c, f"executable file not found in $PATH: {argv[0]!r}")
            return
        if c.spec.get("workingDir") and not Path(cwd).is_dir():
            self._fail_start(run, c, f"workingDir {cwd!r} does not exist on this machine")
            return
        self._drop_exit_code(c)  # of its last run, if it restarts
        mods = self.warm.eligible(run.pod, argv, env) if warm else None
        if mods is not None and self._spawn_warm(run, c, mods, argv, env, cwd):
            return
        try:
            rid = self._shim_start(argv, env, cwd, str(c.log_path), str(c.exit_path))
        except ShimError as exc:
            self._fail_start(run, c, f"cannot start: {exc}")
            return
        # The shim answers on its socket; the runtime thread marks it running then.
        c.state, c.reason, c.message = "starting", "ContainerCreating", ""
        self._starting[rid] = (run, c)

    def _start_shim(self) -> Shim:
        shim = Shim(self.run_dir / "shim.log")
        self._shim = shim
        self._sel.register(shim.fileno(), selectors.EVENT_READ)
        return shim

    def _shim_start(
        self, argv: list[str], env: dict[str, str], cwd: str, log_path: str, exit_path: str
    ) -> int:
        shim = self._shim
        if shim is None or not shim.alive:
            self._shim_gone()
            shim = self._start_shim()
        return shim.start(argv, env, cwd, log_path, exit_path)

    def _on_started(self, rid: int, pid: int, ticks: int) -> _PodRun | None:
        entry = self._starting.pop(rid, None)
        if entry is None:
            return None
        run, c = entry
        if self._pods.get(run.uid) is not run:  # forgotten meanwhile: nobody wants it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            return None
        self._mark_running(c, pid, ticks, warm=False)
        self._note_start(run, c)
        self._by_pid[pid] = (run, c)
        if run.stopping or run.phase in ("Succeeded", "Failed"):
            # Stopped (or ended) while it was starting: it goes the way its siblings went.
            sig = signal.SIGKILL if run.phase in ("Succeeded", "Failed") else signal.SIGTERM
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
        self._update_phase(run)
        return run

    def _on_start_error(self, rid: int, message: str) -> _PodRun | None:
        entry = self._starting.pop(rid, None)
        if entry is None:
            return None
        run, c = entry
        self._fail_start(run, c, f"cannot start: {message}")
        self._advance(run)
        return run

    def _shim_gone(self) -> None:
        """The shim died (it never should): watch its orphans like re-adopted processes;
        what it had not started yet fails to start (its restart policy decides)."""
        old, self._shim = self._shim, None
        if old is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(old.fileno())
            old.close()
        orphans, self._by_pid = list(self._by_pid.values()), {}
        for run, c in orphans:
            if not self._attach(run, c):
                self._exit_later(run, c)
        for rid in list(self._starting):
            self._on_start_error(rid, "the process shim exited")

    def _spawn_warm(
        self,
        run: _PodRun,
        c: _Container,
        mods: tuple[str, ...],
        argv: list[str],
        env: dict[str, str],
        cwd: str,
    ) -> bool:
        """Ask the warm pool (runtime/warm.py) to fork a warm-eligible Python container. As
        with the shim, nothing waits for the fork: the container is "starting" until the
        zygote's answer arrives on its connection (see _warm_answer). It is not our child:
        that connection is then watched like a pidfd, and its exit code comes on it."""
        # The container makes its folders (as the shim does for the others): mkdir calls
        # cost a new Pod ~0.26 ms of the control plane's busiest thread.
        make_cwd = not c.spec.get("workingDir")
        fd = self.warm.request(mods, argv, env, cwd, c.log_path, c.exit_path, make_cwd=make_cwd)
        if fd is None:
            return False
        c.state, c.reason, c.message = "starting", "ContainerCreating", ""
        c.warm, c.warm_mods, c.pidfd = True, mods, fd
        self._by_fd[fd] = (run, c)
        self._sel.register(fd, selectors.EVENT_READ)
        os.write(self._wake_w, b"x")
        return True

    def _warm_answer(self, run: _PodRun, c: _Container) -> None:
        """The zygote answered a warm container's request: it runs (and is stopped at once if
        its Pod was stopped or ended meanwhile), or the zygote could not fork it and it
        starts the normal way."""
        assert c.pidfd is not None
        got = self.warm.started(c.warm_mods, c.pidfd)
        if got is None:
            self._close_fd(c)
            c.state = "waiting"
            self._spawn(run, c, warm=False)
            self._update_phase(run)
            return
        pid, ticks = got
        self._mark_running(c, pid, ticks, warm=True)
        self._note_start(run, c)
        if run.stopping or run.phase in ("Succeeded", "Failed"):
            # It goes the way its siblings went (see _on_started).
            sig = signal.SIGKILL if run.phase in ("Succeeded", "Failed") else signal.SIGTERM
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
        self._update_phase(run)

    def _forgotten(self, run: _PodRun, c: _Container) -> None:
        """A warm container whose Pod was forgotten while it was starting: kill it once the
        zygote says it is forked, and when it has ended drop what it left."""
        assert c.pidfd is not None
        if c.state == "starting":
            got = self.warm.started(c.warm_mods, c.pidfd)
            if got is not None:
                c.state, c.pid = "running", got[0]
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(got[0], signal.SIGKILL)
                return  # its connection says when it is gone
        self._close_fd(c)
        with contextlib.suppress(FileNotFoundError):
            c.exit_path.unlink()

    def _note_start(self, run: _PodRun, c: _Container) -> None:
        """Journal the start (see journal.py): the store hears of it only with the Pod's
        next status write, a restarted control plane must know of it at once."""
        if self._journal.record(run.uid, c.name, _start_of(c)):
            self._journal.compact(
                (r.uid, x.name, _start_of(x))
                for r in self._pods.values()
                for x in r.containers()
                if x.pid is not None and x.ticks is not None
            )

    @staticmethod
    def _mark_running(c: _Container, pid: int, ticks: int, *, warm: bool) -> None:
        c.pid, c.ticks, c.warm, c.exit_waits = pid, ticks, warm, 0
        c.state, c.reason, c.message = "running", "", ""
        c.started_at, c.finished_at = now_iso(), None
        c.exit_code, c.signal, c.oom = None, None, False

    def _fail_start(self, run: _PodRun, c: _Container, message: str) -> None:
        c.pid = None
        c.started_at = c.finished_at = now_iso()
        self._finish(run, c, 128, None, reason="StartError", message=message)

    def _attach(self, run: _PodRun, c: _Container) -> bool:
        """Watch a process spawned by an earlier control plane. False if it is gone."""
        if c.pid is None or proc_start_ticks(c.pid) != c.ticks:
            return False
        try:
            c.pidfd = os.pidfd_open(c.pid)
        except OSError:
            return False
        self._by_fd[c.pidfd] = (run, c)
        self._sel.register(c.pidfd, selectors.EVENT_READ)
        os.write(self._wake_w, b"x")
        return True

    @staticmethod
    def _restore(c: _Container, cs: Obj) -> None:
        c.restart_count = int(cs.get("restartCount", 0))
        last = (cs.get("lastState") or {}).get("terminated")
        c.last_state = last
        cid = cs.get("containerID") or ""
        if cid.startswith("local://"):
            pid, _, ticks = cid[len("local://") :].partition("/")
            c.pid, c.ticks = int(pid), int(ticks or 0)
        state = cs.get("state") or {}
        if "running" in state:
            c.state, c.started_at = "running", state["running"].get("startedAt")
        elif "terminated" in state:
            t = state["terminated"]
            c.state, c.exit_code, c.reason = "terminated", t.get("exitCode"), t.get("reason", "")
            c.started_at, c.finished_at = t.get("startedAt"), t.get("finishedAt")
            c.message, c.signal = t.get("message", ""), t.get("signal")

    @staticmethod
    def _read_exit_file(c: _Container) -> tuple[int, int | None]:
        code = LocalRuntime._exit_code_in_file(c)
        return (137 if code is None else code), None

    @staticmethod
    def _exit_code_in_file(c: _Container) -> int | None:
        try:
            return int(c.exit_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def _unwatch(self, c: _Container) -> int | None:
        """Stop watching the container's fd; the fd, now the caller's (None if none)."""
        fd, c.pidfd = c.pidfd, None
        if fd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(fd)
            self._by_fd.pop(fd, None)
        return fd

    def _close_fd(self, c: _Container) -> None:
        """Stop watching the container's fd and close it. A warm container's connection is
        released: its zygote is told that it need not keep the exit code (it has been read,
        or nobody wants it any more)."""
        fd = self._unwatch(c)
        if fd is None:
            return
        if c.warm:
            release(fd)
        else:
            os.close(fd)

    def _kill(self, run: _PodRun, sig: int) -> None:
        for c in run.containers():
            if c.state == "running" and c.pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(c.pid, sig)
            if c.restart_pending:
                c.restart_pending = False
        self._update_phase(run)

    def _on_exit(self, run: _PodRun, c: _Container) -> None:
        """A re-adopted or warm container's fd said it ended. A warm one's exit code is on its
        connection, which is kept (and the code with it, by the zygote) until the code is
        recorded (see _drop_exit_code); a re-adopted one's, or that of a warm one whose
        zygote went away, is in its exit file."""
        if c.warm and c.pidfd is not None:
            code = read_code(c.pidfd)
            if code is not None:
                self._kill_group(c)
                c.held = self._unwatch(c)
                self._finish(run, c, code, None)
                self._advance(run)
                return
            if self._outlive_zygote(run, c):
                return
        self._kill_group(c)
        self._close_fd(c)
        if not c.warm and self._exit_code_in_file(c) is None:
            # The shim of the control plane that started it writes the file just after the
            # process ends: give it a moment before calling the code lost.
            self._exit_later(run, c)
            return
        self._finish(run, c, *self._read_exit_file(c))
        self._advance(run)

    @staticmethod
    def _kill_group(c: _Container) -> None:
        """The container ended: nothing it left in its process group outlives it (as a
        container's processes die with it)."""
        if c.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(c.pid, signal.SIGKILL)

    def _outlive_zygote(self, run: _PodRun, c: _Container) -> bool:
        """A warm container's connection closed with no exit code: its zygote stopped or
        died (the pool dropped it, or it crashed). The container is a process of its own
        and may well still run: it is then watched as a re-adopted one, its code read from
        its exit file (which the zygote writes for a container it hung up on, and the
        container itself once its zygote is gone). False if it ended too."""
        if c.pid is None or c.ticks is None or proc_start_ticks(c.pid) != c.ticks:
            return False
        fd = self._unwatch(c)
        if fd is not None:
            os.close(fd)  # no release: that would tell a live zygote to write no exit file
        c.warm = False
        return self._attach(run, c)

    def _exit_later(self, run: _PodRun, c: _Container) -> None:
        def check() -> None:
            if c.state != "running":
                return
            if self._exit_code_in_file(c) is None and c.exit_waits < 100:
                c.exit_waits += 1
                self._after(0.02, check, run)
                return
            self._finish(run, c, *self._read_exit_file(c))
            self._advance(run)

        self._after(0.02, check, run)

    def _on_shim_exit(self, pid: int, code: int, sig: int | None) -> _PodRun | None:
        entry = self._by_pid.pop(pid, None)
        if entry is None:
            return None
        run, c = entry
        if c.state != "running" or c.pid != pid:
            return None
        c.told_by = self._shim
        self._finish(run, c, code, sig)
        self._advance(run)
        return run

    def _finish(
        self,
        run: _PodRun,
        c: _Container,
        code: int,
        sig: int | None,
        reason: str | None = None,
        message: str = "",
    ) -> None:
        c.state, c.exit_code, c.signal = "terminated", code, sig
        c.finished_at = c.finished_at if reason == "StartError" else now_iso()
        if reason is None:
            if c.oom:
                reason = "OOMKilled"
                message = f"memory limit {quantity.fmt_bytes(c.memory_limit or 0)} exceeded"
            elif run.reason == "DeadlineExceeded":
                reason = "DeadlineExceeded"
            else:
                reason = "Completed" if code == 0 else "Error"
        c.reason, c.message = reason, message
        if run.stopping or run.phase in ("Succeeded", "Failed"):
            self._update_phase(run)
            return
        restart = run.restart_policy == "Always" or (
            run.restart_policy == "OnFailure" and code != 0
        )
        if c.init:
            restart = code != 0 and run.restart_policy != "Never"
        if restart:
            delay = min(self.backoff_cap, self.backoff_base * 2**c.restart_count)
            c.restart_pending = True
            c.message = message or f"back-off {delay:g}s restarting failed container"
            self._after(delay, lambda: self._restart(run, c), run)
        self._update_phase(run)

    def _restart(self, run: _PodRun, c: _Container) -> None:
        if not c.restart_pending or run.stopping:
            return
        c.restart_pending = False
        c.last_state = c.terminated_state()
        c.restart_count += 1
        c.state = "waiting"
        self._spawn(run, c)
        self._update_phase(run)

    def _update_phase(self, run: _PodRun) -> None:
        if run.reason == "DeadlineExceeded":
            # Failed once the killed containers are really gone, never while one runs.
            if not any(c.state in ("running", "starting") for c in run.containers()):
                run.phase = "Failed"
        elif any(
            c.state == "terminated" and c.exit_code != 0 and not c.restart_pending for c in run.init
        ):
            run.phase = "Failed"
        elif run.main and all(c.state == "terminated" and not c.restart_pending for c in run.main):
            run.phase = "Succeeded" if all(c.exit_code == 0 for c in run.main) else "Failed"
            if run.stopping and run.phase == "Failed" and not run.reason:
                run.reason = "Terminated"
        elif any(c.state == "running" or c.restart_pending for c in run.main):
            run.phase = "Running"
        if run.phase in ("Succeeded", "Failed") and not run.stopping:
            self._kill_leftovers(run)

    def _kill_leftovers(self, run: _PodRun) -> None:
        for c in run.containers():
            if c.state == "running" and c.pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(c.pid, signal.SIGKILL)

    def _arm_deadline(self, run: _PodRun, elapsed: float) -> None:
        deadline = (run.pod.get("spec") or {}).get("activeDeadlineSeconds")
        if deadline is None:
            return

        def expire() -> None:
            if run.phase in ("Succeeded", "Failed"):
                return
            run.reason, run.stopping = "DeadlineExceeded", True
            run.message = (
                f"Pod was active on the node longer than the specified deadline ({deadline}s)"
            )
            self._kill(run, signal.SIGKILL)

        self._after(max(0.0, float(deadline) - elapsed), expire, run)

    # -- the runtime thread -----------------------------------------------------------------

    def _after(
        self, delay: float, fn: Callable[[], bool | None], run: _PodRun | None = None
    ) -> None:
        """Run ``fn`` (with the lock held) after ``delay``; then tell the controller about
        ``run``, unless ``fn`` returned False (nothing new)."""
        with self._lock:
            self._timer_seq += 1
            heapq.heappush(self._timers, (time.monotonic() + delay, self._timer_seq, fn, run))
        os.write(self._wake_w, b"x")

    def _loop(self) -> None:
        while not self._closed:
            with self._lock:
                timeout = max(0.0, self._timers[0][0] - time.monotonic()) if self._timers else None
            shim_said = False
            for key, _ in self._sel.select(timeout):
                fd = int(key.fd)
                if fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    continue
                if self._shim is not None and fd == self._shim.fileno():
                    shim_said = True  # drained below, after the warm containers' news
                    continue
                with self._lock:
                    entry = self._by_fd.get(fd)
                    if entry is None:
                        continue
                    run, c = entry
                    if self._pods.get(run.uid) is not run:
                        self._forgotten(run, c)
                        continue
                    if c.state == "starting":
                        self._warm_answer(run, c)
                        if c.state == "running":
                            self._notice_running(run)
                            continue
                    else:
                        self._on_exit(run, c)
                self._notify(run)
            if shim_said:
                # Only then: a read that finds nothing is still a system call, an exception
                # and a hand-over of the GIL on every turn of this loop, and warm containers
                # (a pipeline's tasks) never hear from the shim.
                self._drain_shim()
            due: list[tuple[Callable[[], bool | None], _PodRun | None]] = []
            with self._lock:
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    _, _, fn, owner = heapq.heappop(self._timers)
                    due.append((fn, owner))
            for fn, owner in due:
                try:
                    with self._lock:
                        news = fn()
                except Exception:
                    log.exception("runtime timer failed")
                    news = None
                if owner is not None and news is not False:
                    self._notify(owner)

    def _drain_shim(self) -> None:
        shim = self._shim
        if shim is None:
            return
        events = shim.events()
        changed: dict[str, _PodRun] = {}
        started: dict[str, _PodRun] = {}
        with self._lock:
            if self._closed:
                return
            for ev in events:
                run: _PodRun | None
                if ev[0] == "started":
                    run = self._on_started(ev[1], ev[2], ev[3])
                    if run is not None:
                        started[run.uid] = run
                    continue
                elif ev[0] == "error":
                    run = self._on_start_error(ev[1], ev[2])
                else:
                    run = self._on_shim_exit(ev[1], ev[2], ev[3])
                if run is not None:
                    changed[run.uid] = run
            if not shim.alive and self._shim is shim:
                log.warning("the process shim exited; watching its containers directly")
                self._shim_gone()
            for uid, run in started.items():
                if uid not in changed:
                    self._notice_running(run)
        for run in changed.values():
            self._notify(run)

    def _notice_running(self, run: _PodRun) -> None:
        """Tell the controller that a container started, RUNNING_NOTICE from now, if its Pod
        has not ended by then (its end is told at once, with the start in the same status)."""

        def due() -> bool:
            return self._pods.get(run.uid) is run and run.phase not in TERMINAL

        self._after(RUNNING_NOTICE, due, run)

    def _notify(self, run: _PodRun) -> None:
        try:
            self._on_change(run.namespace, run.name)
        except Exception:
            log.exception("runtime on_change callback failed")

    def _memory_watchdog(self) -> None:
        while not self._closed:
            time.sleep(0.2)
            with self._lock:
                watched = [
                    (run, c)
                    for run in self._limited.values()
                    for c in run.containers()
                    if c.memory_limit and c.state == "running" and c.pid
                ]
            for _run, c in watched:
                if _tree_rss(c.pid) > (c.memory_limit or 0):
                    with self._lock:
                        c.oom = True
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.killpg(c.pid or 0, signal.SIGKILL)


def _start_of(c: _Container) -> Start:
    """A started container's journal entry (see journal.py)."""
    assert c.pid is not None and c.ticks is not None
    return Start(c.pid, c.ticks, c.restart_count, c.started_at or "-")


def _tree_rss(pid: int | None) -> int:
    if not pid:
        return 0
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += int(p.memory_info().rss)
    return total


def _elapsed_since(ts: str | None) -> float:
    if not ts:
        return 0.0
    from shipyard.core.resource import parse_time

    return max(0.0, time.time() - parse_time(ts).timestamp())


def _value_from(src: Obj, md: Obj, container: Obj) -> str:
    """env[].valueFrom: fieldRef and resourceFieldRef as the kubelet resolves them."""
    if "fieldRef" in src:
        path = src["fieldRef"].get("fieldPath", "")
        simple: dict[str, Any] = {
            "metadata.name": md.get("name"),
            "metadata.namespace": md.get("namespace"),
            "metadata.uid": md.get("uid"),
            "spec.nodeName": "local",
            "spec.serviceAccountName": "default",
            "status.podIP": "127.0.0.1",
            "status.hostIP": "127.0.0.1",
        }
        if path in simple:
            return str(simple[path] or "")
        m = re.match(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
        if m:
            return str((md.get(m.group(1)) or {}).get(m.group(2), ""))
        return ""
    if "resourceFieldRef" in src:
        ref = src["resourceFieldRef"]
        kind, _, res = str(ref.get("resource", "")).partition(".")
        value = ((container.get("resources") or {}).get(kind) or {}).get(res)
        if value is None:
            return ""
        divisor = quantity.parse(ref.get("divisor", "1"))
        return str(max(1, int(quantity.parse(value) / divisor + 0.999999)))
    return ""
