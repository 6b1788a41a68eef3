"""Client.tune of a function that returns its objective and never calls report_metrics: the
value travels in the trial's log (StdOut, only the result's own lines), not over HTTP, and
trials behave as with a pushed value: the objective, several metrics from a dict, the
function's own prints ignored, a non-finite result failing the trial."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.client import Client
from shipyard.tuning import search
from shipyard.tuning.sdk import build_experiment
from tuning.tuning_helpers import objective, phase

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    client = Client.embedded(Path(tmp_path_factory.mktemp("tuning-fn-result")))
    try:
        yield client
    finally:
        client.close()


def square(params):
    print("loss=12345")  # the function's own output is not a metric
    return (params["x"] - 1) ** 2


def two_metrics(params):
    return {"loss": params["x"] ** 2, "width": 3.0}


def not_finite(params):
    return float("nan")


def pushes(params):
    from shipyard import report_metrics

    report_metrics({"loss": params["x"]})


PARAMS = {"x": search.double(-2, 3)}


def _build(fn, **kw):
    base = dict(
        name="e",
        parameters=PARAMS,
        objective="loss",
        direction="minimize",
        goal=None,
        algorithm="random",
        algorithm_settings=None,
        max_trials=1,
        parallel_trials=1,
        max_failed_trials=None,
        early_stopping=None,
        warm=None,
    )
    return build_experiment(fn, **{**base, **kw})


def test_collector_is_stdout_only_when_the_function_does_not_report_itself() -> None:
    spec = _build(square)["spec"]
    assert spec["metricsCollectorSpec"]["collector"]["kind"] == "StdOut"
    assert spec["metricsCollectorSpec"]["source"]["filter"]["metricsFormat"]
    assert _build(pushes)["spec"]["metricsCollectorSpec"] == {"collector": {"kind": "Push"}}
    odd = {"type": "minimize", "objectiveMetricName": "a b"}  # no NAME=VALUE line for it
    assert _build(square, objective=odd)["spec"]["metricsCollectorSpec"]["collector"] == {
        "kind": "Push"
    }


def test_a_returned_value_is_the_objective(c: Client) -> None:
    exp = c.tune(
        square,
        parameters=PARAMS,
        objective="loss",
        direction="minimize",
        algorithm="random",
        algorithm_settings={"random_state": 3},
        max_trials=3,
        parallel_trials=2,
        name="fn-square",
        timeout=90,
    )
    trials = c.list("trials", selector="experiment=fn-square")
    assert len(trials) == 3 and all(phase(t) == "Succeeded" for t in trials)
    for t in trials:
        x = float(t["spec"]["parameterAssignments"][0]["value"])
        assert objective(t) == pytest.approx((x - 1) ** 2)
        assert t["status"]["objectiveHistory"] == [pytest.approx((x - 1) ** 2)]
    assert exp["status"]["currentOptimalTrial"]["bestTrialName"] in {
        t["metadata"]["name"] for t in trials
    }


def test_a_dict_gives_several_metrics_and_nan_fails(c: Client) -> None:
    c.tune(
        two_metrics,
        parameters=PARAMS,
        objective={
            "type": "minimize",
            "objectiveMetricName": "loss",
            "additionalMetricNames": ["width"],
        },
        algorithm="random",
        max_trials=1,
        name="fn-dict",
        timeout=90,
    )
    (t,) = c.list("trials", selector="experiment=fn-dict")
    got = {m["name"]: float(m["latest"]) for m in t["status"]["observation"]["metrics"]}
    x = float(t["spec"]["parameterAssignments"][0]["value"])
    assert got == {"loss": pytest.approx(x**2), "width": 3.0}

    c.tune(
        not_finite,
        parameters=PARAMS,
        objective="loss",
        algorithm="random",
        max_trials=1,
        max_failed_trials=0,
        name="fn-nan",
        timeout=90,
    )
    (t,) = c.list("trials", selector="experiment=fn-nan")
    assert phase(t) == "Failed"
    assert "finite" in "".join(c.logs(t["metadata"]["name"]))
