"""Warm worker pool: Python containers forked from a long-lived "zygote" process.

A container whose command is a Python invocation (``python -m mod ...``, ``python
script.py ...`` or ``python -c code ...``) in a Pod annotated ``shipyard.dev/warm: "<modules>"``
does not pay for an interpreter start and its imports: it is forked from a zygote that
already imported ``<modules>`` (comma-separated; empty means just ``shipyard``). There is one
zygote per set of modules, started lazily and kept warm; one that died is started again.
``shipyard.dev/isolation: process`` opts a Pod out.

Everything else is what a normal local container gets: its own session and process group,
environment, working directory, stdout/stderr appended to its log file, an exit code that
survives the control plane (below), kill by process group.

Protocol (one Unix stream connection per container, lean on purpose):

1. runtime → zygote: the lengths (4 bytes each, big-endian) of the container's exit file's
   path and of its JSON request ``{argv, env, cwd, mkcwd, log}``, then the two. The zygote
   needs only the path: the JSON is parsed by the child, not by the zygote, whose memory
   the spare shares (parsing it there cost the request ~0.2 ms of copy-on-write faults);
2. the zygote hands the request, with the connection, to its spare (a child it forked ahead
   of time, which prepared itself and waits on a socket pair; the next spare is forked when
   a container ends, or shortly after the hand-over, not beside the container just
   started; while it waits, it also takes a set of a working folder, a log file and one
   empty file in the zygote's ready folder, which the container renames or links into
   place: the zygote makes such sets ahead in quiet moments, and a spare makes its own when
   there are none left: see _Ready and _Stock) or forks a child; zygote → runtime: the
   child's pid and its start time in clock ticks (8 bytes each), or nothing if it could
   not. The child starts at once: the zygote reaps it only after replying, so until then
   even a child that already ended is a zombie whose pid and start time are still its own.
   The runtime does not wait for this answer: it reads it when the connection becomes
   readable (the container shows ContainerCreating until then);
3. zygote → runtime, as soon as the child has told the zygote its exit code (on a socket
   pair, its last act before ``_exit``; a small child is then torn down at idle priority),
   or else when the child has been reaped: the exit code (4 bytes). The runtime watches the
   connection like a pidfd, so a child that ends before the runtime registers it is still
   observed; and it learns of the end without waiting for the kernel to tear down the
   child's memory (milliseconds for a forked ML process). A child that exited with 0 appends
   to its exit code the names of the modules it imported that the zygote had not (only ones
   the zygote would import from the same files: the standard library, or submodules of
   packages the zygote already holds, found on its own path). The zygote imports them too,
   once, and forks a fresh spare, so the next containers do not pay for them: a trial that
   calls ``load_breast_cancer`` or ``report_metrics`` imports a dozen such modules lazily,
   some milliseconds a container;
4. runtime → zygote, once the code is recorded in the store (or the Pod forgotten): ``F``.
   Until then the zygote keeps the code, as the process shim does: a connection that hangs
   up first (the control plane died) has its code written to the container's exit file,
   now or when the child ends, for the restarted control plane to read. While the control
   plane is there a container costs no exit file (creating, renaming, reading and removing
   one cost ~0.1-1 ms of file-system work a container). A child whose zygote is gone writes
   its exit file itself.

The zygote reads its standard input only to learn that the control plane is gone: it then
stops accepting, writes the exit codes it holds to their files, lets its running children
finish (writing theirs too, so a restarted control plane can adopt them) and exits.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import resource
import select
import socket
import struct
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.runtime.shim import make_dir, open_log

if TYPE_CHECKING:
    import logging

# logging, subprocess, threading and shutil are imported where they are used, not here: the
# zygote imports this module, and every container is a fork of it. Their at-fork hooks
# (threading's and logging's, and random's reseed: the artifact store's tempfile brought
# it) ran in each child: a pipeline step copied ~600 of the zygote's pages instead of ~500,
# and the zygote was 2 MB larger. shutil loads bz2 and lzma, and their libraries (with
# uuid's, see pipelines/placeholders.py: 38 of the zygote's 141 mappings, a sixth of the
# time of its every fork). A container that imports them has them, and the zygote then
# learns them (see _learnable) if they are of the standard library.


def _log() -> logging.Logger:
    import logging

    return logging.getLogger(__name__)


WARM_ANNOTATION = "shipyard.dev/warm"
ISOLATION_ANNOTATION = "shipyard.dev/isolation"

Obj = dict[str, Any]
_Mains = dict[str, tuple[Any, Any]]  # preloaded module -> (spec, code) to run it as __main__

# The zygote's import path (absolute folders, each ending in a separator), set in the zygote
# before it forks: a module a child imported from under one of these, and not from its own
# working directory or PYTHONPATH, is the module the zygote would import under that name.
_ROOTS: tuple[str, ...] = ()
_READY = ""  # in a zygote: its folder of entries made ahead for its spares (see _Ready)
_LEARN_CAP = 32 << 10  # bytes of module names a child reports
FORGET = b"F"  # runtime -> zygote: the container's exit code is recorded (see release)
SPARE_DELAY = 0.02  # seconds after a hand-over to fork the next spare anyway (see replenish)
STOCK_SETS = 64  # sets of ready entries a zygote keeps made ahead (see _Stock)
STOCK_QUIET = 0.05  # seconds without news before a zygote makes more of them
# A container that peaked below this (KiB resident: a pipeline step is ~18 MB) is torn down
# at idle priority once it has reported its end (see _child); a larger one at once, so that
# its memory is freed promptly on a busy machine.
_IDLE_EXIT_KIB = 64 << 10
# Standard modules whose import does something visible (a browser, a poem, a terminal).
_NEVER_LEARN = frozenset({"antigravity", "this", "__hello__", "__phello__", "readline"})


# Settings python reads from its environment only as it starts (hash randomisation, warning
# filters, optimisation, standard streams' encoding, locale, ...): a container that sets one to
# another value than the zygote (which has the control plane's environment) was started
# with is started the normal way.
STARTUP_ONLY = frozenset(
    {
        "PYTHONHASHSEED",
        "PYTHONWARNINGS",
        "PYTHONOPTIMIZE",
        "PYTHONIOENCODING",
        "PYTHONUTF8",
        "PYTHONDEVMODE",
        "PYTHONMALLOC",
        "PYTHONFAULTHANDLER",
        "PYTHONTRACEMALLOC",
        "PYTHONINTMAXSTRDIGITS",
        "PYTHONNOUSERSITE",
        "PYTHONUSERBASE",
        "PYTHONHOME",
        "PYTHONSAFEPATH",
        "PYTHONVERBOSE",
        "PYTHONDEBUG",
        "PYTHONINSPECT",
        "PYTHONPROFILEIMPORTTIME",
        "PYTHONCOERCECLOCALE",
        # The locale of text (LC_CTYPE), which python sets from these as it starts.
        "LC_ALL",
        "LC_CTYPE",
        "LANG",
    }
)


def python_invocation(argv: list[str], path_env: str | None) -> bool:
    """Whether ``argv`` runs *this* interpreter with ``-m``, ``-c`` or a script."""
    if len(argv) < 2 or not _this_python(argv[0], path_env):
        return False
    first = argv[1]
    if first in ("-m", "-c"):
        return len(argv) >= 3
    return not first.startswith("-")


@functools.lru_cache(maxsize=64)
def _this_python(exe: str, path_env: str | None) -> bool:
    """Whether ``exe`` (looked up in ``path_env``) is this interpreter. Remembered: the
    lookup and two realpath calls cost ~0.3 ms, for every Pod."""
    base = os.path.basename(exe)
    if not (base == "python" or base.startswith("python3")):
        return False
    import shutil  # not at the top: see _log

    found = exe if os.sep in exe else shutil.which(exe, path=path_env)
    if found is None:
        return False
    # A venv's python is a symlink to the base interpreter: compare the folder too, so a
    # command naming another environment's interpreter is not forked from this one.
    here = os.path.dirname(os.path.abspath(sys.executable))
    if os.path.dirname(os.path.abspath(found)) != here:
        return False
    try:
        return os.path.realpath(found) == os.path.realpath(sys.executable)
    except OSError:
        return False


def warm_modules(pod: Obj) -> tuple[str, ...] | None:
    """The modules to preload for a Pod, or None when it does not ask for the warm path."""
    ann = (pod.get("metadata") or {}).get("annotations") or {}
    if WARM_ANNOTATION not in ann or ann.get(ISOLATION_ANNOTATION) == "process":
        return None
    mods = {m.strip() for m in str(ann[WARM_ANNOTATION]).split(",") if m.strip()}
    mods.add("shipyard")
    return tuple(sorted(mods))


class _Zygote:
    def __init__(self, modules: tuple[str, ...], log_path: Path, ready: Path) -> None:
        import subprocess  # not at the top: see _log

        self.modules = modules
        ready_dir = _Ready.folder(str(ready))  # "" if it cannot be made
        key = hashlib.sha256(",".join(modules).encode()).hexdigest()[:16]
        self.address = f"\0shipyard-warm-{os.getpid()}-{id(self):x}-{key}"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.address)
        listener.listen(512)
        logfd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _ZYGOTE_MAIN,
                    str(listener.fileno()),
                    ready_dir,
                    *modules,
                ],
                stdin=subprocess.PIPE,
                stdout=logfd,
                stderr=logfd,
                pass_fds=(listener.fileno(),),
                start_new_session=True,
                close_fds=True,
            )
        finally:
            os.close(logfd)
            listener.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def retire(self) -> None:
        """Tell it to stop, without waiting: it takes no new requests and exits once the
        containers it forked have ended (writing the codes it holds to their exit files)."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def stop(self) -> None:
        import subprocess  # not at the top: see _log

        self.retire()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait()


