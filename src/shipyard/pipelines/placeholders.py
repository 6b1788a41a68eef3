"""kfp's run-time placeholders: constants a pipeline passes as a task's input (such as
``dsl.PIPELINE_JOB_NAME_PLACEHOLDER``), replaced when the task starts by what they name.

The strings are kfp's, so a pipeline compiled by kfp (its IR carries them as constants) and
one written with ``shipyard.dsl`` get the same values.
"""

from __future__ import annotations

import re
from typing import Any

PIPELINE_JOB_NAME_PLACEHOLDER = "{{$.pipeline_job_name}}"
PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER = "{{$.pipeline_job_resource_name}}"
PIPELINE_JOB_ID_PLACEHOLDER = "{{$.pipeline_job_uuid}}"
PIPELINE_TASK_NAME_PLACEHOLDER = "{{$.pipeline_task_name}}"
PIPELINE_TASK_ID_PLACEHOLDER = "{{$.pipeline_task_uuid}}"
PIPELINE_ROOT_PLACEHOLDER = "{{$.pipeline_root}}"
PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER = "{{$.pipeline_job_create_time_utc}}"
PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER = "{{$.pipeline_job_schedule_time_utc}}"

# The annotation a RecurringRun puts on each run it starts: the time it was due.
SCHEDULED_TIME = "pipelines.shipyard.dev/scheduled-time"

_ANY = re.compile(r"\{\{\$\.(pipeline_[a-z_]+)\}\}")


def substitute(value: Any, run: dict[str, Any], task: str, root: str) -> Any:
    """``value`` with the placeholders in it (a str, or in a list or dict) replaced, for the
    task named ``task`` of ``run``; ``root`` is where the run's artifacts are stored. A
    placeholder this platform does not know stays as it is."""
    if isinstance(value, str):
        if "{{$." not in value:
            return value
        known = _values(run, task, root)
        return _ANY.sub(lambda m: known.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [substitute(v, run, task, root) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, run, task, root) for k, v in value.items()}
    return value


def _values(run: dict[str, Any], task: str, root: str) -> dict[str, str]:
    # Here, not at the top: the pipeline executor's warm zygote holds this module (with the
    # DSL), and uuid loads platform and a C extension into every fork of it (runtime/warm.py).
    import uuid

    md = run["metadata"]
    created = str(md.get("creationTimestamp") or "")
    return {
        "pipeline_job_name": md["name"],
        "pipeline_job_resource_name": md["name"],
        "pipeline_job_uuid": str(md.get("uid") or ""),
        "pipeline_task_name": task,
        # One per task of the run (a loop's iterations share their task's, as in kfp).
        "pipeline_task_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{md.get('uid')}/{task}")),
        "pipeline_root": root,
        "pipeline_job_create_time_utc": created,
        "pipeline_job_schedule_time_utc": (md.get("annotations") or {}).get(SCHEDULED_TIME)
        or created,
    }
