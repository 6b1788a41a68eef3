"""The RecurringRun controller: starts PipelineRuns on a cron schedule, never more than
``maxConcurrency`` at once (a tick that finds that many still running is skipped)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from shipyard.core.controller import Controller
from shipyard.core.resource import Obj, owner_ref, parse_time
from shipyard.errors import AlreadyExists, NotFound
from shipyard.pipelines.api import PIPELINE_RUN, RECURRING_RUN, RUN_TERMINAL
from shipyard.pipelines.labels import EXPERIMENT_LABEL, RECURRING_LABEL
from shipyard.pipelines.placeholders import SCHEDULED_TIME
from shipyard.pipelines.schedule import next_after


class RecurringRunController(Controller):
    kind = RECURRING_RUN.key
    workers = 1

    def __init__(self, platform: Any) -> None:
        self.platform = platform
        self.store = platform.store
        self.maps = {PIPELINE_RUN.key: self._run_changed}

    @staticmethod
    def _run_changed(ev: Any) -> list[tuple[str, str]]:
        owner = ev.labels.get(RECURRING_LABEL)
        return [(ev.namespace, owner)] if owner else []

    def reconcile(self, namespace: str, name: str) -> float | None:
        rr = self.store.try_get(self.kind, namespace, name)
        if rr is None or rr["metadata"].get("deletionTimestamp"):
            return None
        spec, old = rr["spec"], rr.get("status") or {}
        st: Obj = dict(old)
        runs = self.store.list(
            PIPELINE_RUN.key, namespace, selector=f"{RECURRING_LABEL}={name}"
        ).items
        active = sorted(
            r["metadata"]["name"]
            for r in runs
            if (r.get("status") or {}).get("phase") not in RUN_TERMINAL
        )
        st["active"] = active
        now = datetime.now(UTC)
        delay: float | None = None
        if spec.get("enabled", True):
            last = st.get("lastScheduleTime") or rr["metadata"]["creationTimestamp"]
            due = next_after(spec["schedule"], parse_time(last))
            if due <= now:
                # Missed ticks collapse into one: start at most one run per reconcile.
                while (following := next_after(spec["schedule"], due)) <= now:
                    due = following
                st["lastScheduleTime"] = due.strftime("%Y-%m-%dT%H:%M:%SZ")
                if len(active) < int(spec.get("maxConcurrency", 1)):
                    run_name = self._start(rr, due)
                    if run_name:
                        st["active"] = sorted({*active, run_name})
                        st["runsStarted"] = int(st.get("runsStarted", 0)) + 1
                else:
                    st["skippedTicks"] = int(st.get("skippedTicks", 0)) + 1
                due = next_after(spec["schedule"], due)
            st["nextScheduleTime"] = due.strftime("%Y-%m-%dT%H:%M:%SZ")
            delay = max(0.01, (due - datetime.now(UTC)).total_seconds())
        if st != old:
            with contextlib.suppress(NotFound):
                self.store.update_status(self.kind, namespace, name, st)
        return delay

    def _start(self, rr: Obj, due: datetime) -> str | None:
        md, spec = rr["metadata"], rr["spec"]
        run_name = f"{md['name'][:40]}-{int(due.timestamp())}"
        run_spec: Obj = {"parameters": dict(spec.get("parameters") or {})}
        for key in ("pipelineRef", "pipelineSpec"):
            if spec.get(key):
                run_spec[key] = spec[key]
        if spec.get("cache") is not None:
            run_spec["cache"] = spec["cache"]
        labels = {RECURRING_LABEL: md["name"]}
        experiment = (md.get("labels") or {}).get(EXPERIMENT_LABEL)
        if experiment:
            labels[EXPERIMENT_LABEL] = experiment  # kfp.Client's experiment, on its runs too
        # kfp's PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER gives a run's tasks this time.
        annotations = {SCHEDULED_TIME: due.strftime("%Y-%m-%dT%H:%M:%SZ")}
        src = (md.get("annotations") or {}).get("shipyard.dev/source-dir")
        if src:
            annotations["shipyard.dev/source-dir"] = src
        run: Obj = {
            "apiVersion": rr["apiVersion"],
            "kind": "PipelineRun",
            "metadata": {
                "name": run_name,
                "namespace": md.get("namespace", ""),
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [owner_ref(rr)],
            },
            "spec": run_spec,
        }
        try:
            self.platform.service.create(run)
        except AlreadyExists:
            return None
        return run_name