class WarmPool:
    """Zygotes by preload set; :meth:`spawn` forks a container from the right one."""

    def __init__(self, run_dir: Path) -> None:
        import threading  # not at the top: see _log

        self.run_dir = Path(run_dir)
        self._lock = threading.Lock()
        self._zygotes: dict[tuple[str, ...], _Zygote] = {}
        self._broken: dict[tuple[str, ...], int] = {}
        self._retired: list[_Zygote] = []  # dropped, still running their containers
        self._closed = False

    def eligible(self, pod: Obj, argv: list[str], env: dict[str, str]) -> tuple[str, ...] | None:
        mods = warm_modules(pod)
        if mods is None or not python_invocation(argv, env.get("PATH")):
            return None
        if any(env[k] != os.environ.get(k) for k in STARTUP_ONLY.intersection(env)):
            return None  # python reads it only as it starts: the zygote's value would stay
        return mods

    def request(
        self,
        mods: tuple[str, ...],
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        log_path: Path,
        exit_path: Path,
        *,
        make_cwd: bool = False,
    ) -> int | None:
        """Ask the zygote holding ``mods`` (what ``eligible`` said) to fork the container;
        return the connection's fd, or None to fall back to a normal spawn. Nothing waits for
        the fork: the fd becomes readable with the answer (read it with :func:`read_started`),
        and readable again once the container ended (read its code with :func:`read_code`).
        The caller owns the fd and lets it go with :func:`release` once the code is recorded.
        The container makes its log's folder if missing, and ``cwd`` if missing and
        ``make_cwd``."""
        if self._broken.get(mods, 0) >= 3:
            return None
        body = json.dumps(
            {"argv": argv, "env": env, "cwd": cwd, "mkcwd": make_cwd, "log": str(log_path)}
        ).encode()
        path = os.fsencode(exit_path)
        request = struct.pack(">II", len(path), len(body)) + path + body
        for _ in range(2):
            zygote = self._zygote(mods)
            if zygote is None:
                return None
            fd = _send(zygote.address, request)
            if fd is not None:
                return fd
            self.failed(mods, zygote)  # gone: start a fresh one, once
        _log().warning("warm pool for %s is unavailable; falling back to a normal spawn", mods)
        return None

    def started(self, mods: tuple[str, ...], fd: int) -> tuple[int, int] | None:
        """The answer on a connection from :meth:`request` that became readable: (pid, start
        ticks), or None if the zygote could not fork (counted against it: the caller starts
        the container the normal way)."""
        got = read_started(fd)
        if got is None:
            self.failed(mods)
        else:
            self._broken.pop(mods, None)
        return got

    def failed(self, mods: tuple[str, ...], zygote: _Zygote | None = None) -> None:
        """The zygote for ``mods`` did not take a request: drop it (the next request starts a
        fresh one); after three failures in a row the pool stops trying for ``mods``."""
        with self._lock:
            if zygote is None or self._zygotes.get(mods) is zygote:
                dropped = self._zygotes.pop(mods, None)
                if dropped is not None:
                    # Not stopped and waited for here (a runtime or reconcile thread): its
                    # running containers go on, and it exits after them.
                    dropped.retire()
                    self._retired = [z for z in self._retired if z.alive()] + [dropped]
            self._broken[mods] = self._broken.get(mods, 0) + 1

    def _zygote(self, mods: tuple[str, ...]) -> _Zygote | None:
        with self._lock:
            if self._closed:
                return None
            z = self._zygotes.get(mods)
            if z is not None and z.alive():
                return z
            if z is not None:
                z.stop()
            self.run_dir.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha256(",".join(mods).encode()).hexdigest()[:12]
            z = _Zygote(mods, self.run_dir / f"zygote-{name}.log", self.run_dir / f"ready-{name}")
            self._zygotes[mods] = z
            return z

    def prestart(self, annotation: str) -> bool:
        """Start the zygote a Pod annotated ``shipyard.dev/warm: <annotation>`` would use, now,
        so the first such Pod does not wait for its imports. Returns False if closed."""
        mods = warm_modules({"metadata": {"annotations": {WARM_ANNOTATION: annotation}}})
        return mods is not None and self._zygote(mods) is not None

    def zygote_pids(self) -> list[int]:
        with self._lock:
            return [z.proc.pid for z in self._zygotes.values() if z.alive()]

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            zygotes = [*self._zygotes.values(), *self._retired]
            self._zygotes.clear()
            self._retired = []
        for z in zygotes:
            z.stop()


