"""Admission of Pods onto the node: capacity, GPUs and gang (all-or-nothing) groups.

This machine is one node. Its capacity is detected (cores, memory, GPUs from ``nvidia-smi``)
or set in config. A Pod is admitted when its requests fit what admitted, unfinished Pods
leave free; otherwise it stays Pending with a reason. The allocation table is a cache of the
store (rebuilt from the Pods marked scheduled at start), never state of its own.

Gang groups: Pods labelled ``shipyard.dev/gang=NAME`` with annotation
``shipyard.dev/gang-size=N`` are admitted together once all N exist and fit, or not at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shipyard.core import quantity

GANG_LABEL = "shipyard.dev/gang"
GANG_SIZE = "shipyard.dev/gang-size"
RESOURCES = ("cpu", "memory", quantity.GPU, "pods")

Obj = dict[str, Any]


@dataclass(frozen=True)
class Capacity:
    cpu: float
    memory: float
    gpus: tuple[str, ...] = ()
    pods: int = 110

    def of(self, resource: str) -> float:
        if resource == "cpu":
            return self.cpu
        if resource == "memory":
            return self.memory
        if resource == quantity.GPU:
            return float(len(self.gpus))
        return float(self.pods)


def detect_gpus() -> tuple[str, ...]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return ()
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(line.strip() for line in out.splitlines() if line.strip())


def detect_capacity(
    cpu: float | None = None,
    memory: float | None = None,
    gpus: int | None = None,
    pods: int = 110,
) -> Capacity:
    """This machine's capacity; any given figure overrides detection. ``gpus=N`` names
    N devices ``0..N-1`` (for machines where nvidia-smi cannot tell)."""
    detected_cpu = float(len(os.sched_getaffinity(0)))
    detected_mem = float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    gpu_ids = tuple(str(i) for i in range(gpus)) if gpus is not None else detect_gpus()
    return Capacity(
        cpu=cpu if cpu is not None else detected_cpu,
        memory=memory if memory is not None else detected_mem,
        gpus=gpu_ids,
        pods=pods,
    )


@dataclass
class Decision:
    admitted: bool
    reason: str = ""
    message: str = ""
    gpus: tuple[str, ...] = ()
    # Other gang members admitted together with this Pod: (namespace, name).
    also_admitted: list[tuple[str, str]] = field(default_factory=list)


def _requests(pod: Obj) -> dict[str, float]:
    req = quantity.pod_requests(pod)
    req["pods"] = 1.0
    return req


class Scheduler:
    def __init__(self, capacity: Capacity) -> None:
        self.capacity = capacity
        self._lock = threading.RLock()
        self._alloc: dict[str, tuple[dict[str, float], tuple[str, ...]]] = {}
        self._pending: OrderedDict[str, tuple[str, str, dict[str, float]]] = OrderedDict()
        # Pending Pods woken by a release and not yet back at admit(): their requests are set
        # aside so the next release wakes others, not the same ones again.
        self._woken: dict[str, dict[str, float]] = {}
        self._used = dict.fromkeys(RESOURCES, 0.0)  # sum of the requests in _alloc
        self.wake: Callable[[str, str], None] = lambda ns, name: None

    # -- accounting ---------------------------------------------------------------------------

    def used(self) -> dict[str, float]:
        with self._lock:
            return dict(self._used)

    def _take(self, uid: str, req: dict[str, float], gpus: tuple[str, ...]) -> None:
        old = self._alloc.get(uid)
        if old is not None:
            self._give_back(old[0])
        self._alloc[uid] = (req, gpus)
        for r in RESOURCES:
            self._used[r] += req.get(r, 0.0)

    def _give_back(self, req: dict[str, float]) -> None:
        for r in RESOURCES:
            self._used[r] -= req.get(r, 0.0)

    def _free_gpus(self) -> list[str]:
        taken = {g for _, gpus in self._alloc.values() for g in gpus}
        return [g for g in self.capacity.gpus if g not in taken]

    def is_admitted(self, uid: str) -> bool:
        return uid in self._alloc

    def assigned_gpus(self, uid: str) -> tuple[str, ...]:
        entry = self._alloc.get(uid)
        return entry[1] if entry else ()

    def restore(self, pod: Obj) -> None:
        """Count a Pod admitted by an earlier control plane (from its stored status)."""
        uid = pod["metadata"]["uid"]
        with self._lock:
            gpus = tuple((pod.get("status") or {}).get("assignedGPUs") or ())
            self._take(uid, _requests(pod), gpus)
            self._pending.pop(uid, None)
            self._woken.pop(uid, None)

    # -- admission ----------------------------------------------------------------------------

    def _fits(self, req: dict[str, float], used: dict[str, float]) -> bool:
        """_misfit() without the message, for the release path's scan of Pending Pods."""
        cap = self.capacity
        for r, want in req.items():
            if want > 0 and used.get(r, 0.0) + want > cap.of(r) + 1e-9:
                return False
        return True

    def _misfit(self, req: dict[str, float], used: dict[str, float]) -> str | None:
        for r in RESOURCES:
            want = req.get(r, 0.0)
            if want <= 0:
                continue
            cap = self.capacity.of(r)
            if want > cap:
                return (
                    f"insufficient {r}: requested {quantity.fmt(r, want)}, "
                    f"capacity {quantity.fmt(r, cap)}"
                )
            if used[r] + want > cap + 1e-9:
                return (
                    f"insufficient {r}: requested {quantity.fmt(r, want)}, "
                    f"free {quantity.fmt(r, max(0.0, cap - used[r]))}"
                )
        return None

    def admit(self, pod: Obj, gang: list[Obj] | None = None) -> Decision:
        """Admit ``pod`` (and, for a gang, every member in ``gang``) or say why not."""
        uid = pod["metadata"]["uid"]
        with self._lock:
            self._woken.pop(uid, None)
            if uid in self._alloc:
                return Decision(True, gpus=self._alloc[uid][1])
            members = [m for m in gang or [pod] if m["metadata"]["uid"] not in self._alloc]
            if all(m["metadata"]["uid"] != uid for m in members):
                members.append(pod)
            reqs = [_requests(m) for m in members]
            total: dict[str, float] = {}
            for req in reqs:
                for k, v in req.items():
                    total[k] = total.get(k, 0.0) + v
            misfit = self._misfit(total, self._used)
            if misfit:
                ns, name = pod["metadata"].get("namespace", ""), pod["metadata"]["name"]
                self._pending.setdefault(uid, (ns, name, _requests(pod)))
                prefix = f"gang of {len(members)} pods: " if gang else ""
                return Decision(False, "Unschedulable", prefix + misfit)
            free_gpus = self._free_gpus()
            mine: tuple[str, ...] = ()
            also: list[tuple[str, str]] = []
            for m, req in zip(members, reqs, strict=True):
                n = int(req.get(quantity.GPU, 0))
                gpus, free_gpus = tuple(free_gpus[:n]), free_gpus[n:]
                muid = m["metadata"]["uid"]
                self._take(muid, req, gpus)
                self._pending.pop(muid, None)
                self._woken.pop(muid, None)
                if muid == uid:
                    mine = gpus
                else:
                    also.append((m["metadata"].get("namespace", ""), m["metadata"]["name"]))
            return Decision(True, gpus=mine, also_admitted=also)

    def wait_for_gang(self, pod: Obj, have: int, want: int) -> Decision:
        uid = pod["metadata"]["uid"]
        with self._lock:
            self._pending.pop(uid, None)
            self._woken.pop(uid, None)
        return Decision(
            False, "WaitingForGang", f"gang waiting for its pods: {have} of {want} exist"
        )

    def release(self, uid: str) -> None:
        """Free a finished or deleted Pod's share and wake Pending Pods that may now fit."""
        with self._lock:
            self._pending.pop(uid, None)
            self._woken.pop(uid, None)
            entry = self._alloc.pop(uid, None)
            if entry is None:
                return
            self._give_back(entry[0])
            used = dict(self._used)
            for req in self._woken.values():
                for k, v in req.items():
                    used[k] = used.get(k, 0.0) + v
            to_wake: list[tuple[str, str]] = []
            slots = self.capacity.pods
            for puid, (ns, name, req) in self._pending.items():
                if used["pods"] + 1 > slots:
                    break  # every Pod takes a slot: none of the rest can fit either
                if puid not in self._woken and self._fits(req, used):
                    to_wake.append((ns, name))
                    self._woken[puid] = req
                    for k, v in req.items():
                        used[k] = used.get(k, 0.0) + v
        for ns, name in to_wake:
            self.wake(ns, name)

    def forget_pending(self, uid: str) -> None:
        with self._lock:
            self._pending.pop(uid, None)
            self._woken.pop(uid, None)
