"""kfp.Client's recurring-run calls on Shipyard's RecurringRun kind, so that a driver script
written for Kubeflow Pipelines schedules runs with ``shipyard.Client`` in kfp.Client's place:
``create_recurring_run``, ``get_recurring_run``, ``list_recurring_runs``,
``enable_recurring_run``, ``disable_recurring_run`` and ``delete_recurring_run``."""

from __future__ import annotations

import re
from typing import Any

import shipyard.errors as errors
from shipyard.pipelines.labels import EXPERIMENT_LABEL

Obj = dict[str, Any]
DISPLAY_NAME = "pipelines.shipyard.dev/display-name"


class KfpRecurringRun:
    """A RecurringRun with kfp's names: ``recurring_run_id`` (its name here),
    ``display_name``, ``status`` (``ENABLED`` or ``DISABLED``), ``mode`` (``ENABLE`` or
    ``DISABLE``), ``cron_expression``, ``max_concurrency``, ``experiment_id``,
    ``created_at``; and from its status ``next_run_time``, ``last_run_time`` and
    ``runs_started``."""

    def __init__(self, obj: Obj) -> None:
        md, spec, st = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        self.recurring_run_id = str(md["name"])
        self.display_name = (md.get("annotations") or {}).get(DISPLAY_NAME, md["name"])
        self.namespace = md.get("namespace")
        enabled = spec.get("enabled", True)
        self.status = "ENABLED" if enabled else "DISABLED"
        self.mode = "ENABLE" if enabled else "DISABLE"
        self.cron_expression = spec.get("schedule")
        self.max_concurrency = spec.get("maxConcurrency", 1)
        self.experiment_id = (md.get("labels") or {}).get(EXPERIMENT_LABEL)
        self.created_at = md.get("creationTimestamp")
        self.next_run_time = st.get("nextScheduleTime")
        self.last_run_time = st.get("lastScheduleTime")
        self.runs_started = int(st.get("runsStarted", 0))

    def __repr__(self) -> str:
        return (
            f"KfpRecurringRun(recurring_run_id={self.recurring_run_id!r}, status={self.status!r})"
        )


class KfpRecurringRuns:
    """What ``list_recurring_runs`` returns: kfp's ``recurring_runs`` and ``total_size``."""

    def __init__(self, items: list[KfpRecurringRun]) -> None:
        self.recurring_runs = items
        self.total_size = len(items)
        self.next_page_token = ""


