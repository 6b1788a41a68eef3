"""The Experiment controller: counts, the best trial, completion, and new trials.

Level-triggered: each reconcile lists the experiment's Trials (owned by it), derives every
count and the current optimal trial from them, decides whether the experiment is done (goal
reached, max trials, max failures, search space exhausted) and otherwise asks the
algorithm for as many new trials as ``parallelTrialCount`` and ``maxTrialCount`` allow.
Trial events wake it (Trials are owned children).
"""

from __future__ import annotations

import contextlib
import copy
import secrets
import threading
import time
from typing import Any

import orjson

from shipyard.core.controller import Controller
from shipyard.core.resource import (
    Obj,
    get_condition,
    is_true,
    now_iso,
    owner_ref,
    set_condition,
)
from shipyard.errors import AlreadyExists, NotFound
from shipyard.tuning.algorithms import HYPERBAND_ANNOTATION, Suggester, TrialView
from shipyard.tuning.api import (
    EXPERIMENT,
    EXPERIMENT_LABEL,
    TRIAL,
    TRIAL_FINISHED,
    WARM_ANNOTATION,
    objective_value,
    trial_phase,
)
from shipyard.tuning.templates import SOURCE_DIR, substitute

_COUNTS = {
    "Succeeded": ("trialsSucceeded", "succeededTrialList"),
    "Failed": ("trialsFailed", "failedTrialList"),
    "Killed": ("trialsKilled", "killedTrialList"),
    "EarlyStopped": ("trialsEarlyStopped", "earlyStoppedTrialList"),
    "MetricsUnavailable": ("trialMetricsUnavailable", "metricsUnavailableTrialList"),
    "Running": ("trialsRunning", "runningTrialList"),
    "Pending": ("trialsPending", "pendingTrialList"),
}
# A trial that was created or started changes only the experiment's counts: the experiment
# looks again this much later, once for all such changes meanwhile, rather than at each
# (which would write its status while the new trial's process starts). A trial that
# finished or went away wakes it at once: that is what frees a slot for the next trial.
# Such wakes are also spaced: short trials (a few a second) would otherwise bring one
# counts-only reconcile (listing every trial, writing the status, a watch event) per trial,
# which competes for the cores the trials run on and holds the experiment's key when a
# finished trial needs it. A finishing trial's reconcile writes the counts too, unless it
# created trials (whose creation brings such a wake) within COUNTS_SPACING of the last write:
# counts and the best trial then show at most about two seconds late; completion, failure
# and the first Running condition are written at once.
COUNTS_DELAY = 0.2  # seconds
COUNTS_SPACING = 1.0  # seconds between two counts-only wakes of one experiment

_STATE = {
    "Succeeded": "complete",
    "Failed": "fail",
    "Killed": "fail",
    "MetricsUnavailable": "fail",
    "EarlyStopped": "pruned",
}


def experiment_done(exp: Obj) -> bool:
    status = exp.get("status") or {}
    return is_true(status, "Succeeded") or is_true(status, "Failed")


def owner_named(kind: str, *, added: bool = True) -> Any:
    """A watch mapper waking the controller owner of a child when it is of ``kind``, under
    any apiVersion (Katib's ``kubeflow.org/v1beta1`` as well as ``shipyard.dev/v1``). With
    ``added=False`` a child's creation wakes nobody (its owner created it, and looks at it
    again when it changes). It reads the owners the event carries, without parsing it."""

    def mapper(ev: Any) -> list[tuple[str, str]]:
        if not added and ev.type == "ADDED":
            return []
        for ref in ev.owner_refs:
            if ref.get("controller"):
                return [(ev.namespace, ref["name"])] if ref.get("kind") == kind else []
        return []

    return mapper


