"""The local runtime's start journal: which process each container became, as it starts.

A container's process (``local://PID/STARTTICKS``) reaches the store with the Pod's next
status write, which the runtime defers by a few milliseconds (a short Pod is told once, with
its end). A control plane killed in between would find no process in the store, think the
container never started, and start it a second time beside the first. So every start is also
appended here first, one line ``UID CONTAINER PID TICKS RESTARTS STARTED_AT`` (a write to an
open file: no file-system lookup, and the kernel keeps it when the process is killed). The
next control plane reads it once and adopts from it what the store does not know yet, as the
kubelet asks the container runtime which containers a Pod already has.

On load only what can matter is kept (a process still alive, or one whose exit code waits in
its exit file); the file is rewritten with that, and again, every ``COMPACT_EVERY`` starts,
with the containers the runtime still tracks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

COMPACT_EVERY = 10_000  # starts appended between two rewrites of the journal


class Start(NamedTuple):
    pid: int
    ticks: int
    restarts: int
    started_at: str


Entry = tuple[str, str, Start]  # (pod uid, container name, start)


def _parse(text: str) -> dict[tuple[str, str], Start]:
    out: dict[tuple[str, str], Start] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 6:
            continue  # a line cut short by a crash mid-write, or not ours
        uid, name, pid, ticks, restarts, started_at = parts
        with contextlib.suppress(ValueError):
            out[(uid, name)] = Start(int(pid), int(ticks), int(restarts), started_at)
    return out


def _line(uid: str, name: str, s: Start) -> str:
    return f"{uid} {name} {s.pid} {s.ticks} {s.restarts} {s.started_at}\n"


class StartJournal:
    def __init__(self, path: Path, keep: Callable[[str, str, Start], bool]) -> None:
        """Load the journal at ``path``, keeping the entries ``keep`` says can matter, and
        open it to append to."""
        self.path = path
        try:
            loaded = _parse(path.read_text())
        except (OSError, UnicodeDecodeError):
            loaded = {}
        self._found: dict[str, dict[str, Start]] = {}
        for (uid, name), start in loaded.items():
            if keep(uid, name, start):
                self._found.setdefault(uid, {})[name] = start
        self._rewrite((uid, name, s) for uid, c in self._found.items() for name, s in c.items())
        self._appended = 0

    def found(self, uid: str) -> dict[str, Start]:
        """What the journal knew at load of a Pod's containers: name -> its last start."""
        return self._found.get(uid, {})

    def record(self, uid: str, name: str, start: Start) -> bool:
        """Append a start; True when the journal is due a rewrite (see :meth:`compact`)."""
        with contextlib.suppress(OSError):
            os.write(self._fd, _line(uid, name, start).encode())
        self._appended += 1
        return self._appended >= COMPACT_EVERY

    def compact(self, live: Iterable[Entry]) -> None:
        """Rewrite the journal with just ``live``: the containers still tracked (the others'
        ends are recorded in the store)."""
        os.close(self._fd)
        self._found.clear()
        self._rewrite(live)
        self._appended = 0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def _rewrite(self, entries: Iterable[Entry]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as fh:
            fh.writelines(_line(uid, name, s) for uid, name, s in entries)
        os.replace(tmp, self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