def interval_to_cron(seconds: Any) -> str:
    """kfp's ``interval_second`` as a cron schedule (KFP's 6 fields, seconds first), when
    it divides a minute, an hour or a day evenly; otherwise BadRequest."""
    try:
        n = int(seconds)
    except (TypeError, ValueError):
        raise errors.BadRequest(
            f"interval_second={seconds!r}: give a whole number of seconds"
        ) from None
    if n > 0 and n < 60 and 60 % n == 0:
        return "* * * * * *" if n == 1 else f"*/{n} * * * * *"
    if n > 0 and n % 60 == 0 and n < 3600 and 60 % (n // 60) == 0:
        return f"0 */{n // 60} * * * *"
    if n > 0 and n % 3600 == 0 and n <= 86400 and 24 % (n // 3600) == 0:
        return "0 0 0 * * *" if n == 86400 else f"0 0 */{n // 3600} * * *"
    raise errors.BadRequest(
        f"interval_second={seconds}: only intervals that divide a minute, an hour or a day "
        "evenly map to a schedule here; give cron_expression instead"
    )


def _name(job_name: str) -> str:
    if not re.search(r"[a-z0-9]", str(job_name).lower()):
        raise errors.BadRequest(f"job_name {job_name!r} has no letters or digits to name it by")
    from shipyard.pipelines.kfp import dns_name  # only here: a 17 ms import for the client

    return dns_name(str(job_name))


class RecurringRunsMixin:
    def create_recurring_run(
        self,
        experiment_id: str | None,
        job_name: str,
        description: str | None = None,
        start_time: str | None = None,
        end_time: str | None = None,
        interval_second: int | None = None,
        cron_expression: str | None = None,
        max_concurrency: int | None = 1,
        no_catchup: bool | None = None,
        params: Obj | None = None,
        pipeline_package_path: str | None = None,
        pipeline_id: str | None = None,
        version_id: str | None = None,
        enabled: bool = True,
        enable_caching: bool | None = None,
        service_account: str | None = None,
        namespace: str | None = None,
    ) -> KfpRecurringRun:
        """kfp.Client's call: a RecurringRun of a pipeline package (compiled YAML, or a .py
        with a @dsl.pipeline) or of a Pipeline applied before (``pipeline_id``: its name),
        on ``cron_expression`` (kfp's 6 fields, seconds first, or 5) or ``interval_second``.
        ``job_name`` becomes its name (lowercased, other characters as ``-``) and stays its
        display name. Missed ticks start one run, not one each (kfp's ``no_catchup``)."""
        for option, value, why in (
            ("start_time", start_time, "a schedule starts when it is created"),
            ("end_time", end_time, "disable or delete it to stop it"),
            ("version_id", version_id, "a Pipeline here has one version: name it"),
            ("service_account", service_account, "Pods run with the platform's account"),
        ):
            if value is not None:
                raise errors.BadRequest(f"{option} is not supported here: {why}")
        if no_catchup is False:
            raise errors.BadRequest(
                "no_catchup=False is not supported here: missed ticks start one run, not one each"
            )
        if (cron_expression is None) == (interval_second is None):
            raise errors.BadRequest("give one of cron_expression and interval_second")
        if (pipeline_package_path is None) == (pipeline_id is None):
            raise errors.BadRequest("give one of pipeline_package_path and pipeline_id")
        schedule = (
            cron_expression if cron_expression is not None else interval_to_cron(interval_second)
        )
        spec: Obj = {
            "schedule": schedule,
            "parameters": dict(params or {}),
            # 0 or less is the server's to refuse, naming spec.maxConcurrency
            "maxConcurrency": 1 if max_concurrency is None else int(max_concurrency),
            "enabled": bool(enabled),
        }
        if pipeline_id is not None:
            spec["pipelineRef"] = {"name": pipeline_id}
        else:
            spec["pipelineSpec"] = self.compile_pipeline(pipeline_package_path)["spec"]  # type: ignore[attr-defined]
        if enable_caching is False:
            spec["cache"] = False
        md: Obj = {"name": _name(job_name), "annotations": {DISPLAY_NAME: str(job_name)}}
        if description:
            md["annotations"]["pipelines.shipyard.dev/description"] = description
        if experiment_id:
            md["labels"] = {EXPERIMENT_LABEL: str(experiment_id)}
        rr = {"apiVersion": "shipyard.dev/v1", "kind": "RecurringRun", "metadata": md, "spec": spec}
        return KfpRecurringRun(self.create(rr, namespace))  # type: ignore[attr-defined]

    def get_recurring_run(
        self, recurring_run_id: str, namespace: str | None = None
    ) -> KfpRecurringRun:
        return KfpRecurringRun(self.get("recurringruns", recurring_run_id, namespace))  # type: ignore[attr-defined]

    def list_recurring_runs(
        self,
        page_token: str = "",
        page_size: int = 10,
        sort_by: str = "",
        experiment_id: str | None = None,
        namespace: str | None = None,
        filter: str | None = None,  # kfp's name
    ) -> KfpRecurringRuns:
        """kfp.Client's call: this namespace's recurring runs (of ``experiment_id`` if
        given), by name, all in one page (``page_token`` and ``sort_by`` are not used)."""
        if filter:
            raise errors.BadRequest("filter is not supported here: filter the list returned")
        selector = f"{EXPERIMENT_LABEL}={experiment_id}" if experiment_id else None
        items = self.list("recurringruns", namespace, selector=selector)  # type: ignore[attr-defined]
        return KfpRecurringRuns([KfpRecurringRun(o) for o in items])

    def enable_recurring_run(self, recurring_run_id: str, namespace: str | None = None) -> None:
        self.patch("recurringruns", recurring_run_id, {"spec": {"enabled": True}}, namespace)  # type: ignore[attr-defined]

    def disable_recurring_run(self, recurring_run_id: str, namespace: str | None = None) -> None:
        self.patch("recurringruns", recurring_run_id, {"spec": {"enabled": False}}, namespace)  # type: ignore[attr-defined]

    def delete_recurring_run(self, recurring_run_id: str, namespace: str | None = None) -> None:
        """kfp.Client's call; as ``kubectl delete``, the runs it started go with it."""
        self.delete("recurringruns", recurring_run_id, namespace)  # type: ignore[attr-defined]
