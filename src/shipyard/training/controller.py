"""The training job engine: one controller class, one instance per training kind.

Each reconcile reads the job and its replica Pods and does the next thing:

1. finished jobs: clean Pods per ``cleanPodPolicy``, delete after ``ttlSecondsAfterFinished``;
2. ``suspend``: delete the Pods, condition Suspended; on resume, start again from scratch;
3. allocate the job's ports once (kept in ``status.ports``);
4. ``activeDeadlineSeconds`` from ``status.startTime``;
5. a failed replica: permanent (per restartPolicy / ExitCode) → the job fails and every
   other replica is stopped; retryable → within ``backoffLimit`` the gang is restarted
   (elastic jobs: only that replica), after an exponential backoff;
6. the success rule (master, chief, worker 0, all or any worker);
7. create missing replica Pods (gang-admitted), then conditions, replica counts, metrics.

Replica Pods run with restartPolicy Never: this controller decides every restart, so what
the status says (``restarts``, Restarting) is what happened. Nothing is kept outside the
store: attempts per replica, ports and the restart time live in the job's status.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from typing import Any

from shipyard.core.controller import Controller
from shipyard.core.resource import KindInfo, Obj, now_iso, parse_time, set_condition
from shipyard.errors import AlreadyExists, NotFound, ShipyardError
from shipyard.pods.api import POD
from shipyard.training import metrics, replicas
from shipyard.training.api import KINDS
from shipyard.training.envs import allocate
from shipyard.training.plan import Plan, gang_min, plan_for, port_names, succeeded, suspended
from shipyard.training.replicas import ATTEMPT_LABEL, REPLICA_LABEL

log = logging.getLogger(__name__)

# Trainer v2 names a finished job Complete and has no Created/Running/Restarting conditions.
V2_NAMES = {"Succeeded": "Complete", "Failed": "Failed", "Suspended": "Suspended"}
METRICS_PERIOD = 2.0


def _elapsed(ts: str | None) -> float:
    return time.time() - parse_time(ts).timestamp() if ts else 0.0


class JobController(Controller):
    owns = (POD.key,)
    workers = 2

    def __init__(self, platform: Any, info: KindInfo) -> None:
        self.platform = platform
        self.store = platform.store
        self.info = info
        self.kind = info.key
        self.v2 = info.group == "trainer.kubeflow.org"
        self.backoff = (
            platform.settings.restart_backoff_base,
            platform.settings.restart_backoff_cap,
        )

    # -- conditions ---------------------------------------------------------------------------

    def _cond(
        self,
        status: Obj,
        ctype: str,
        value: bool,
        reason: str = "",
        msg: str = "",
        *,
        new: bool = False,
    ) -> None:
        if self.v2:
            if ctype not in V2_NAMES:
                return
            ctype = V2_NAMES[ctype]
        if (
            not value
            and not new
            and not any(c.get("type") == ctype for c in status.get("conditions") or [])
        ):
            return  # a False condition that never was True is noise (as in Kubeflow)
        set_condition(status, ctype, value, reason, msg)

    def _is(self, status: Obj, ctype: str) -> bool:
        name = V2_NAMES.get(ctype, ctype) if self.v2 else ctype
        return any(
            c.get("type") == name and c.get("status") == "True"
            for c in status.get("conditions") or []
        )

    def _finished(self, status: Obj) -> bool:
        return self._is(status, "Succeeded") or self._is(status, "Failed")

    # -- reconcile ----------------------------------------------------------------------------

    def reconcile(self, namespace: str, name: str) -> float | None:
        job = self.store.try_get(self.kind, namespace, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return None
        plan = plan_for(job)
        old = job.get("status") or {}
        status = copy.deepcopy(old)
        pods = self.store.list(POD.key, namespace, owner_uid=job["metadata"]["uid"]).items
        after = self._step(job, plan, status, pods)
        ignored = not_honoured(job)
        if ignored:
            self._cond(
                status,
                "FieldsNotHonoured",
                True,
                "LocalRuntime",
                "accepted but not acted on here: " + ", ".join(ignored),
            )
        if status != old:
            with contextlib.suppress(NotFound):
                self.store.update_status(self.kind, namespace, name, status)
        return after

    def _step(self, job: Obj, plan: Plan, status: Obj, pods: list[Obj]) -> float | None:
        kind, name = job["kind"], job["metadata"]["name"]
        if not status.get("conditions") and not self.v2:
            self._cond(status, "Created", True, f"{kind}Created", f"{kind} {name} is created.")
        if self._finished(status):
            current, _ = self._split(plan, status, pods)
            self._observe(job, plan, status, current)  # counts and last metrics
            return self._after_finish(job, plan, status, pods)
        if suspended(plan):
            self._suspend(job, status, pods)
            return None
        if self._is(status, "Suspended"):
            self._cond(status, "Suspended", False, f"{kind}Resumed", f"{kind} {name} is resumed.")
            status.pop("startTime", None)
        if "ports" not in status:
            status["ports"] = allocate(port_names(plan), self._taken_ports())
            return 0.0  # write the ports before any Pod uses them
        status.setdefault("startTime", now_iso())
        deadline = plan.run_policy.get("activeDeadlineSeconds")
        if deadline and _elapsed(status["startTime"]) >= float(deadline):
            msg = f"{kind} {name} has failed because it was active longer than specified deadline"
            self._fail(job, plan, status, pods, "DeadlineExceeded", msg)
            return self._after_finish(job, plan, status, pods)
        current, stale = self._split(plan, status, pods)
        self._delete(stale)
        verdict = self._judge(job, plan, status, current)
        if verdict is not None:
            return verdict
        wait = self._create_missing(job, plan, status, current, stale)
        self._observe(job, plan, status, current)
        return self._next_look(plan, status, wait)

    # -- pieces -------------------------------------------------------------------------------

    def _taken_ports(self) -> set[int]:
        taken: set[int] = set()
        for info in KINDS:
            for other in self.store.list(info.key).items:
                taken.update(((other.get("status") or {}).get("ports") or {}).values())
        return taken

    def _split(self, plan: Plan, status: Obj, pods: list[Obj]) -> tuple[dict[str, Obj], list[Obj]]:
        """Pods of the current attempt by replica key, and stale ones (earlier attempts,
        replicas no longer in the spec)."""
        attempts = status.get("attempts") or {}
        wanted = plan.by_key()
        current: dict[str, Obj] = {}
        stale: list[Obj] = []
        for pod in pods:
            labels = replicas.labels_of(pod)
            key = labels.get(REPLICA_LABEL, "")
            attempt = int(labels.get(ATTEMPT_LABEL, "0"))
            if key in wanted and attempt == int(attempts.get(key, 0)):
                current[key] = pod
            else:
                stale.append(pod)
        return current, stale

    def _delete(self, pods: list[Obj]) -> None:
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            md = pod["metadata"]
            with contextlib.suppress(NotFound):
                self.platform.service.delete(POD, md.get("namespace", ""), md["name"])

    def _judge(self, job: Obj, plan: Plan, status: Obj, current: dict[str, Obj]) -> float | None:
        """Failure and success of the current attempt; a number means: stop here."""
        kind, name = job["kind"], job["metadata"]["name"]
        by_key = plan.by_key()
        for key, pod in sorted(current.items()):
            if replicas.phase(pod) != "Failed":
                continue
            replica = by_key[key]
            code = replicas.exit_code(pod, plan.container)
            why = replicas.failure_text(pod, plan.container)
            if not replicas.retryable(replica.restart_policy, code):
                self._observe(job, plan, status, current)
                msg = (
                    f"{kind} {name} is failed because 1 {replica.rtype} replica(s) failed "
                    f"({key}: {why}; restartPolicy {replica.restart_policy})."
                )
                self._fail(job, plan, status, list(current.values()), f"{kind}Failed", msg)
                return self._after_finish(job, plan, status, list(current.values()))
            return self._restart(job, plan, status, current, key, why)
        phases = {k: replicas.phase(p) for k, p in current.items()}
        if succeeded(plan, phases):
            self._cond(status, "Running", False, f"{kind}Succeeded", "")
            if self._is(status, "Restarting"):
                # Restarted replicas that ran and succeeded between two looks were never seen
                # running: the restart is over all the same.
                self._cond(status, "Restarting", False, f"{kind}Succeeded", "")
            self._cond(
                status,
                "Succeeded",
                True,
                f"{kind}Succeeded",
                f"{kind} {name} is successfully completed.",
            )
            status["completionTime"] = now_iso()
            self._observe(job, plan, status, current)
            return self._after_finish(job, plan, status, list(current.values()))
        return None

    def _restart(
        self, job: Obj, plan: Plan, status: Obj, current: dict[str, Obj], key: str, why: str
    ) -> float | None:
        kind, name = job["kind"], job["metadata"]["name"]
        restarts = int(status.get("restarts", 0))
        limit = plan.run_policy.get("backoffLimit")
        if limit is not None and restarts >= int(limit):
            msg = (
                f"{kind} {name} has failed because it has reached the specified backoff limit "
                f"({limit} restarts; last failure {key}: {why})."
            )
            self._fail(job, plan, status, list(current.values()), "BackoffLimitExceeded", msg)
            return self._after_finish(job, plan, status, list(current.values()))
        attempts = dict(status.get("attempts") or {})
        # Non-elastic jobs restart the whole gang, so the new replica joins a fresh
        # rendezvous with its peers; elastic jobs restart only the failed replica.
        keys = [key] if plan.elastic else [r.key for r in plan.replicas]
        for k in keys:
            attempts[k] = int(attempts.get(k, 0)) + 1
        status["attempts"] = attempts
        status["restarts"] = restarts + 1
        base, cap = self.backoff
        delay = float(min(cap, base * 2**restarts))
        status["restartAt"] = time.time() + delay
        what = "replica" if plan.elastic else "all replicas"
        self._cond(status, "Running", False, f"{kind}Restarting", "")
        self._cond(
            status,
            "Restarting",
            True,
            f"{kind}Restarting",
            f"{kind} {name} is restarting because {key} failed ({why}); restarting {what} "
            f"(restart {restarts + 1}).",
        )
        self._delete([current[k] for k in keys if k in current])
        return delay

    def _fail(
        self, job: Obj, plan: Plan, status: Obj, pods: list[Obj], reason: str, msg: str
    ) -> None:
        kind = job["kind"]
        self._cond(status, "Running", False, reason, "")
        self._cond(status, "Restarting", False, reason, "")
        self._cond(status, "Failed", True, reason, msg)
        status["completionTime"] = now_iso()
        # No replica keeps running after the job failed (whatever cleanPodPolicy says).
        self._delete([p for p in pods if replicas.phase(p) not in ("Succeeded", "Failed")])
        log.info("%s %s failed: %s", kind, job["metadata"]["name"], msg)

    def _after_finish(self, job: Obj, plan: Plan, status: Obj, pods: list[Obj]) -> float | None:
        policy = plan.run_policy.get("cleanPodPolicy") or "None"
        if policy == "All":
            self._delete(pods)
        elif policy == "Running":
            self._delete([p for p in pods if replicas.phase(p) not in ("Succeeded", "Failed")])
        ttl = plan.run_policy.get("ttlSecondsAfterFinished")
        if ttl is None:
            return None
        left = float(ttl) - _elapsed(status.get("completionTime") or now_iso())
        if left > 0:
            return left
        md = job["metadata"]
        with contextlib.suppress(NotFound):
            self.platform.service.delete(self.info, md.get("namespace", ""), md["name"])
        return None

    def _suspend(self, job: Obj, status: Obj, pods: list[Obj]) -> None:
        kind, name = job["kind"], job["metadata"]["name"]
        self._delete(pods)
        self._cond(status, "Running", False, f"{kind}Suspended", "")
        self._cond(status, "Suspended", True, f"{kind}Suspended", f"{kind} {name} is suspended.")
        status.pop("startTime", None)
        status["replicaStatuses"] = {}

    def _create_missing(
        self, job: Obj, plan: Plan, status: Obj, current: dict[str, Obj], stale: list[Obj]
    ) -> float | None:
        missing = [r for r in plan.replicas if r.key not in current]
        if not missing:
            return None
        wait = float(status.get("restartAt", 0)) - time.time()
        if wait > 0:
            return wait
        names = {r.pod_name for r in missing}
        if any(p["metadata"]["name"] in names for p in stale):
            return 0.2  # the previous attempt's Pods are still stopping
        live = sum(1 for p in current.values() if replicas.phase(p) not in ("Succeeded", "Failed"))
        gang = max(live + len(missing), 1) if current else gang_min(plan)
        attempts = status.get("attempts") or {}
        for r in missing:
            pod = replicas.build_pod(
                job, plan, r, status["ports"], int(attempts.get(r.key, 0)), gang
            )
            try:
                current[r.key] = self.platform.service.create(pod)
            except AlreadyExists:
                return 0.2
            except ShipyardError as exc:
                self._cond(status, "Running", False, "ReplicaNotCreated", exc.message)
                return 5.0
        return None

    def _observe(self, job: Obj, plan: Plan, status: Obj, current: dict[str, Obj]) -> None:
        """Replica counts, the Running condition and metrics from the current Pods."""
        kind, name = job["kind"], job["metadata"]["name"]
        counts: dict[str, Obj] = {}
        for r in plan.replicas:
            c = counts.setdefault(r.rtype, {"active": 0, "succeeded": 0, "failed": 0})
            p = replicas.phase(current[r.key]) if r.key in current else "Pending"
            if p == "Running":
                c["active"] += 1
            elif p == "Succeeded":
                c["succeeded"] += 1
            elif p == "Failed":
                c["failed"] += 1
        status["replicaStatuses"] = counts
        finished = self._finished(status)
        phases = [replicas.phase(current[r.key]) if r.key in current else "" for r in plan.replicas]
        if not finished and all(p in ("Running", "Succeeded") for p in phases):
            self._cond(status, "Restarting", False, f"{kind}Running", "")
            self._cond(status, "Running", True, f"{kind}Running", f"{kind} {name} is running.")
        elif not finished:
            pending = [
                f"{k}: {why}"
                for k, p in current.items()
                if (why := replicas.pending_reason(p)) and replicas.phase(p) == "Pending"
            ]
            if pending and not self._is(status, "Restarting"):
                msg = "; ".join(pending)
                self._cond(status, "Running", False, "Unschedulable", msg, new=True)
        found = metrics.collect(self.platform.runtime, plan, current)
        if found:
            status["metrics"] = {**(status.get("metrics") or {}), **found}

    def _next_look(self, plan: Plan, status: Obj, wait: float | None) -> float | None:
        times = [wait] if wait is not None else []
        if self._is(status, "Running"):
            times.append(METRICS_PERIOD)
        deadline = plan.run_policy.get("activeDeadlineSeconds")
        if deadline and status.get("startTime"):
            times.append(max(0.0, float(deadline) - _elapsed(status["startTime"])))
        return min(times) if times else None


# Fields of Kubeflow's job specs that Shipyard accepts but does not act on; reported in the
# job's FieldsNotHonoured condition, never dropped silently.
_SCHEDULING_IGNORED = ("queue", "priorityClass", "minResources", "scheduleTimeoutSeconds")
_V2_IGNORED = ("initializer", "podSpecOverrides", "podTemplateOverrides", "managedBy")


def not_honoured(job: Obj) -> list[str]:
    spec = job.get("spec") or {}
    out: list[str] = []
    policy = (spec.get("runPolicy") or {}).get("schedulingPolicy") or {}
    out += [f"spec.runPolicy.schedulingPolicy.{f}" for f in _SCHEDULING_IGNORED if policy.get(f)]
    if str(job.get("apiVersion", "")).startswith("trainer.kubeflow.org/"):
        out += [f"spec.{f}" for f in _V2_IGNORED if spec.get(f)]
    return out
