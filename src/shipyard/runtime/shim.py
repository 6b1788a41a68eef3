"""The process shim: the parent of the local runtime's containers, in its own process.

The control plane asks it to start a container; the shim makes its folders and starts it
(vfork + exec, in its own session, output appended to the container's log), and when it
ends kills what is left of its process group and tells the control plane the exit code. It
keeps that code until the control plane says it has recorded it (``forget``); if the
control plane goes away first, the shim writes every code it still holds, and every later
one, to the container's exit file. Because the shim is the parent and lives in its own
session, a control plane killed with SIGKILL loses nothing: the shim keeps reaping and
recording exit codes until its last container has ended, and the restarted control plane
re-adopts the live processes and reads the codes of those that ended meanwhile (as
containerd's shim does for the kubelet). While the control plane is there, a container
costs no exit file: creating and removing one cost ~0.1-1 ms of file-system work a Pod.

One shim per control plane, started with it; it exits once the control plane has gone and
no container is left. The wire format is a 4-byte length and a ``marshal`` payload over a
socketpair. This module imports only the standard library: ``python -m
shipyard.runtime.shim FD`` starts in about 20 ms.
"""

from __future__ import annotations

import contextlib
import errno
import marshal
import os
import selectors
import signal
import socket
import struct
import sys
from typing import Any

_LEN = struct.Struct("!I")


def proc_start_ticks(pid: int) -> int | None:
    """Start time of a live (non-zombie) process in clock ticks since boot, else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def write_exit_file(path: str, code: int) -> None:
    """Whole or not at all: a reader never sees a half-written code. (Only after the
    control plane has gone, so not on any Pod's path.)"""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(f"{code}\n")
    os.replace(tmp, path)


class _Wire:
    """Length-prefixed marshal messages over a stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()

    def send(self, msg: tuple[Any, ...]) -> None:
        data = marshal.dumps(msg)
        self.sock.sendall(_LEN.pack(len(data)) + data)

    def feed(self) -> bool:
        """Read what is there (the socket must be readable). False at end of stream."""
        try:
            data = self.sock.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not data:
            return False
        self._buf += data
        return True

    def add(self, data: bytes) -> None:
        self._buf += data

    def messages(self) -> list[tuple[Any, ...]]:
        out = []
        while len(self._buf) >= 4:
            (n,) = _LEN.unpack_from(self._buf)
            if len(self._buf) < 4 + n:
                break
            out.append(marshal.loads(bytes(self._buf[4 : 4 + n])))
            del self._buf[: 4 + n]
        return out


# -- the shim process -----------------------------------------------------------------------


_found: dict[tuple[str, str], str] = {}  # (command, PATH) -> its executable


def which(cmd: str, path: str | None) -> str | None:
    """``shutil.which(cmd, path=path)``, remembered: it stats every PATH entry (91 system
    calls a Pod here), while a remembered hit is checked with one access(). Used by the
    shim to start a container and by the local runtime to refuse a missing command."""
    key = (cmd, path or "")
    hit = _found.get(key)
    if hit is not None and os.access(hit, os.X_OK):
        return hit
    import shutil  # not at the top: the warm pool's zygote imports this module (warm.py)

    found = shutil.which(cmd, path=path)
    if found is None:
        _found.pop(key, None)
        return None
    if len(_found) > 256:
        _found.clear()
    _found[key] = found
    return found


def make_dir(path: str) -> None:
    """``mkdir -p`` for a container's own folder, which is usually new in a folder that
    exists: one mkdir call (os.makedirs also stats the parent, and a folder that exists
    already costs it a failed mkdir and a stat)."""
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)


def open_log(path: str) -> int:
    """Open a container's log to append to, making its folder if missing (rarely: logs of
    one namespace share a folder)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, flags, 0o644)


# Signals the shim (as any Python) ignores, which a container must not inherit ignored.
_DEFAULT_SIGNALS = {signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ}


def _spawn(req: tuple[Any, ...], home: int) -> int:
    """Start a container; its pid. posix_spawn (vfork + exec) costs the shim ~60 us of
    CPU, subprocess.Popen ~150. The shim is single-threaded, so the container's working
    directory is set by moving there for the spawn and back (``home``) after."""
    _, _, argv, env, cwd, log_path, _exit_path = req
    make_dir(cwd)  # the Pod's own folder, unless it named a workingDir
    # A path with a folder is the container's to resolve, from its working directory.
    exe = argv[0] if "/" in argv[0] else which(argv[0], env.get("PATH", os.defpath))
    if exe is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv[0])
    fd = open_log(log_path)
    try:
        os.chdir(cwd)
        return os.posix_spawn(
            exe,
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, fd, 1),
                (os.POSIX_SPAWN_DUP2, fd, 2),
            ],
            setsid=True,
            setsigdef=_DEFAULT_SIGNALS,
        )
    finally:
        os.fchdir(home)
        os.close(fd)


