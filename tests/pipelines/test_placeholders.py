"""kfp's run-time placeholders: what each is replaced by, wherever it is in a constant."""

from __future__ import annotations

from shipyard import dsl
from shipyard.pipelines.placeholders import SCHEDULED_TIME, substitute

RUN = {
    "metadata": {
        "name": "train-1a2b3c",
        "uid": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "creationTimestamp": "2026-11-24T10:00:00.000000Z",
    }
}


def test_each_placeholder_names_the_run_or_task() -> None:
    def fill(value: object, run: dict = RUN) -> object:
        return substitute(value, run, "evaluate", "/data/artifacts")

    assert fill(dsl.PIPELINE_JOB_NAME_PLACEHOLDER) == "train-1a2b3c"
    assert fill(dsl.PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER) == "train-1a2b3c"
    assert fill(dsl.PIPELINE_JOB_ID_PLACEHOLDER) == RUN["metadata"]["uid"]
    assert fill(dsl.PIPELINE_TASK_NAME_PLACEHOLDER) == "evaluate"
    task_id = fill(dsl.PIPELINE_TASK_ID_PLACEHOLDER)
    assert task_id == fill(dsl.PIPELINE_TASK_ID_PLACEHOLDER)  # the same for the same task
    assert task_id != substitute(dsl.PIPELINE_TASK_ID_PLACEHOLDER, RUN, "train", "/r")
    assert fill(dsl.PIPELINE_ROOT_PLACEHOLDER) == "/data/artifacts"
    created = RUN["metadata"]["creationTimestamp"]
    assert fill(dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER) == created
    assert fill(dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER) == created
    scheduled = {
        "metadata": {**RUN["metadata"], "annotations": {SCHEDULED_TIME: "2026-11-24T09:00:00Z"}}
    }
    assert fill(dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER, scheduled) == "2026-11-24T09:00:00Z"


def test_placeholders_inside_strings_lists_and_dicts_and_unknown_ones_kept() -> None:
    value = {
        "path": f"{dsl.PIPELINE_ROOT_PLACEHOLDER}/{dsl.PIPELINE_JOB_NAME_PLACEHOLDER}.csv",
        "tags": [dsl.PIPELINE_TASK_NAME_PLACEHOLDER, 3, None],
        "other": "{{$.workspace_path}} and {{$.pipeline_unknown}}",
    }
    assert substitute(value, RUN, "t", "/root") == {
        "path": "/root/train-1a2b3c.csv",
        "tags": ["t", 3, None],
        "other": "{{$.workspace_path}} and {{$.pipeline_unknown}}",
    }