def _start_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return 0
    return int(stat[stat.rfind(b")") + 2 :].split()[19])


def _send(address: str, request: bytes) -> int | None:
    """Connect to a zygote and send a request; the connection's fd, or None if it is gone."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address)
        sock.sendall(request)
    except OSError:
        sock.close()
        return None
    return sock.detach()


def _read_exact(fd: int, n: int) -> bytes | None:
    """``n`` bytes from a container's connection (on either end); None if it was closed, or
    failed, first."""
    try:
        data = os.read(fd, n)
        while data and len(data) < n:
            more = os.read(fd, n - len(data))
            if not more:
                return None
            data += more
    except OSError:
        return None
    return data if len(data) == n else None


def read_started(fd: int) -> tuple[int, int] | None:
    """Read a zygote's answer to a request, (pid, start ticks), from its connection once
    readable (it is 16 bytes, sent at once); None if the zygote closed it without one."""
    data = _read_exact(fd, 16)
    if data is None:
        return None
    pid, ticks = struct.unpack(">qq", data)
    return pid, ticks


def read_code(fd: int) -> int | None:
    """The exit code on a connection from :meth:`WarmPool.request` that became readable again
    after its answer; None if the zygote closed it without one (it is gone)."""
    data = _read_exact(fd, 4)
    return None if data is None else int(struct.unpack(">i", data)[0])


def release(fd: int) -> None:
    """Close a connection from :meth:`WarmPool.request`, telling the zygote first that its
    container's exit code need not be kept (recorded, or the Pod forgotten): it then writes
    no exit file for it."""
    sock = socket.socket(fileno=fd)
    with contextlib.suppress(OSError):
        sock.send(FORGET, socket.MSG_NOSIGNAL)
    sock.close()


# ---------------------------------------------------------------------------------------------
# The zygote process (``python -c _ZYGOTE_MAIN FD READY MODULE...``)

# What the zygote runs. Not `-m` (its module would be __main__, and a container importing this
# one, see ready_file, would load a second copy without the zygote's state), and not `-P`
# (its children would show that flag, and pass it on to the pythons they start): it drops
# its working folder from its path itself, before it imports anything from there.
_ZYGOTE_MAIN = (
    "import sys; del sys.path[0]; from shipyard.runtime.warm import zygote_main; "
    "zygote_main(int(sys.argv[1]), sys.argv[2], sys.argv[3:])"
)


def _unframe(request: bytes) -> tuple[str, bytes]:
    """A request as the runtime sent it: the exit file's path and the JSON request."""
    n, _ = struct.unpack(">II", request[:8])
    return os.fsdecode(request[8 : 8 + n]), request[8 + n :]


def _write_exit(path: str, code: int) -> bool:
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, f"{code}\n".encode())
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        return False
    return True


_LOADED: frozenset[str] = frozenset()


def _loaded() -> frozenset[str]:
    """The zygote's modules, which a child it forks now inherits: taken here, in the zygote,
    before a fork. A child that listed them itself would touch the reference count of every
    module's name, copying ~150 pages of the zygote (~0.5 ms of CPU a container here)."""
    global _LOADED
    if len(_LOADED) != len(sys.modules):
        _LOADED = frozenset(sys.modules)
    return _LOADED


