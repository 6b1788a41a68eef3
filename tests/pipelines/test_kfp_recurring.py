"""kfp.Client's recurring-run arguments as Shipyard reads them (no platform needed: every
case here is refused or converted before anything is sent)."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.errors import BadRequest
from shipyard.pipelines.kfp_recurring import RecurringRunsMixin, interval_to_cron
from shipyard.pipelines.schedule import parse_schedule


@pytest.mark.parametrize(
    ("seconds", "cron"),
    [
        (1, "* * * * * *"),
        (15, "*/15 * * * * *"),
        (60, "0 */1 * * * *"),
        (600, "0 */10 * * * *"),
        (3600, "0 0 */1 * * *"),
        (6 * 3600, "0 0 */6 * * *"),
        (86400, "0 0 0 * * *"),
    ],
)
def test_an_interval_that_divides_a_minute_hour_or_day_becomes_a_schedule(
    seconds: int, cron: str
) -> None:
    assert interval_to_cron(seconds) == cron
    parse_schedule(cron)  # one the RecurringRun accepts


@pytest.mark.parametrize("seconds", [0, -5, 7, 90, 7 * 60, 5 * 3600, 2 * 86400])
def test_other_intervals_are_refused_pointing_at_cron_expression(seconds: int) -> None:
    with pytest.raises(BadRequest, match="give cron_expression instead"):
        interval_to_cron(seconds)


def test_an_interval_that_is_not_a_number_is_refused_saying_so() -> None:
    with pytest.raises(BadRequest, match="interval_second='hourly': give a whole number"):
        interval_to_cron("hourly")


class _Recorder(RecurringRunsMixin):
    def __init__(self) -> None:
        self.created: list[Any] = []

    def create(self, obj: Any, namespace: Any = None) -> Any:
        self.created.append(obj)
        return obj


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start_time": "2026-01-01T00:00:00Z"}, "start_time is not supported"),
        ({"end_time": "2026-01-01T00:00:00Z"}, "end_time is not supported"),
        ({"version_id": "v2"}, "version_id is not supported"),
        ({"service_account": "sa"}, "service_account is not supported"),
        ({"no_catchup": False}, "no_catchup=False is not supported"),
        ({"cron_expression": None}, "give one of cron_expression and interval_second"),
        ({"interval_second": 60}, "give one of cron_expression and interval_second"),
        ({"pipeline_id": None}, "give one of pipeline_package_path and pipeline_id"),
        ({"pipeline_package_path": "p.yaml"}, "give one of pipeline_package_path"),
        ({"job_name": "!!!"}, "job_name '!!!' has no letters or digits"),
    ],
)
def test_what_cannot_be_honoured_is_refused_naming_the_argument(
    kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {
        "experiment_id": None,
        "job_name": "nightly",
        "cron_expression": "0 0 3 * * *",
        "pipeline_id": "fan-out",
        **kwargs,
    }
    rec = _Recorder()
    with pytest.raises(BadRequest, match=message):
        rec.create_recurring_run(**args)
    assert rec.created == []


def test_a_display_name_becomes_a_resource_name_and_stays_the_display_name() -> None:
    rec = _Recorder()
    got = rec.create_recurring_run(
        "exp-1",
        "Nightly Training (v2)",
        interval_second=3600,
        pipeline_id="fan-out",
        enable_caching=False,
        params={"items": [1]},
    )
    rr = rec.created[0]
    assert rr["metadata"]["name"] == "nightly-training-v2"
    assert (got.recurring_run_id, got.display_name) == (
        "nightly-training-v2",
        "Nightly Training (v2)",
    )
    assert rr["spec"] == {
        "schedule": "0 0 */1 * * *",
        "parameters": {"items": [1]},
        "maxConcurrency": 1,
        "enabled": True,
        "pipelineRef": {"name": "fan-out"},
        "cache": False,
    }
    assert got.experiment_id == "exp-1" and got.status == "ENABLED"
