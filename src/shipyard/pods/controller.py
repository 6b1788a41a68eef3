"""The Pod controller: admission by the scheduler, hand-off to the runtime, status back.

Level-triggered: each reconcile reads the Pod and what the runtime knows of it and does the
one next thing. A Pod the runtime does not know but whose status shows it was started (the
control plane was restarted) is re-adopted; one that was never started is scheduled.
Deletion goes through the ``shipyard.dev/runtime`` finalizer: the processes are stopped
first, then the finalizer is removed and the store deletes the Pod.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from shipyard.core.controller import Controller
from shipyard.core.resource import Obj, set_condition
from shipyard.core.scheduler import GANG_LABEL, GANG_SIZE, Decision
from shipyard.core.store import Event
from shipyard.errors import Conflict, NotFound
from shipyard.pods.api import FINALIZER, POD, not_honoured_locally
from shipyard.runtime.base import TERMINAL, Assignment
from shipyard.tenancy.config import MissingReference, resolve_env

log = logging.getLogger(__name__)


PENDING_RETRY = 5.0  # seconds between admission attempts of a Pod that did not fit


def _only_creating(status: Obj | None) -> bool:
    """Every container is still being created (none has a process yet)."""
    if status is None or status.get("phase") != "Pending":
        return False
    containers = (status.get("initContainerStatuses") or []) + (
        status.get("containerStatuses") or []
    )
    return bool(containers) and all(
        (cs.get("state") or {}).get("waiting", {}).get("reason") == "ContainerCreating"
        and not cs.get("containerID")
        for cs in containers
    )


class PodController(Controller):
    kind = POD.key
    workers = 4
    # Pod status is written only here; the runtime's callbacks wake us for real changes.
    ignore_own_status = True

    def __init__(self, platform: Any) -> None:
        self.store = platform.store
        self.runtime = platform.runtime
        self.scheduler = platform.scheduler
        self.manager = platform.manager
        self.runtime.set_on_change(self._wake)
        self.scheduler.wake = self._wake
        self.maps = {"ConfigMap": self._pending_in, "Secret": self._pending_in}

    def _wake(self, namespace: str, name: str) -> None:
        self.manager.enqueue(self.kind, namespace, name)

    def setup(self) -> None:
        """Before the first reconcile: count every Pod an earlier run admitted, so Pending
        Pods are not admitted into capacity that running ones still hold."""
        for pod in self.store.list(self.kind).items:
            status = pod.get("status") or {}
            started = any(
                cs.get("containerID")
                for key in ("initContainerStatuses", "containerStatuses")
                for cs in status.get(key) or []
            )
            if started and status.get("phase") not in TERMINAL:
                self.scheduler.restore(pod)

    def reconcile(self, namespace: str, name: str) -> float | None:
        pod = self.store.try_get(self.kind, namespace, name)
        if pod is None:
            return None
        if pod["metadata"].get("deletionTimestamp"):
            self._finalize(pod)
            return None
        phase = (pod.get("status") or {}).get("phase")
        if not self.runtime.knows(pod):
            if phase in TERMINAL:
                self.scheduler.release(pod["metadata"]["uid"])
                return None
            if self.runtime.adopt(pod, self._env_refs(pod, strict=False)):
                self.scheduler.restore(pod)
            elif not self._schedule(pod):
                # Releases wake Pending Pods at once; this periodic retry (as kube-scheduler
                # flushes its unschedulable queue) only bounds the cost of a missed wake-up.
                return PENDING_RETRY
            elif _only_creating(self.runtime.status(pod)):
                # Just started, nothing to tell yet: the runtime calls back within a few
                # milliseconds with the containers running (or already finished), and that
                # status is written then: one write fewer per Pod.
                return None
        self._sync(pod)
        return None

    # -- scheduling ---------------------------------------------------------------------------

    def _schedule(self, pod: Obj) -> bool:
        md = pod["metadata"]
        gang = (md.get("labels") or {}).get(GANG_LABEL)
        decision: Decision
        if gang:
            size = int((md.get("annotations") or {}).get(GANG_SIZE, "1"))
            members = [
                m
                for m in self.store.list(
                    self.kind, md.get("namespace", ""), selector=f"{GANG_LABEL}={gang}"
                ).items
                if not m["metadata"].get("deletionTimestamp")
                and (m.get("status") or {}).get("phase") not in TERMINAL
            ]
            if len(members) < size:
                decision = self.scheduler.wait_for_gang(pod, len(members), size)
            else:
                decision = self.scheduler.admit(pod, members)
        else:
            decision = self.scheduler.admit(pod)
        if not decision.admitted:
            status = dict(pod.get("status") or {})
            status["phase"] = "Pending"
            changed = set_condition(
                status, "PodScheduled", False, decision.reason, decision.message
            )
            if changed or (pod.get("status") or {}).get("phase") != "Pending":
                self._write_status(pod, status)
            if gang and decision.reason != "WaitingForGang":
                self._wake_stale_members(pod, members, decision)
            return False
        for other_ns, other in decision.also_admitted:
            self._wake(other_ns, other)
        try:
            extra_env = self._env_refs(pod, strict=True)
        except MissingReference as exc:
            self.scheduler.release(pod["metadata"]["uid"])
            status = dict(pod.get("status") or {})
            status.update(phase="Pending", reason="CreateContainerConfigError", message=str(exc))
            if status != (pod.get("status") or {}):
                self._write_status(pod, status)
            return False
        self.runtime.start(pod, Assignment(gpus=decision.gpus, extra_env=extra_env))
        return True

    def _wake_stale_members(self, pod: Obj, members: list[Obj], decision: Decision) -> None:
        """The whole gang exists but was refused: members that still say otherwise (such as
        'waiting for its pods') look again, so every member shows the same reason."""
        for m in members:
            if m["metadata"]["uid"] == pod["metadata"]["uid"]:
                continue
            conds = (m.get("status") or {}).get("conditions") or []
            cond: Obj = next((c for c in conds if c.get("type") == "PodScheduled"), {})
            if (cond.get("reason"), cond.get("message")) != (decision.reason, decision.message):
                self._wake(m["metadata"].get("namespace", ""), m["metadata"]["name"])

    def _env_refs(self, pod: Obj, *, strict: bool) -> dict[str, str]:
        """ConfigMap/Secret values the Pod's env names (MissingReference if strict)."""
        try:
            return resolve_env(self.store, pod)
        except MissingReference:
            if strict:
                raise
            return {}

    def _pending_in(self, ev: Event) -> list[tuple[str, str]]:
        """A ConfigMap or Secret appeared or changed: retry Pods waiting for config."""
        return [
            (ev.namespace, p["metadata"]["name"])
            for p in self.store.list(self.kind, ev.namespace, phase="Pending").items
            if (p.get("status") or {}).get("reason") == "CreateContainerConfigError"
        ]

    # -- status -------------------------------------------------------------------------------

    def _sync(self, pod: Obj) -> None:
        observed = self.runtime.status(pod)
        if observed is None:
            return
        old = pod.get("status") or {}
        status: Obj = {**observed, "conditions": [dict(c) for c in old.get("conditions") or []]}
        set_condition(status, "PodScheduled", True)
        inits = observed.get("initContainerStatuses") or []
        set_condition(
            status,
            "Initialized",
            all(
                "terminated" in c["state"] and c["state"]["terminated"].get("exitCode") == 0
                for c in inits
            ),
        )
        ready = observed["phase"] == "Running" and all(
            c.get("ready") for c in observed.get("containerStatuses") or []
        )
        set_condition(status, "ContainersReady", ready)
        set_condition(status, "Ready", ready)
        # Only the local runtime ignores fields; on Kubernetes the kubelet honours them.
        ignored = (
            not_honoured_locally(pod) if getattr(self.runtime, "name", "local") == "local" else []
        )
        if ignored:
            set_condition(
                status,
                "FieldsNotHonoured",
                True,
                "LocalRuntime",
                "accepted but not enforced by the local runtime: " + ", ".join(ignored),
            )
        if status != old:
            self._write_status(pod, status)
        if status["phase"] in TERMINAL:
            self.scheduler.release(pod["metadata"]["uid"])
            self.runtime.forget(pod)

    def _write_status(self, pod: Obj, status: Obj) -> None:
        md = pod["metadata"]
        with contextlib.suppress(NotFound):
            # base: the Pod as read for this reconcile, so the store need not read it again.
            self.store.update_status(
                self.kind, md.get("namespace", ""), md["name"], status, base=pod
            )

    # -- deletion -----------------------------------------------------------------------------

    def _finalize(self, pod: Obj) -> None:
        md = pod["metadata"]
        finished = (pod.get("status") or {}).get("phase") in TERMINAL
        if self.runtime.knows(pod) or (not finished and self.runtime.adopt(pod)):
            grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
            if not self.runtime.stop(pod, grace):
                return  # the runtime calls back when the processes are gone
            self.runtime.forget(pod)
        self.scheduler.release(md["uid"])
        fins = [f for f in md.get("finalizers") or [] if f != FINALIZER]
        if fins == (md.get("finalizers") or []):
            return
        pod["metadata"] = {**md, "finalizers": fins}
        try:
            self.store.update(self.kind, pod)
        except (Conflict, NotFound):
            self._wake(md.get("namespace", ""), md["name"])