class _Ready:
    """A spare's set of entries in the zygote's ready folder (in the runtime's data, on the
    file system of the logs and Pod folders): an empty folder, an empty log file and an
    empty file, which its container renames or links into place as its working folder, its
    log and a file it writes (see :func:`ready_file`). Creating a file or a folder (a new
    inode) took 0.1-0.7 ms on a VM's disk, a rename or a link a tenth of that, and a
    pipeline step made three after its request. The set is one the zygote made ahead (see
    _Stock), or else one the spare makes while it waits, named by its pid. What its
    container did not take, the zygote removes once it has reaped it."""

    __slots__ = ("dir", "file", "log", "log_fd")

    def __init__(self, log: str) -> None:
        self.log = log  # the ready log's path; log_fd is set if it was made
        self.log_fd: int | None = None
        self.dir: str | None = None  # the ready folder's path, if it was made
        self.file: str | None = None  # the ready file's path, if it was made (ready_file)

    @staticmethod
    def folder(path: str) -> str:
        """Make a zygote's ready folder, empty (a zygote it replaces may have left some);
        "" if it cannot: the containers then make their own entries. Called by the control
        plane as it starts the zygote, which is given what it returns."""
        import shutil  # not at the top: see _log

        shutil.rmtree(path, ignore_errors=True)
        try:
            os.makedirs(path, exist_ok=True)
        except OSError:
            return ""
        return path

    @classmethod
    def make(cls, sock: socket.socket, stocked: str | None = None) -> _Ready | None:
        """In a spare: its entries (None if the zygote has no ready folder). The set named
        ``stocked`` (the base of its names) was made by the zygote: its log is only opened.
        Otherwise the spare makes them, one at a time and only while its request (on
        ``sock``) is not there yet: a request waits for none of them. One not made (or
        gone) is left to the container, as without a spare."""
        if not _READY:
            return None
        if stocked is not None:
            ready = cls(stocked + ".log")
            with contextlib.suppress(OSError):
                ready.log_fd = os.open(ready.log, os.O_WRONLY | os.O_APPEND)
            ready.dir, ready.file = stocked + ".d", stocked + ".file"
            return ready
        base = _spare_base(os.getpid())
        ready = cls(base + ".log")
        waiting = select.poll()
        waiting.register(sock, select.POLLIN)
        for make in (ready._make_log, ready._make_dir, ready._make_file):
            if waiting.poll(0):
                break
            with contextlib.suppress(OSError):
                make(base)
        return ready

    def _make_log(self, base: str) -> None:
        self.log_fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _make_dir(self, base: str) -> None:
        os.mkdir(base + ".d")
        self.dir = base + ".d"

    def _make_file(self, base: str) -> None:
        _new_file(base + ".file")
        self.file = base + ".file"

    def take_log(self, path: str) -> int:
        """The container's log, open to append: the ready file linked in under its name,
        unless a file has that name already (a restarted container appends to its log) or
        the link fails; then as :func:`open_log` opens it."""
        fd, self.log_fd = self.log_fd, None
        if fd is not None:
            try:
                os.link(self.log, path)
            except OSError:
                os.close(fd)
            else:
                return fd  # its ready name goes when the zygote reaps the container
        return open_log(path)

    def take_dir(self, path: str) -> None:
        """Make the container's working folder: the ready one renamed to it, unless that
        fails (the folder exists, with files: a restarted container's); then make_dir."""
        ready, self.dir = self.dir, None
        if ready is not None:
            try:
                os.rename(ready, path)
            except OSError:
                pass
            else:
                return
        make_dir(path)

    @staticmethod
    def remove(base: str) -> None:
        """In the zygote, once the child that had the set ``base`` is gone: drop what it
        did not take."""
        for name in (base + ".log", base + ".file"):
            with contextlib.suppress(OSError):
                os.unlink(name)
        with contextlib.suppress(OSError):
            os.rmdir(base + ".d")


def _spare_base(pid: int) -> str:
    """The base of the names of the entries a spare makes itself."""
    return os.path.join(_READY, str(pid))


def _new_file(path: str) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))


class _Stock:
    """Sets of ready entries (see _Ready) the zygote makes ahead, one entry at a time, once
    it has heard nothing for STOCK_QUIET seconds, up to STOCK_SETS sets. A spare is forked
    when a container ends and makes its set while the control plane starts the next one:
    when making a file is slow, the next request waited for it. On ext4 without a journal
    it was 0.6-0.75 ms a file for minutes after many files nearby were deleted (the
    allocator passes over recently freed inodes): bench/pipelines.py's 10 steps in a line
    then ran at 9.0-10.4x kfp.local's speed, and at 10.9-11.5x with the sets made ahead
    (runs taking turns). Named ``s<N>``, apart from the spares' (named by their pid)."""

    def __init__(self) -> None:
        self.sets: list[str] = []  # bases of complete sets
        self._part = 0  # entries made of the next set
        self._seq = 0
        self._quiet_from = time.monotonic()
        self._failed = False

    def due(self) -> float | None:
        """Seconds until the next entry is to be made; None if none is to be."""
        if not _READY or self._failed or len(self.sets) >= STOCK_SETS:
            return None
        return max(0.0, self._quiet_from + STOCK_QUIET - time.monotonic())

    def busy(self) -> None:
        """The zygote had news: no entries until it has been quiet again."""
        self._quiet_from = time.monotonic()

    def make_one(self) -> None:
        """Make the next entry if due; a failure (the folder is gone) stops the stocking."""
        if self.due() != 0.0:
            return
        base = os.path.join(_READY, f"s{self._seq}")
        try:
            if self._part == 0:
                _new_file(base + ".log")
            elif self._part == 1:
                os.mkdir(base + ".d")
            else:
                _new_file(base + ".file")
        except OSError:
            self._failed = True
            return
        self._part += 1
        if self._part == 3:
            self.sets.append(base)
            self._part, self._seq = 0, self._seq + 1

    def take(self) -> str | None:
        """A complete set for a spare, gone from the stock; None if there is none."""
        return self.sets.pop() if self.sets else None


_TAKEN: _Ready | None = None  # in a container forked from a spare: what the spare made


def ready_file() -> str | None:
    """In a container the warm pool forked from a spare: the path of an empty file made
    before the container started, in the runtime's data (on the file system of its logs and
    Pod folders), for the container to write and rename into place, which costs a tenth of
    creating a file there. None in any other process, or once taken. A file not renamed
    away is removed when the container ends."""
    ready = _TAKEN
    if ready is None or ready.file is None:
        return None
    path, ready.file = ready.file, None
    return path


