"""The Trial controller: runs the trial, collects its metrics while it runs, ends it.

Each reconcile makes sure the trial's Pod (or other resource) exists, reads the metrics the
collector sees so far (log, file or pushed), writes the observation, applies the median
stopping rule, and ends the trial when its workload ends: Succeeded when the objective
metric was seen, MetricsUnavailable when it never was, Failed when the workload failed.
Metrics are read from files that are complete before the workload exits, so a trial that
ends quickly loses nothing, and one that never reports cannot hang (Katib #2181, #2614).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from shipyard.core.controller import Controller
from shipyard.core.resource import (
    Obj,
    controller_of,
    get_condition,
    is_true,
    now_iso,
    set_condition,
)
from shipyard.errors import AlreadyExists, NotFound
from shipyard.pods.api import POD
from shipyard.runtime.base import TERMINAL
from shipyard.tuning import early_stopping
from shipyard.tuning.api import _COND, EXPERIMENT, EXPERIMENT_LABEL, TRIAL, TRIAL_FINISHED
from shipyard.tuning.controller import experiment_done, owner_named
from shipyard.tuning.metrics import (
    Parser,
    Tails,
    Values,
    local_metrics_file,
    observation,
    parse_all,
    push_path,
)
from shipyard.tuning.templates import build_pod, build_resource, rewrite_paths, runs_a_pod

HISTORY_CAP = 1000


class TrialController(Controller):
    kind = TRIAL.key
    maps = {POD.key: owner_named("Trial", added=False)}
    workers = 4
    ignore_own_status = True

    def __init__(self, platform: Any) -> None:
        self.platform = platform
        self.store = platform.store
        self.tails = Tails()

    def reconcile(self, namespace: str, name: str) -> float | None:
        trial = self.store.try_get(self.kind, namespace, name)
        if trial is None or trial["metadata"].get("deletionTimestamp"):
            return None
        old = trial.get("status") or {}
        if any(is_true(old, c) for c in TRIAL_FINISHED):
            self.tails.forget(trial["metadata"]["uid"])
            return None
        # Conditions are changed in place (set_condition); everything else is replaced.
        status = {**old, "conditions": [dict(c) for c in old.get("conditions") or []]}
        status.setdefault("startTime", now_iso())
        set_condition(status, "Created", True, "TrialCreated", "Trial is created")
        exp = self._experiment(trial)
        if exp is None or _ended_before(exp, trial):
            self._stop_workload(trial)
            self._finish(status, "Killed", "TrialKilled", "the experiment finished")
            self._write(trial, old, status)
            return None
        pod_based = runs_a_pod(trial["spec"]["runSpec"])
        workload = self._ensure_workload(trial, pod_based)
        state, message = self._state(trial, workload, pod_based)
        primary = workload if pod_based else self._primary_pod(trial, workload)
        values = self._collect(trial, primary, final=state != "running")
        names = [
            trial["spec"]["objective"]["objectiveMetricName"],
            *(trial["spec"]["objective"].get("additionalMetricNames") or []),
        ]
        obs = observation(values, names)
        if obs:
            status["observation"] = {"metrics": obs}
        history = values.get(names[0]) or []
        status["objectiveHistory"] = history[:HISTORY_CAP]
        if state == "running" and workload is not None:
            set_condition(status, "Running", True, "TrialRunning", "Trial is running")
            reason = self._early_stop(trial, exp, history)
            if reason:
                self._stop_workload(trial)
                self._finish(status, "EarlyStopped", "TrialEarlyStopped", reason)
        elif state == "succeeded":
            if history:
                self._finish(status, "Succeeded", "TrialSucceeded", "Trial has succeeded")
            else:
                self._finish(
                    status,
                    "MetricsUnavailable",
                    "MetricsUnavailable",
                    f"the trial never reported {names[0]!r}",
                )
        elif state == "failed":
            self._finish(status, "Failed", "TrialFailed", message or "the trial's workload failed")
        self._write(trial, old, status)
        if any(is_true(status, c) for c in TRIAL_FINISHED):
            self.tails.forget(trial["metadata"]["uid"])
            return None
        return 0.25 if (exp["spec"].get("earlyStopping") or not pod_based) else 1.0

    # -- workload -----------------------------------------------------------------------------

    def _experiment(self, trial: Obj) -> Obj | None:
        ref = controller_of(trial)
        if ref is None:
            return None
        exp: Obj | None = self.store.try_get(
            EXPERIMENT.key, trial["metadata"].get("namespace", ""), ref["name"]
        )
        if exp is None or exp["metadata"]["uid"] != ref.get("uid"):
            return None
        return exp

    def _ensure_workload(self, trial: Obj, pod_based: bool) -> Obj | None:
        md = trial["metadata"]
        ns = md.get("namespace", "")
        if pod_based:
            found: Obj | None = self.store.try_get(POD.key, ns, md["name"])
            if found is not None:
                return found
            exp_name = (md.get("labels") or {}).get(EXPERIMENT_LABEL, "")
            warm = (md.get("annotations") or {}).get("shipyard.dev/warm")
            pod = build_pod(trial, exp_name, warm)
            assert pod is not None
            self._map_files(trial, pod)
            new = pod
        else:
            new = build_resource(trial)
            info = self.platform.registry.for_object(new)
            found = self.store.try_get(info.key, ns, md["name"])
            if found is not None:
                return found
        try:
            created: Obj = self.platform.service.create(new)
            return created
        except AlreadyExists:
            return None

    def _map_files(self, trial: Obj, pod: Obj) -> None:
        mc = trial["spec"].get("metricsCollector") or {}
        if (mc.get("collector") or {}).get("kind") != "File":
            return
        path = ((mc.get("source") or {}).get("fileSystemPath") or {}).get("path")
        if not path:
            return
        md = trial["metadata"]
        local = local_metrics_file(
            self.platform.settings.data_dir, md.get("namespace", ""), md["name"], md["uid"], path
        )
        local.parent.mkdir(parents=True, exist_ok=True)
        rewrite_paths(pod, {path: str(local)})

    def _state(self, trial: Obj, workload: Obj | None, pod_based: bool) -> tuple[str, str]:
        if workload is None:
            return "pending", ""
        status = workload.get("status") or {}
        if pod_based:
            phase = status.get("phase")
            if phase == "Succeeded":
                return "succeeded", ""
            if phase == "Failed":
                return "failed", _pod_failure(status)
            return ("running" if phase == "Running" else "pending"), ""
        spec = trial["spec"]
        ok = _COND.match(spec.get("successCondition") or "")
        bad = _COND.match(spec.get("failureCondition") or "")
        for cond in status.get("conditions") or []:
            pair = (cond.get("type"), cond.get("status"))
            if (ok and pair == ok.groups()) or (
                not ok and pair in (("Succeeded", "True"), ("Complete", "True"))
            ):
                return "succeeded", ""
            if (bad and pair == bad.groups()) or (not bad and pair == ("Failed", "True")):
                return "failed", cond.get("message") or cond.get("reason") or ""
        return "running", ""

    def _primary_pod(self, trial: Obj, workload: Obj | None) -> Obj | None:
        if workload is None:
            return None
        pods = self.store.list(
            POD.key, trial["metadata"].get("namespace", ""), owner_uid=workload["metadata"]["uid"]
        ).items
        primary = trial["spec"].get("primaryContainerName")
        pods = [
            p
            for p in pods
            if not primary or any(c["name"] == primary for c in p["spec"]["containers"])
        ]
        pods.sort(key=lambda p: p["metadata"]["name"])
        return pods[0] if pods else None

    def _stop_workload(self, trial: Obj) -> None:
        md = trial["metadata"]
        run = trial["spec"]["runSpec"]
        info = POD if runs_a_pod(run) else self.platform.registry.for_object(run)
        with contextlib.suppress(NotFound):
            self.platform.service.delete(info, md.get("namespace", ""), md["name"])

    # -- metrics ------------------------------------------------------------------------------

    def _collect(self, trial: Obj, pod: Obj | None, *, final: bool) -> Values:
        spec, md = trial["spec"], trial["metadata"]
        mc = spec.get("metricsCollector") or {}
        kind = (mc.get("collector") or {}).get("kind", "StdOut")
        source = mc.get("source") or {}
        names = [
            spec["objective"]["objectiveMetricName"],
            *(spec["objective"].get("additionalMetricNames") or []),
        ]
        fsp = source.get("fileSystemPath") or {}
        patterns = (source.get("filter") or {}).get("metricsFormat")
        uid, ns, data_dir = md["uid"], md.get("namespace", ""), self.platform.settings.data_dir
        if kind in ("Push", "None"):
            return self.tails.read(
                uid, push_path(data_dir, ns, md["name"], uid), Parser(names, "JSON"), final=final
            )
        if kind == "File":
            path = local_metrics_file(data_dir, ns, md["name"], uid, fsp.get("path", ""))
            return self.tails.read(
                uid, path, Parser(names, fsp.get("format", "TEXT"), patterns), final=final
            )
        if pod is None or (pod.get("status") or {}).get("phase") not in ("Running", *TERMINAL):
            return {}
        container = spec.get("primaryContainerName")
        runtime = self.platform.runtime
        parser = Parser(names, "TEXT", patterns)
        log_path = getattr(runtime, "log_path", None)
        if log_path is not None:
            return self.tails.read(uid, Path(log_path(pod, container)), parser, final=final)
        text = b"".join(runtime.logs(pod, container)).decode("utf-8", "replace")
        return parse_all(text, parser)

    def _early_stop(self, trial: Obj, exp: Obj, history: list[float]) -> str | None:
        es = exp["spec"].get("earlyStopping")
        if not es or not history:
            return None
        settings = early_stopping.settings_of(es)
        if len(history) < settings["start_step"]:
            return None
        siblings = self.store.list(
            self.kind,
            trial["metadata"].get("namespace", ""),
            owner_uid=exp["metadata"]["uid"],
        ).items
        completed = [
            list((t.get("status") or {}).get("objectiveHistory") or [])
            for t in siblings
            if is_true(t.get("status") or {}, "Succeeded")
        ]
        maximize = exp["spec"]["objective"]["type"] == "maximize"
        return early_stopping.median_stop(history, completed, maximize=maximize, settings=settings)

    # -- status -------------------------------------------------------------------------------

    @staticmethod
    def _finish(status: Obj, ctype: str, reason: str, message: str) -> None:
        if get_condition(status, "Running"):
            set_condition(status, "Running", False, reason, message)
        set_condition(status, ctype, True, reason, message)
        status["completionTime"] = now_iso()

    def _write(self, trial: Obj, old: Obj, status: Obj) -> None:
        if status != old:
            md = trial["metadata"]
            with contextlib.suppress(NotFound):
                self.store.update_status(
                    self.kind, md.get("namespace", ""), md["name"], status, base=trial
                )


def _ended_before(exp: Obj, trial: Obj) -> bool:
    """The experiment finished after this trial was created (so the trial is to be killed)."""
    if not experiment_done(exp):
        return False
    ended = (exp.get("status") or {}).get("completionTime") or ""
    return not ended or trial["metadata"].get("creationTimestamp", "") <= ended


def _pod_failure(status: Obj) -> str:
    for cs in status.get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated") or {}
        if term and term.get("exitCode") not in (0, None):
            why = term.get("message") or term.get("reason") or "Error"
            return f"container {cs.get('name')} exited with code {term.get('exitCode')}: {why}"
    return str(status.get("message") or status.get("reason") or "the trial's Pod failed")