class ExperimentController(Controller):
    kind = EXPERIMENT.key
    workers = 2
    ignore_own_status = True

    def __init__(self, platform: Any, suggester: Suggester) -> None:
        self.platform = platform
        self.store = platform.store
        self.suggester = suggester
        # Not ``owns``: that matches the owner's group, and trials of a Katib experiment
        # point at kubeflow.org.
        self._owner = owner_named("Experiment")
        self.maps = {TRIAL.key: self._trial_event}
        self._soon: set[tuple[str, str]] = set()  # experiments with a COUNTS_DELAY wake due
        self._last_wake: dict[tuple[str, str], float] = {}  # when their last one was due
        self._written: dict[tuple[str, str], float] = {}  # when their status was last written
        self._soon_lock = threading.Lock()
        # Parsed trials by their stored JSON, per experiment: derived data (dropping it only
        # means parsing again), so a reconcile parses just the trials that changed since the
        # last one rather than all of them (a tune() trial carries its function's source).
        # The objects are shared between reconciles and never modified.
        self._parsed: dict[str, dict[bytes, Obj]] = {}

    def _trial_event(self, ev: Any) -> list[tuple[str, str]]:
        keys: list[tuple[str, str]] = self._owner(ev)
        status = ev.obj.get("status") or {}
        if ev.type == "DELETED" or any(is_true(status, c) for c in TRIAL_FINISHED):
            return keys
        for key in keys:
            with self._soon_lock:
                if key in self._soon:
                    continue
                self._soon.add(key)
                now = time.monotonic()
                due = max(now + COUNTS_DELAY, self._last_wake.get(key, 0.0) + COUNTS_SPACING)
                self._last_wake[key] = due
            self.platform.manager.enqueue(self.kind, *key, after=due - now)
        return []

    def reconcile(self, namespace: str, name: str) -> float | None:
        with self._soon_lock:
            self._soon.discard((namespace, name))
        exp = self.store.try_get(self.kind, namespace, name)
        if exp is None or exp["metadata"].get("deletionTimestamp"):
            with self._soon_lock:
                self._last_wake.pop((namespace, name), None)
                self._written.pop((namespace, name), None)
                if exp is not None:
                    self._parsed.pop(exp["metadata"]["uid"], None)
            return None
        trials = self._trials(namespace, exp["metadata"]["uid"])
        trials.sort(
            key=lambda t: (t["metadata"].get("creationTimestamp", ""), t["metadata"]["name"])
        )
        old = exp.get("status") or {}
        status = copy.deepcopy(old)
        status.setdefault("startTime", now_iso())
        set_condition(status, "Created", True, "ExperimentCreated", "Experiment is created")
        phases = self._count(exp, trials, status)
        finished = sum(n for p, n in phases.items() if p not in ("Running", "Pending"))
        active = phases["Running"] + phases["Pending"]
        if experiment_done(exp):
            if not self._restart(exp, status, finished):
                self._kill_active(namespace, trials)
                self._write(exp, old, status)
                return None
            # Written before new trials exist, so none of them sees a finished experiment.
            self._write(exp, old, status)
            old = copy.deepcopy(status)
        spec = exp["spec"]
        outcome = self._outcome(spec, status, phases, finished, active)
        created = 0
        if outcome is None:
            want = min(
                spec["parallelTrialCount"] - active,
                (spec.get("maxTrialCount") or 1 << 30) - finished - active,
            )
            ended, created = self._create_trials(exp, trials, want) if want > 0 else (False, 0)
            if ended and active == 0:
                outcome = ("Succeeded", "SuggestionEndReached", "the search space is exhausted")
        if outcome is not None:
            kind, reason, message = outcome
            set_condition(status, "Running", False, reason, message)
            set_condition(status, kind, True, reason, message)
            status["completionTime"] = now_iso()
            if get_condition(status, "Restarting"):
                set_condition(status, "Restarting", False, reason, message)
            self._kill_active(namespace, trials)
        else:
            set_condition(status, "Running", True, "ExperimentRunning", "Experiment is running")
            if created and is_true(old, "Running") and self._wrote_lately((namespace, name)):
                # Only counts and the best trial moved, and the new trials' creation brings
                # a counts wake that writes them: not now, while their processes start.
                return None
        self._write(exp, old, status)
        return None

    def _wrote_lately(self, key: tuple[str, str]) -> bool:
        with self._soon_lock:
            return time.monotonic() - self._written.get(key, -1e9) < COUNTS_SPACING

    # -- parts --------------------------------------------------------------------------------

    def _trials(self, namespace: str, uid: str) -> list[Obj]:
        raw = self.store.list_raw(TRIAL.key, namespace, owner_uid=uid).items
        with self._soon_lock:
            known = self._parsed.get(uid) or {}
        parsed = {item: known.get(item) or orjson.loads(item) for item in raw}
        with self._soon_lock:
            self._parsed[uid] = parsed
        return list(parsed.values())

    def _count(self, exp: Obj, trials: list[Obj], status: Obj) -> dict[str, int]:
        phases = dict.fromkeys(_COUNTS, 0)
        for key, lst in _COUNTS.values():
            status[key] = 0
            status[lst] = []
        best: tuple[float, Obj] | None = None
        maximize = exp["spec"]["objective"]["type"] == "maximize"
        for t in trials:
            phase = trial_phase(t)
            phase = "Pending" if phase in ("Created",) else phase
            phases[phase] += 1
            key, lst = _COUNTS[phase]
            status[key] += 1
            status[lst].append(t["metadata"]["name"])
            value = objective_value(t, exp["spec"]) if phase == "Succeeded" else None
            if value is not None and (
                best is None or (value > best[0] if maximize else value < best[0])
            ):
                best = (value, t)
        status["trials"] = len(trials)
        if best is not None:
            t = best[1]
            status["currentOptimalTrial"] = copy.deepcopy(
                {
                    "bestTrialName": t["metadata"]["name"],
                    "parameterAssignments": t["spec"].get("parameterAssignments") or [],
                    "observation": (t.get("status") or {}).get("observation") or {},
                }
            )
        return phases

    def _outcome(
        self, spec: Obj, status: Obj, phases: dict[str, int], finished: int, active: int
    ) -> tuple[str, str, str] | None:
        goal = spec["objective"].get("goal")
        best = _best_value(status, spec)
        if goal is not None and best is not None:
            maximize = spec["objective"]["type"] == "maximize"
            if (best >= goal) if maximize else (best <= goal):
                return ("Succeeded", "GoalReached", f"objective {best:g} reached the goal {goal:g}")
        failed = phases["Failed"] + phases["MetricsUnavailable"]
        max_failed = spec.get("maxFailedTrialCount")
        if max_failed is not None and failed > max_failed:
            return (
                "Failed",
                "MaxFailedTrialsReached",
                f"{failed} trials failed, more than maxFailedTrialCount {max_failed}",
            )
        max_trials = spec.get("maxTrialCount")
        if max_trials is not None and finished >= max_trials and active == 0:
            return (
                "Succeeded",
                "MaxTrialsReached",
                f"{finished} trials finished (maxTrialCount {max_trials})",
            )
        return None

    def _restart(self, exp: Obj, status: Obj, finished: int) -> bool:
        """LongRunning/FromVolume experiments continue when maxTrialCount was raised."""
        spec = exp["spec"]
        done = get_condition(status, "Succeeded")
        if (
            spec.get("resumePolicy", "Never") == "Never"
            or not done
            or done.get("status") != "True"
            or done.get("reason") != "MaxTrialsReached"
            or finished >= (spec.get("maxTrialCount") or 0)
        ):
            return False
        set_condition(
            status, "Succeeded", False, "ExperimentRestarting", "maxTrialCount was raised"
        )
        set_condition(
            status, "Restarting", True, "ExperimentRestarting", "maxTrialCount was raised"
        )
        status.pop("completionTime", None)
        return True

    def _create_trials(self, exp: Obj, trials: list[Obj], want: int) -> tuple[bool, int]:
        """Whether the search space is exhausted, and how many trials were created."""
        md = exp["metadata"]
        views = [_view(t, exp["spec"]) for t in trials]
        names = [f"{md['name'][:54]}-{secrets.token_hex(4)}" for _ in range(want)]
        suggestions, ended = self.suggester.suggest(exp, views, names)
        for trial_name, assignment in zip(names, suggestions, strict=False):
            self._create_trial(exp, trial_name, assignment)
        return ended, len(suggestions)

    def _create_trial(self, exp: Obj, trial_name: str, assignment: dict[str, str]) -> None:
        md, spec = exp["metadata"], exp["spec"]
        annotations: dict[str, str] = {}
        for key in (SOURCE_DIR, WARM_ANNOTATION):
            if key in (md.get("annotations") or {}):
                annotations[key] = md["annotations"][key]
        rung = assignment.pop(HYPERBAND_ANNOTATION, None)
        if rung is not None:
            annotations[HYPERBAND_ANNOTATION] = rung
        tpl = spec["trialTemplate"]
        mcs = copy.deepcopy(spec.get("metricsCollectorSpec") or {})
        trial: Obj = {
            "apiVersion": exp["apiVersion"].replace("shipyard.dev/v1", TRIAL.api_version),
            "kind": "Trial",
            "metadata": {
                "name": trial_name,
                "namespace": md.get("namespace", "default"),
                "labels": {EXPERIMENT_LABEL: md["name"]},
                "annotations": annotations,
                "ownerReferences": [owner_ref(exp)],
            },
            "spec": {
                "objective": spec["objective"],
                "parameterAssignments": [
                    {"name": p["name"], "value": assignment[p["name"]]} for p in spec["parameters"]
                ],
                "runSpec": tpl["trialSpec"],
                "metricsCollector": mcs,
            },
        }
        for key in (
            "primaryContainerName",
            "successCondition",
            "failureCondition",
            "primaryPodLabels",
        ):
            if tpl.get(key):
                trial["spec"][key] = tpl[key]
        if tpl.get("retain") is not None:
            trial["spec"]["retainRun"] = tpl["retain"]
        trial["spec"]["runSpec"] = substitute(tpl["trialSpec"], spec, assignment, trial)
        with contextlib.suppress(AlreadyExists):
            self.platform.service.create(trial)

    def _kill_active(self, namespace: str, trials: list[Obj]) -> None:
        for t in trials:
            if trial_phase(t) in ("Running", "Pending", "Created"):
                self.platform.manager.enqueue(TRIAL.key, namespace, t["metadata"]["name"])

    def _write(self, exp: Obj, old: Obj, status: Obj) -> None:
        if status != old:
            md = exp["metadata"]
            with self._soon_lock:
                self._written[(md.get("namespace", ""), md["name"])] = time.monotonic()
            with contextlib.suppress(NotFound):
                self.store.update_status(
                    self.kind, md.get("namespace", ""), md["name"], status, base=exp
                )
        return None


def _best_value(status: Obj, spec: Obj) -> float | None:
    opt = status.get("currentOptimalTrial")
    if not opt:
        return None
    return objective_value({"status": {"observation": opt.get("observation") or {}}}, spec)


def _view(t: Obj, spec: Obj) -> TrialView:
    phase = trial_phase(t)
    return TrialView(
        name=t["metadata"]["name"],
        params={a["name"]: a["value"] for a in t["spec"].get("parameterAssignments") or []},
        state=_STATE.get(phase, "running"),
        value=objective_value(t, spec) if phase in ("Succeeded", "EarlyStopped") else None,
        annotations=dict(t["metadata"].get("annotations") or {}),
    )