def _prepare() -> frozenset[str]:
    """What a child does before it looks at its request, so that a spare does it while it
    waits for one (off the request's path: a third of a millisecond): its own session,
    standard input from /dev/null, signals handled as in a fresh interpreter. Returns the
    modules it had when forked, to tell later which ones the container imported.

    The signals are set with ``_signal``, the C module under ``signal``: ``signal.signal``
    turns what it returns into an enum member, and that lookup's first use in a forked
    process copied ~25 of the zygote's pages (a pipeline step copied ~680 then)."""
    import _signal

    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for sig in (_signal.SIGTERM, _signal.SIGCHLD, _signal.SIGHUP):
        _signal.signal(sig, _signal.SIG_DFL)
    # As python sets them at start: a write to a closed pipe or socket (a model server
    # answering a client that gave up) raises BrokenPipeError instead of killing it.
    for sig in (_signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(sig, _signal.SIG_IGN)
    _signal.signal(_signal.SIGINT, _signal.default_int_handler)
    return _LOADED


def _child(
    conn: socket.socket,
    exit_path: str,
    body: bytes,
    mains: _Mains,
    report: socket.socket,
    before: frozenset[str] | None = None,
    ready: _Ready | None = None,
) -> None:
    """In the forked child: become the container whose JSON request is ``body``, never
    return. ``report`` (its end of a socket pair with the zygote, close-on-exec) carries the
    exit code, so the end is known before the kernel has torn the process down; only if the
    zygote cannot be told (it is gone) does the child write ``exit_path`` itself. ``before``
    is what :func:`_prepare` returned, if the child called it already."""
    global _TAKEN
    code = 1
    me = os.getpid()
    ident: tuple[int, int] | None = None
    learned = b""
    _TAKEN = ready
    try:
        if before is None:
            before = _prepare()
        req = json.loads(body)
        # Its folder is made here if missing, off the control plane.
        fd = ready.take_log(req["log"]) if ready is not None else open_log(req["log"])
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        keep = report.fileno()
        if keep > 2:
            st = os.fstat(keep)
            ident = (st.st_dev, st.st_ino)
            os.closerange(3, keep)
            os.closerange(keep + 1, 65536)
        else:
            os.closerange(3, 65536)
        code = _run(req, mains, ready)
        if code == 0:
            learned = _learnable(before, req["argv"], mains)
    except BaseException:
        with contextlib.suppress(BaseException):
            import traceback

            traceback.print_exc()
    if os.getpid() != me:
        # A process the container forked (a server's worker) that ended by raising, not by
        # os._exit: it unwound through this frame. It ends as a forked child of `python`
        # would; its code is not the container's, which goes on.
        os._exit(code)
    told = False
    if ident is not None:
        with contextlib.suppress(OSError):
            st = os.fstat(report.fileno())  # still ours (the program may have closed it)
            if (st.st_dev, st.st_ino) == ident:
                report.send(struct.pack(">i", code) + learned, socket.MSG_NOSIGNAL)
                told = True
    if not told:
        _write_exit(exit_path, code)
    elif resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < _IDLE_EXIT_KIB:
        # The zygote, woken by the report, usually waits on this core (a socket's wake-up
        # puts it on the sender's): the kernel would first tear this process down, ~1 ms it
        # does not give up. At idle priority, the teardown comes after any other work.
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        os.sched_yield()
    os._exit(code)


def _learnable(before: frozenset[str], argv: list[str], mains: _Mains) -> bytes:
    """In a child that ended well: the modules it imported that the zygote would import from
    the same files (see ``_ROOTS``), newline-separated, in import order; then, as
    ``-m:NAME``, the module it ran with ``-m`` if the zygote would find the same file for it
    (a submodule of a package the zygote holds) and holds no code for it yet."""
    names: list[str] = []
    size = 0
    ran = argv[2] if len(argv) > 2 and argv[1] == "-m" else ""
    if len(sys.modules) <= len(before) and (not ran or ran in mains):
        # Nothing new (usual once the zygote has learned): no walk over the modules, whose
        # every name it would touch. (A module dropped and another imported is missed: it
        # would only have been preloaded.)
        return b""
    with contextlib.suppress(Exception):
        # Its own folders come first on its path: a module from there is not the zygote's.
        own = tuple(
            os.path.join(os.path.abspath(p), "")
            for p in [os.getcwd(), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
            if p
        )
        for name, mod in list(sys.modules.items()):
            if name in before or name == "__main__":
                continue
            spec = getattr(mod, "__spec__", None)
            origin = getattr(spec, "origin", None)
            if spec is None or spec.name != name or not isinstance(origin, str):
                continue
            if origin not in ("built-in", "frozen") and (
                not origin.startswith(_ROOTS) or origin.startswith(own)
            ):
                continue
            size += len(name) + 1
            if size > _LEARN_CAP:
                break
            names.append(name)
        if ran and ran not in mains and "." in ran and ran.partition(".")[0] in before:
            import importlib.util

            origin = getattr(importlib.util.find_spec(ran), "origin", None)
            if (
                isinstance(origin, str)
                and origin.startswith(_ROOTS)
                and not origin.startswith(own)
                and size + len(ran) + 4 <= _LEARN_CAP
            ):
                names.append(f"-m:{ran}")
    return "\n".join(names).encode()


def _run(req: Obj, mains: _Mains, ready: _Ready | None = None) -> int:
    import atexit
    import runpy

    env: dict[str, str] = req["env"]
    _set_environ(env)
    if env.get("PYTHONUNBUFFERED"):
        with contextlib.suppress(Exception):
            sys.stdout.reconfigure(write_through=True)  # type: ignore[union-attr]
            sys.stderr.reconfigure(write_through=True)  # type: ignore[union-attr]
    try:
        if req.get("mkcwd"):
            if ready is not None:
                ready.take_dir(req["cwd"])
            else:
                make_dir(req["cwd"])
        os.chdir(req["cwd"])
    except OSError as exc:
        print(f"cannot change to working directory {req['cwd']!r}: {exc}", file=sys.stderr)
        return 126
    argv: list[str] = req["argv"][1:]
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if "numpy" in sys.modules:
        with contextlib.suppress(Exception):
            sys.modules["numpy"].random.seed()
    code = 0
    try:
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            sys.path[:0] = [os.getcwd(), *extra]
            if argv[1] in mains:
                _run_main(*mains[argv[1]])
            else:
                import warnings

                # A preloaded module run as __main__ runs afresh, as `python -m` would;
                # runpy's warning that it was imported already is about the zygote, not
                # the container.
                warnings.filterwarnings(
                    "ignore", message=".*found in sys.modules", category=RuntimeWarning
                )
                _fresh_main()
                runpy._run_module_as_main(argv[1])  # type: ignore[attr-defined]  # python -m
        elif argv[0] == "-c":
            sys.argv = ["-c", *argv[2:]]
            sys.path[:0] = ["", *extra]
            import importlib.machinery

            namespace = _fresh_main(__loader__=importlib.machinery.BuiltinImporter)
            exec(compile(argv[1], "<string>", "exec"), namespace)
        else:
            sys.argv = list(argv)
            sys.path[:0] = [os.path.dirname(os.path.abspath(argv[0])), *extra]
            _run_script(argv[0])
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        code = 130
    except BaseException as exc:
        import traceback

        # As python prints it: from the program's first frame, not from this module's.
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb)
        code = 1
    _join_threads()
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    return code


def _join_threads() -> None:
    """What the interpreter does first when a program ends: wait for the threads it started
    that are not daemons (and run the hooks of ``threading._register_atexit``, such as
    concurrent.futures' waiting for submitted work). The child's os._exit would otherwise
    cut them off."""
    threading = sys.modules.get("threading")
    if threading is None:
        return  # never imported: no thread was started through it, and no hook registered
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None:
        return
    if not getattr(threading, "_threading_atexits", True) and not getattr(
        threading, "_shutdown_locks", True
    ):
        # No hook registered and no non-daemon thread started (each has a shutdown lock):
        # nothing to wait for, and the process ends at once (os._exit). The walk through
        # threading's state copied ~15 of the zygote's pages.
        return
    try:
        shutdown()
    except KeyboardInterrupt:
        pass  # Ctrl-C while waiting ends the wait, as in python
    except BaseException:
        import traceback

        traceback.print_exc()


def _set_environ(env: dict[str, str]) -> None:
    """Make ``os.environ`` exactly ``env``, changing only what differs from the zygote's
    (clearing and refilling it touches, and so copies, many of the zygote's pages)."""
    current = os.environ
    zone = current.get("TZ")
    for key in [k for k in current if k not in env]:
        del current[key]
    for key, value in env.items():
        if current.get(key) != value:
            current[key] = value
    if current.get("TZ") != zone:
        time.tzset()  # python reads TZ as `time` is imported: the zygote's, until told
    sys.dont_write_bytecode = bool(current.get("PYTHONDONTWRITEBYTECODE"))


def _fresh_main(**attrs: Any) -> dict[str, Any]:
    """Install a new ``__main__`` module for the program (not the zygote's) and return its
    namespace. As in python, it stays for as long as the process runs: what the program
    defines pickles by reference to it (multiprocessing, pickle), also while its threads
    finish and its atexit handlers run."""
    import builtins
    import types

    main = types.ModuleType("__main__")
    main.__dict__.update(__builtins__=builtins, **attrs)
    sys.modules["__main__"] = main
    return main.__dict__


def _run_script(path: str) -> None:
    """``python PATH``: a source (or compiled) file runs in a fresh ``__main__``; a folder or
    a zip archive with a ``__main__.py`` the way runpy runs it."""
    import pkgutil
    import runpy

    if pkgutil.get_importer(path) is not None:
        runpy.run_path(path, run_name="__main__")
        return
    import importlib.machinery
    import importlib.util
    import io
    import marshal

    with io.open_code(path) as fh:
        data = fh.read()
    if data[:4] == importlib.util.MAGIC_NUMBER:
        code = marshal.loads(data[16:])
        loader: Any = importlib.machinery.SourcelessFileLoader("__main__", path)
    else:
        code = compile(data, path, "exec")
        loader = importlib.machinery.SourceFileLoader("__main__", path)
    exec(code, _fresh_main(__file__=path, __cached__=None, __loader__=loader))


def _run_main(spec: Any, code: Any) -> None:
    """What ``python -m NAME`` does, with the code compiled once in the zygote (so a child
    does not read and compile the module again: with no bytecode cache that is
    milliseconds per container)."""
    namespace = _fresh_main(
        __file__=spec.origin,
        __cached__=spec.cached,
        __loader__=spec.loader,
        __package__=spec.parent,
        __spec__=spec,
    )
    sys.argv[0] = spec.origin
    exec(code, namespace)


def _main_code(modules: list[str]) -> _Mains:
    """(spec, code) of each preloaded plain module (not package), to run it as ``-m``."""
    mains: _Mains = {}
    for name in modules:
        spec = getattr(sys.modules.get(name), "__spec__", None)
        if spec is None or spec.submodule_search_locations is not None or not spec.origin:
            continue
        with contextlib.suppress(Exception):
            code = spec.loader.get_code(name)
            if code is not None:
                mains[name] = (spec, code)
    return mains


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _warm_up() -> None:
    """One-time initialisations that a preloaded library would otherwise do lazily in every
    container, once the zygote imported it. scikit-learn: its first input validation looks
    for dataframe plugins through every installed distribution's entry points (narwhals),
    5 ms of each forked trial that fits a model."""
    if "sklearn" in sys.modules:
        with contextlib.suppress(Exception):
            import numpy as np
            from sklearn.utils import check_array

            check_array(np.zeros((2, 2)))


def zygote_main(listen_fd: int, ready: str, modules: list[str]) -> None:
    import gc
    import importlib
    import selectors
    import signal

    global _ROOTS, _READY
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _READY = ready  # made (or "") by the control plane: see _Ready.folder
    # What every container runs (see _run): imported here once, not in each of them.
    import atexit  # noqa: F401
    import runpy  # noqa: F401

    for mod in modules:
        importlib.import_module(mod)
    _ROOTS = tuple(os.path.join(os.path.abspath(p), "") for p in sys.path if p and os.path.isabs(p))
    _warm_up()
    mains = _main_code(modules)
    # Everything imported so far lives as long as the zygote: keep it out of the children's
    # garbage collections (a collection touching it would copy its pages into the child).
    gc.freeze()
    listener = socket.socket(fileno=listen_fd)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "parent")
    server = _Server(sel, mains)
    accepting = True
    while accepting or server.boxes:
        events = sel.select(server.timeout())
        if events:
            server.stock.busy()
        for key, _ in events:
            if key.data == "accept":
                conn, _ = listener.accept()
                server.serve(conn)
            elif key.data == "parent":
                if not os.read(sys.stdin.fileno(), 4096):
                    sel.unregister(key.fd)
                    sel.unregister(listener)
                    listener.close()
                    server.close_spare()
                    server.hang_up_all()
                    accepting = False
            else:
                what, box = key.data
                if what == "report":
                    server.reported(box)
                elif what == "conn":
                    server.runtime_said(box)
                else:
                    server.reap(box)
        if accepting:
            server.replenish(due_only=True)
            if not events and not server.stopping:
                server.stock.make_one()
    if _READY:
        import shutil  # forks no more

        shutil.rmtree(_READY, ignore_errors=True)


