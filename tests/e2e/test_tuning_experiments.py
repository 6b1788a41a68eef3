"""Experiments end to end on real processes: every algorithm, goal stop, failure limits,
MetricsUnavailable, early stopping, resume, and the trial kinds (Job, Pod, PyTorchJob)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard import errors
from shipyard.client import Client
from shipyard.core.resource import get_condition
from tuning.tuning_helpers import condition, experiment, objective, phase

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    client = Client.embedded(Path(tmp_path_factory.mktemp("tuning-e2e")))
    try:
        yield client
    finally:
        client.close()


def run(c: Client, exp: dict, timeout: float = 90) -> tuple[dict, list[dict]]:
    c.create(exp)
    done = c.wait_experiment(exp["metadata"]["name"], timeout=timeout)
    trials = c.list("trials", selector=f"experiment={exp['metadata']['name']}")
    return done, trials


def assignments(trial: dict) -> dict[str, str]:
    return {a["name"]: a["value"] for a in trial["spec"]["parameterAssignments"]}


@pytest.mark.parametrize(
    ("algorithm", "settings"),
    [
        ("random", {"random_state": "1"}),
        ("tpe", {"random_state": "1", "n_startup_trials": "2"}),
        ("multivariate-tpe", {"random_state": "1", "n_startup_trials": "2"}),
        ("cmaes", {"random_state": "1", "sigma": "0.5"}),
        ("sobol", {"random_state": "1"}),
        ("bayesianoptimization", {"random_state": "1", "n_initial_points": "2"}),
    ],
)
def test_sampler_algorithms(c: Client, algorithm: str, settings: dict[str, str]) -> None:
    name = f"alg-{algorithm}"
    done, trials = run(c, experiment(name, algorithm=algorithm, settings=settings, max_trials=5))
    assert condition(done, "Succeeded")["reason"] == "MaxTrialsReached"
    assert len(trials) == 5 and all(phase(t) == "Succeeded" for t in trials)
    for t in trials:
        a = assignments(t)
        assert -2 <= float(a["x"]) <= 3 and 0 <= float(a["y"]) <= 1
        assert t["metadata"]["labels"]["experiment"] == name
        assert t["apiVersion"] == "kubeflow.org/v1beta1"
    best = min(trials, key=lambda t: objective(t))
    opt = done["status"]["currentOptimalTrial"]
    assert opt["bestTrialName"] == best["metadata"]["name"]
    assert opt["parameterAssignments"] == best["spec"]["parameterAssignments"]
    assert done["status"]["trialsSucceeded"] == 5
    assert len({tuple(assignments(t).values()) for t in trials}) == 5


def test_grid_walks_every_point_then_ends(c: Client) -> None:
    params = [
        {"name": "x", "parameterType": "int", "feasibleSpace": {"min": "0", "max": "2"}},
        {"name": "y", "parameterType": "categorical", "feasibleSpace": {"list": ["0.1", "0.5"]}},
    ]
    done, trials = run(c, experiment("grid", algorithm="grid", parameters=params, max_trials=10))
    assert condition(done, "Succeeded")["reason"] == "SuggestionEndReached"
    seen = sorted((assignments(t)["x"], assignments(t)["y"]) for t in trials)
    assert seen == sorted(itertools.product(["0", "1", "2"], ["0.1", "0.5"]))
    assert objective(next(t for t in trials if assignments(t) == {"x": "1", "y": "0.5"})) == 0.0


def test_hyperband_promotes_with_more_resource(c: Client) -> None:
    params = [
        {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-2", "max": "3"}},
        {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}},
    ]
    code = (
        "x = float('${trialParameters.x}'); e = int('${trialParameters.epochs}'); "
        "print(f'loss={(x - 1) ** 2 + 1 / e}')"
    )
    exp = experiment(
        "hyperband",
        algorithm="hyperband",
        settings={"r_l": "9", "eta": "3", "resource_name": "epochs", "random_state": "2"},
        parameters=params,
        code=code,
        max_trials=40,
        parallel=3,
    )
    done, trials = run(c, exp)
    assert condition(done, "Succeeded")["reason"] == "SuggestionEndReached"
    by_epochs: dict[str, list[dict]] = {}
    for t in trials:
        by_epochs.setdefault(assignments(t)["epochs"], []).append(t)
    assert set(by_epochs) == {"1", "3", "9"}
    # Every configuration run with 9 epochs after a 3-epoch rung was among that rung's best.
    first = [
        t for t in trials if t["metadata"]["annotations"]["tuning.shipyard.dev/hyperband"] == "2,0"
    ]
    second = [
        t for t in trials if t["metadata"]["annotations"]["tuning.shipyard.dev/hyperband"] == "2,1"
    ]
    assert len(first) == 9 and len(second) == 3
    top3 = sorted(first, key=objective)[:3]
    assert {assignments(t)["x"] for t in second} == {assignments(t)["x"] for t in top3}


def test_goal_reached_stops_early(c: Client) -> None:
    params = [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "0", "max": "9"}}]
    code = "print(f'loss={abs(int(\"${trialParameters.x}\") - 2)}')"
    exp = experiment(
        "goal", algorithm="grid", parameters=params, code=code, max_trials=10, parallel=1
    )
    exp["spec"]["objective"]["goal"] = 0
    done, trials = run(c, exp)
    assert condition(done, "Succeeded")["reason"] == "GoalReached"
    assert len(trials) == 3
    assert done["status"]["currentOptimalTrial"]["parameterAssignments"] == [
        {"name": "x", "value": "2"}
    ]


def test_failed_trials_fail_the_experiment(c: Client) -> None:
    exp = experiment(
        "fails",
        code="import sys; '${trialParameters.x}${trialParameters.y}'; sys.exit(3)",
        max_trials=6,
        parallel=1,
    )
    exp["spec"]["maxFailedTrialCount"] = 1
    done, trials = run(c, exp)
    assert condition(done, "Failed")["reason"] == "MaxFailedTrialsReached"
    assert len(trials) == 2 and all(phase(t) == "Failed" for t in trials)
    assert "exited with code 3" in condition(trials[0], "Failed")["message"]


def test_metrics_unavailable(c: Client) -> None:
    exp = experiment(
        "silent",
        code="print('accuracy=0.5 but no loss ${trialParameters.x}${trialParameters.y}')",
        max_trials=2,
        parallel=2,
    )
    done, trials = run(c, exp)
    assert all(phase(t) == "MetricsUnavailable" for t in trials)
    assert done["status"]["trialMetricsUnavailable"] == 2
    assert "currentOptimalTrial" not in done["status"]
    assert condition(done, "Succeeded")["reason"] == "MaxTrialsReached"


def test_median_stop_ends_a_bad_trial_while_it_runs(c: Client) -> None:
    params = [
        {
            "name": "mode",
            "parameterType": "categorical",
            "feasibleSpace": {"list": ["a", "b", "c", "z"]},
        }
    ]
    code = (
        "import time\n"
        "bad = '${trialParameters.mode}' == 'z'\n"
        "for step in range(600 if bad else 5):\n"
        "    print(f'loss={10.0 if bad else 1.0}', flush=True)\n"
        "    time.sleep(0.05 if bad else 0)\n"
    )
    exp = experiment(
        "median", algorithm="grid", parameters=params, code=code, max_trials=4, parallel=1
    )
    exp["spec"]["earlyStopping"] = {
        "algorithmName": "medianstop",
        "algorithmSettings": [
            {"name": "min_trials_required", "value": "3"},
            {"name": "start_step", "value": "4"},
        ],
    }
    done, trials = run(c, exp)
    bad = next(t for t in trials if assignments(t)["mode"] == "z")
    assert phase(bad) == "EarlyStopped", bad["status"]
    assert "median" in condition(bad, "EarlyStopped")["message"]
    assert 4 <= len(bad["status"]["objectiveHistory"]) < 600
    assert done["status"]["trialsEarlyStopped"] == 1 and done["status"]["trialsSucceeded"] == 3
    # Its Pod is stopped and deleted rather than run to its end.
    assert c.wait("pod", bad["metadata"]["name"], delete=True, timeout=30) is None


def test_resume_long_running_and_never(c: Client) -> None:
    exp = experiment(
        "resume",
        algorithm="tpe",
        settings={"random_state": "4"},
        max_trials=2,
        resumePolicy="LongRunning",
    )
    done, _ = run(c, exp)
    assert condition(done, "Succeeded")["reason"] == "MaxTrialsReached"
    c.patch("experiment", "resume", {"spec": {"maxTrialCount": 4}})
    done = c.wait("experiment", "resume", jsonpath="{.status.trialsSucceeded}=4", timeout=60)
    done = c.wait_experiment("resume", timeout=60)
    assert get_condition(done["status"], "Restarting")["reason"] == "MaxTrialsReached"
    assert condition(done, "Succeeded")["reason"] == "MaxTrialsReached"
    assert done["status"]["trialsSucceeded"] == 4
    never = experiment("never", max_trials=1, parallel=1)
    done, _ = run(c, never)
    with pytest.raises(errors.Invalid) as info:
        c.patch("experiment", "never", {"spec": {"maxTrialCount": 3}})
    assert info.value.field == "spec.maxTrialCount"


@pytest.mark.parametrize("kind", ["Pod", "Job"])
def test_trial_kinds_pod_and_job(c: Client, kind: str) -> None:
    done, trials = run(
        c,
        experiment(f"kind-{kind.lower()}", kind=kind, api_version="shipyard.dev/v1", max_trials=2),
    )
    assert done["status"]["trialsSucceeded"] == 2
    pod = c.get("pod", trials[0]["metadata"]["name"])
    assert pod["metadata"]["labels"]["trial"] == trials[0]["metadata"]["name"]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Trial"


def test_trial_as_pytorchjob(c: Client) -> None:
    exp = experiment("kind-ptj", max_trials=2, parallel=2)
    container = {
        "name": "pytorch",
        "image": "python",
        "command": [
            "python",
            "-c",
            "x, y = float('${trialParameters.x}'), float('${trialParameters.y}'); "
            "print(f'loss={x ** 2 + y}')",
        ],
    }
    exp["spec"]["trialTemplate"] = {
        "primaryContainerName": "pytorch",
        "trialParameters": [{"name": "x"}, {"name": "y"}],
        "trialSpec": {
            "apiVersion": "kubeflow.org/v1",
            "kind": "PyTorchJob",
            "spec": {
                "pytorchReplicaSpecs": {
                    "Master": {
                        "replicas": 1,
                        "restartPolicy": "Never",
                        "template": {"spec": {"containers": [container]}},
                    }
                }
            },
        },
    }
    done, trials = run(c, exp)
    assert done["status"]["trialsSucceeded"] == 2, [t["status"] for t in trials]
    for t in trials:
        a = assignments(t)
        assert objective(t) == pytest.approx(float(a["x"]) ** 2 + float(a["y"]))
    job = c.get("pytorchjob", trials[0]["metadata"]["name"])
    assert job["metadata"]["ownerReferences"][0]["kind"] == "Trial"


def test_deleting_the_experiment_deletes_trials_and_pods(c: Client) -> None:
    _, trials = run(c, experiment("cascade", max_trials=1, parallel=1))
    c.delete("experiment", "cascade", wait=True, timeout=30)
    for t in trials:  # cascading: the trial, then its Pod once its processes are stopped
        assert c.wait("trial", t["metadata"]["name"], delete=True, timeout=30) is None
        assert c.wait("pod", t["metadata"]["name"], delete=True, timeout=30) is None
    assert c.list("trials", selector="experiment=cascade") == []