def serve(fd: int) -> None:
    """The shim's loop: spawn on request, reap, record, report; until nothing is left.

    It never blocks on the control plane: answers wait in a buffer until the socket takes
    them, so it always keeps reading requests (and the control plane's sends always end)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.set_inheritable(fd, False)  # containers must not hold the control plane's socket
    home = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    wire = _Wire(sock)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, None)
    children: dict[int, tuple[int, str]] = {}  # pidfd -> (pid, exit file)
    held: dict[str, int] = {}  # exit file -> code: told, not yet recorded by the control plane
    out = bytearray()
    connected = True

    def tell(msg: tuple[Any, ...]) -> None:
        if connected:
            data = marshal.dumps(msg)
            out.extend(_LEN.pack(len(data)) + data)

    def hang_up() -> None:
        """The control plane is gone: what it was told may not have been recorded."""
        nonlocal connected
        connected = False
        out.clear()
        for path, code in held.items():
            with contextlib.suppress(OSError):
                write_exit_file(path, code)
        held.clear()

    while connected or children:
        for key, events in sel.select():
            if key.data is None:
                if events & selectors.EVENT_READ:
                    if not wire.feed():
                        hang_up()
                    for req in wire.messages():
                        if req[0] == "forget":  # recorded: the code need not be kept
                            held.pop(req[1], None)
                            continue
                        rid = req[1]
                        try:
                            pid = _spawn(req, home)
                        except OSError as exc:
                            tell(("error", rid, str(exc)))
                            continue
                        pidfd = os.pidfd_open(pid)
                        children[pidfd] = (pid, req[6])
                        sel.register(pidfd, selectors.EVENT_READ, pid)
                        tell(("started", rid, pid, proc_start_ticks(pid) or 0))
                continue
            pidfd = int(key.fd)
            pid, exit_path = children.pop(pidfd)
            sel.unregister(pidfd)
            os.close(pidfd)
            # The container ended: nothing it left in its group outlives it. The leader is
            # not reaped yet, so the group id cannot have been reused.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            rc = os.waitstatus_to_exitcode(status)
            sig = -rc if rc < 0 else None
            code = 128 + sig if sig else rc
            if connected:
                held[exit_path] = code
                tell(("exited", pid, code, sig))
            else:
                with contextlib.suppress(OSError):
                    write_exit_file(exit_path, code)
        if connected and out:
            try:
                del out[: sock.send(out)]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                hang_up()
        if not connected:
            with contextlib.suppress(KeyError, ValueError):
                sel.unregister(sock)
        else:
            want = selectors.EVENT_READ | (selectors.EVENT_WRITE if out else 0)
            sel.modify(sock, want, None)
    sock.close()


# -- the control plane's side -----------------------------------------------------------------


class ShimError(Exception):
    """The container could not be started (the message says why) or the shim is gone."""


class Shim:
    """The control plane's handle on its shim. ``start`` asks for a container and returns
    at once; the answers (started, error) and the exits come from ``events()`` when
    ``fileno()`` is readable, so no caller waits for a process to start."""

    def __init__(self, log_path: str | os.PathLike[str] | None = None) -> None:
        # Imported here: the warm pool's zygote imports this module (see runtime/warm.py).
        import subprocess
        import threading

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        err = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shipyard.runtime.shim", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        finally:
            theirs.close()
            if log_path:
                err.close()  # type: ignore[union-attr]
        self.sock = ours
        self._wire = _Wire(ours)
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self._rid = 0
        self.alive = True

    def fileno(self) -> int:
        return self.sock.fileno()

    def start(
        self, argv: list[str], env: dict[str, str], cwd: str, log_path: str, exit_path: str
    ) -> int:
        """Ask for a container; returns the request's id, which its answer carries:
        ``("started", id, pid, start_ticks)`` or ``("error", id, why)``."""
        with self._send_lock:
            if not self.alive:
                raise ShimError("the process shim has exited")
            self._rid += 1
            try:
                self._wire.send(("spawn", self._rid, argv, env, cwd, log_path, exit_path))
            except OSError as exc:
                self.alive = False
                raise ShimError(f"the process shim has exited ({exc})") from exc
            return self._rid

    def forget(self, exit_path: str) -> bool:
        """The exit code of the container with this exit file is recorded: the shim need not
        keep it for a restarted control plane. False if the shim is gone (it has written
        the code to the exit file then)."""
        with self._send_lock:
            if not self.alive:
                return False
            try:
                self._wire.send(("forget", exit_path))
            except OSError:
                self.alive = False
                return False
            return True

    def events(self) -> list[tuple[Any, ...]]:
        """What the shim said since last time, in order: ``started``/``error`` answers and
        ``("exited", pid, code, signal)``. Never blocks; sets ``alive`` False at its end."""
        with self._recv_lock:
            while self.alive:
                try:
                    data = self.sock.recv(1 << 20, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    data = b""
                if not data:
                    self.alive = False
                    break
                self._wire.add(data)
            return self._wire.messages()

    def close(self) -> None:
        """Hang up: the shim exits once its containers have ended."""
        self.alive = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