class _Box:
    """A container the zygote forked, from its request until it is reaped and the runtime
    has let go of its connection."""

    __slots__ = ("code", "conn", "exit_path", "orphan", "pid", "pidfd", "ready", "reaped", "report")

    def __init__(
        self,
        pid: int,
        pidfd: int,
        conn: socket.socket,
        exit_path: str,
        report: socket.socket,
        ready: str | None,
    ) -> None:
        self.pid, self.pidfd, self.exit_path = pid, pidfd, exit_path
        self.ready = ready  # the base of its set of ready entries, if it had one (_Ready)
        self.conn: socket.socket | None = conn  # None once the runtime let go or hung up
        self.report: socket.socket | None = report  # None once the child reported or closed
        self.code: int | None = None  # known once the child reported it or was reaped
        self.orphan = False  # the runtime hung up without its code recorded
        self.reaped = False


class _Server:
    """The zygote's children, and the spare: a child forked ahead of the next request and
    waiting for it, so that a request does not wait for a fork."""

    def __init__(self, sel: Any, mains: _Mains) -> None:
        self.sel = sel
        self.mains = mains
        self.boxes: set[_Box] = set()  # until reaped and let go of by the runtime
        self.stock = _Stock()
        self.spare: _Spare | None = _Spare.fork(mains, None)
        # When to fork the next spare if no child ended before (see replenish).
        self.spare_due: float | None = None
        self.stopping = False
        self.tried: set[str] = set()  # module names children reported, imported or not

    def serve(self, conn: socket.socket) -> None:
        try:
            head = _read_exact(conn.fileno(), 8)
            rest = _read_exact(conn.fileno(), sum(struct.unpack(">II", head))) if head else None
            if head is None or rest is None:
                conn.close()
                return
            request = head + rest
            exit_path, body = _unframe(request)
            spare, self.spare = self.spare, None
            ready = None
            if spare is not None and spare.hand(request, conn):
                pid, report, ready = spare.pid, spare.sock, spare.ready
            else:
                report, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                sys.stdout.flush()
                sys.stderr.flush()
                _loaded()
                pid = os.fork()
                if pid == 0:
                    report.close()
                    _child(conn, exit_path, body, self.mains, theirs)
                theirs.close()
        except Exception:
            _log().exception("warm zygote: request failed")
            conn.close()
            return
        box = _Box(pid, os.pidfd_open(pid), conn, exit_path, report, ready)
        self.boxes.add(box)
        self.sel.register(box.pidfd, 1, ("child", box))
        report.setblocking(False)
        self.sel.register(report, 1, ("report", box))
        try:
            conn.sendall(struct.pack(">qq", pid, _start_ticks(pid)))
        except OSError:
            self.hang_up(box)
        else:
            self.sel.register(conn, 1, ("conn", box))
        if self.spare is None and self.spare_due is None:
            self.spare_due = time.monotonic() + SPARE_DELAY

    def timeout(self) -> float | None:
        """How long the zygote may wait for news: until the next spare or entry is due."""
        due = None if self.stopping else self.stock.due()
        if self.spare_due is not None:
            spare = max(0.0, self.spare_due - time.monotonic())
            due = spare if due is None else min(due, spare)
        return due

    def replenish(self, *, due_only: bool = False) -> None:
        """Fork the next spare, off the next request's path, but not while the container
        just handed one runs: a fork of the zygote takes 1-5 ms of a core, and a short
        container (a pipeline step) ran 2-3 times longer beside it on two cores. So the
        spare comes when a container ends, or SPARE_DELAY after the last hand-over."""
        if self.spare is not None or self.spare_due is None or self.stopping:
            return
        if due_only and time.monotonic() < self.spare_due:
            return
        self.spare_due = None
        self.spare = _Spare.fork(self.mains, self.stock.take())

    def reported(self, box: _Box) -> None:
        """The child sent its exit code (or closed its end without): pass the code on to the
        runtime now, before the child is reaped."""
        sock = box.report
        if sock is None:
            return  # reaped already, in the same round of events
        try:
            data = sock.recv(4 + _LEARN_CAP)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        self.sel.unregister(sock)
        sock.close()
        box.report = None
        if len(data) >= 4:
            self.tell(box, struct.unpack(">i", data[:4])[0])
            # The runtime's thread, just woken, waits on this core (as the zygote did on the
            # child's): let it run before the spare is forked (~1 ms).
            os.sched_yield()
            if len(data) > 4:
                self.learn(data[4:])
        self.replenish()

    def tell(self, box: _Box, code: int) -> None:
        """The container's exit code is known: send it to the runtime, which keeps the
        connection until it has recorded it; to the exit file if the runtime is gone."""
        box.code = code
        if box.conn is not None:
            try:
                box.conn.sendall(struct.pack(">i", code))
            except OSError:
                self.hang_up(box)
        elif box.orphan:
            _write_exit(box.exit_path, code)

    def runtime_said(self, box: _Box) -> None:
        """The runtime wrote on a container's connection: FORGET (its code is recorded or the
        Pod forgotten), or it hung up (the control plane is gone)."""
        conn = box.conn
        if conn is None:
            return
        try:
            data = conn.recv(16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data.startswith(FORGET):
            self.hang_up(box)
            return
        self.sel.unregister(conn)
        conn.close()
        box.conn = None
        self._done(box)

    def hang_up(self, box: _Box) -> None:
        """The runtime is gone before it recorded the container's code: the code goes to the
        exit file, now if known, else when the child ends."""
        if box.conn is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(box.conn)
            box.conn.close()
            box.conn = None
        box.orphan = True
        if box.code is not None:
            _write_exit(box.exit_path, box.code)
        self._done(box)

    def hang_up_all(self) -> None:
        for box in list(self.boxes):
            if box.conn is not None:
                self.hang_up(box)

    def _done(self, box: _Box) -> None:
        if box.reaped and box.conn is None:
            self.boxes.discard(box)

    def learn(self, data: bytes) -> None:
        """Import what a child imported that the zygote did not, so the next containers
        find it loaded; then replace the spare, forked before. Each name is tried once; only
        standard modules and submodules of packages the zygote holds are taken (a new
        third-party package, maybe heavy, is the Pod's to name in its annotation)."""
        import importlib
        import warnings

        added = False
        for name in data.decode("utf-8", "replace").split("\n"):
            if name.startswith("-m:"):
                added = self.learn_main(name[3:]) or added
                continue
            if not name or name in self.tried or name in sys.modules:
                continue
            self.tried.add(name)
            top = name.partition(".")[0]
            if top in _NEVER_LEARN or (
                top not in sys.stdlib_module_names and top not in sys.modules
            ):
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    importlib.import_module(name)
            except BaseException:  # whatever it raised: it is just not preloaded
                _log().debug("warm zygote: cannot preload %s", name, exc_info=True)
                continue
            added = True
        if not added:
            return
        import gc

        gc.freeze()
        if self.spare is not None:
            self.spare.close()
            self.spare = None
        if not self.stopping:
            self.spare, self.spare_due = _Spare.fork(self.mains, self.stock.take()), None

    def reap(self, box: _Box) -> None:
        self.sel.unregister(box.pidfd)
        os.close(box.pidfd)
        if box.report is not None:
            self.sel.unregister(box.report)
            box.report.close()
            box.report = None
        _, status = os.waitpid(box.pid, 0)
        box.reaped = True
        if box.ready is not None:
            _Ready.remove(box.ready)
        if box.code is None:  # it did not report (killed, or it closed its socket)
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code
            if box.conn is not None:
                # One that closed its socket wrote its exit file: the runtime is told here.
                with contextlib.suppress(OSError):
                    os.unlink(box.exit_path)
            self.tell(box, code)
        self._done(box)
        self.replenish()

    def learn_main(self, name: str) -> bool:
        """Compile (not run) a module children run with ``-m``, once, so the next ones run
        it from that code (``runpy`` finding, reading and unmarshalling it took 1.4 ms of a
        2 ms ``-m shipyard.tuning.function_trial``). Only a submodule of a package the zygote
        holds: the child would find it in the same place, whatever its working directory."""
        key = f"-m:{name}"
        if key in self.tried or name in self.mains or name.partition(".")[0] not in sys.modules:
            return False
        self.tried.add(key)
        import importlib.util

        try:
            spec = importlib.util.find_spec(name)
            if spec is None or spec.submodule_search_locations is not None or not spec.origin:
                return False
            get_code = getattr(spec.loader, "get_code", None)
            code = get_code(name) if get_code is not None else None
        except Exception:
            _log().debug("warm zygote: cannot compile %s", name, exc_info=True)
            return False
        if code is None:
            return False
        self.mains[name] = (spec, code)
        return True

    def close_spare(self) -> None:
        """No more requests: drop the spare and fork none again."""
        self.stopping = True
        self.spare_due = None
        if self.spare is not None:
            self.spare.close()
            self.spare = None


class _Spare:
    """A forked child that waits, on its end of a socket pair, for a request and the
    connection to answer on (passed as a file descriptor), then becomes that container."""

    def __init__(self, pid: int, sock: socket.socket, ready: str | None) -> None:
        self.pid = pid
        self.sock = sock
        self.ready = ready  # the base of its set of ready entries, if any (see _Ready)

    @classmethod
    def fork(cls, mains: _Mains, stocked: str | None) -> _Spare | None:
        """Fork a spare, with the set of ready entries ``stocked`` if the stock had one."""
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            sys.stdout.flush()
            sys.stderr.flush()
            _loaded()
            pid = os.fork()
        except OSError:
            _log().exception("warm zygote: cannot fork a spare")
            if stocked is not None:
                _Ready.remove(stocked)
            return None
        if pid == 0:
            _spare_main(theirs, mains, stocked)
        theirs.close()
        ready = stocked if stocked is not None else _spare_base(pid) if _READY else None
        return cls(pid, ours, ready)

    def hand(self, request: bytes, conn: socket.socket) -> bool:
        """Give the spare its request; False (and the spare is gone) if it could not take it."""
        try:
            socket.send_fds(self.sock, [request], [conn.fileno()])
        except OSError:
            self.close()
            return False
        return True  # the socket pair stays open: the child reports its exit code on it

    def close(self) -> None:
        self.sock.close()  # the spare reads EOF and exits
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        if self.ready is not None:
            _Ready.remove(self.ready)


def _spare_main(sock: socket.socket, mains: _Mains, stocked: str | None) -> None:
    """In a spare: hold nothing of the zygote's (its listener, other containers'
    connections), wait for a request, become its container; never return. ``stocked``: the
    set of ready entries the zygote made for it, if any."""
    keep = sock.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, 65536)
    ready = None
    try:
        before = _prepare()
        ready = _Ready.make(sock, stocked)
        request, fds, _, _ = socket.recv_fds(sock, 1 << 20, 1)
    except BaseException:
        request, fds = b"", []
    if not request or not fds:
        os._exit(0)  # the zygote is stopping (or gone)
    exit_path, body = _unframe(request)
    _child(socket.socket(fileno=fds[0]), exit_path, body, mains, sock, before, ready)
