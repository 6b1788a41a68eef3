"""Metrics collectors on real trial processes (StdOut with a custom filter, File TEXT/JSON,
Push via shipyard.report_metrics), Client.tune, the CLI, a control-plane restart, and the
examples in examples/tuning."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from platform_fixtures import EXAMPLES, shipyard_cmd
from shipyard.client import Client, read_sources
from shipyard.tuning import search
from tuning.tuning_helpers import condition, experiment, objective, phase

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    client = Client.embedded(Path(tmp_path_factory.mktemp("tuning-collectors")))
    try:
        yield client
    finally:
        client.close()


def run(c: Client, exp: dict, timeout: float = 90) -> tuple[dict, list[dict]]:
    c.create(exp)
    done = c.wait_experiment(exp["metadata"]["name"], timeout=timeout)
    return done, c.list("trials", selector=f"experiment={exp['metadata']['name']}")


def expected(trial: dict) -> float:
    a = {x["name"]: float(x["value"]) for x in trial["spec"]["parameterAssignments"]}
    return (a["x"] - 1) ** 2 + (a["y"] - 0.5) ** 2


LOSS = "(float('${trialParameters.x}') - 1) ** 2 + (float('${trialParameters.y}') - 0.5) ** 2"


def test_stdout_custom_filter_and_strategies(c: Client) -> None:
    code = f"v = {LOSS}\nprint(f'epoch 1: loss is {{v + 1}}')\nprint(f'epoch 2: loss is {{v}}')\n"
    exp = experiment("filter", code=code, max_trials=2)
    exp["spec"]["metricsCollectorSpec"] = {
        "source": {"filter": {"metricsFormat": [r"(loss) is ([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)"]}},
        "collector": {"kind": "StdOut"},
    }
    exp["spec"]["objective"]["metricStrategies"] = [{"name": "loss", "value": "latest"}]
    done, trials = run(c, exp)
    assert done["status"]["trialsSucceeded"] == 2
    for t in trials:
        m = t["status"]["observation"]["metrics"][0]
        assert float(m["latest"]) == pytest.approx(expected(t))
        assert float(m["max"]) == pytest.approx(expected(t) + 1)


@pytest.mark.parametrize("fmt", ["TEXT", "JSON"])
def test_file_collector(c: Client, fmt: str) -> None:
    line = "f'loss={v}'" if fmt == "TEXT" else "json.dumps({'loss': v, 'timestamp': 1})"
    code = (
        "import json, sys\n"
        f"v = {LOSS}\n"
        "with open(sys.argv[1], 'a') as fh:\n"
        f"    fh.write({line} + '\\n')\n"
        "print('loss=999 on stdout is not what the File collector reads')\n"
    )
    path = "/var/log/katib/metrics.log"
    exp = experiment(f"file-{fmt.lower()}", code=code, max_trials=2)
    container = exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][
        0
    ]
    container["args"] = [path]
    exp["spec"]["metricsCollectorSpec"] = {
        "source": {"fileSystemPath": {"path": path, "kind": "File", "format": fmt}},
        "collector": {"kind": "File"},
    }
    done, trials = run(c, exp)
    assert done["status"]["trialsSucceeded"] == 2, [t.get("status") for t in trials]
    for t in trials:
        assert objective(t) == pytest.approx(expected(t))


def test_push_collector_with_intermediate_values(c: Client) -> None:
    code = (
        "import shipyard\n"
        f"v = {LOSS}\n"
        "for step in range(3):\n"
        "    shipyard.report_metrics({'loss': v + 2 - step})\n"
    )
    exp = experiment("push", code=code, max_trials=2)
    exp["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "Push"}}
    done, trials = run(c, exp)
    assert done["status"]["trialsSucceeded"] == 2
    for t in trials:
        assert objective(t) == pytest.approx(expected(t))
        assert t["status"]["objectiveHistory"] == pytest.approx(
            [expected(t) + 2 - s for s in range(3)]
        )


def test_push_from_outside_a_trial_is_refused(c: Client) -> None:
    import httpx

    resp = httpx.post(
        f"{c.url}/tuning/v1/namespaces/default/pods/nope/metrics", json={"metrics": {"a": 1}}
    )
    assert resp.status_code == 404 and "not found" in resp.json()["error"]["message"]
    resp = httpx.post(
        f"{c.url}/tuning/v1/namespaces/default/pods/nope/metrics", json={"metrics": {"a": "x"}}
    )
    assert resp.status_code == 400 and resp.json()["error"]["field"] == "metrics.a"


def quadratic(params):
    import shipyard

    shipyard.report_metrics({"loss": 100.0})  # an intermediate value; the return is the last
    return (params["x"] - 1) ** 2 + (params["k"] - 2) ** 2 + (0 if params["mode"] == "b" else 1)


def test_tune_python_function(c: Client) -> None:
    exp = c.tune(
        quadratic,
        parameters={
            "x": search.double(-2, 3),
            "k": search.int(0, 4),
            "mode": search.categorical(["a", "b"]),
        },
        objective="loss",
        direction="minimize",
        algorithm="tpe",
        algorithm_settings={"random_state": 1, "n_startup_trials": 3},
        max_trials=6,
        parallel_trials=2,
        name="tune-fn",
        timeout=90,
    )
    assert condition(exp, "Succeeded")["reason"] == "MaxTrialsReached"
    trials = c.list("trials", selector="experiment=tune-fn")
    assert len(trials) == 6 and all(phase(t) == "Succeeded" for t in trials)
    for t in trials:
        a = {x["name"]: x["value"] for x in t["spec"]["parameterAssignments"]}
        want = (float(a["x"]) - 1) ** 2 + (int(a["k"]) - 2) ** 2 + (0 if a["mode"] == "b" else 1)
        assert objective(t) == pytest.approx(want)
        assert t["status"]["objectiveHistory"][0] == 100.0
    pod = c.get("pod", trials[0]["metadata"]["name"])
    assert pod["metadata"]["annotations"]["shipyard.dev/warm"] == "shipyard"  # its imports


def test_cli_get_describe_wait(c: Client) -> None:
    run(c, experiment("cli", max_trials=3, parallel=1))
    env = {**os.environ, "SHIPYARD_URL": c.url}

    def cli(*args: str) -> str:
        out = subprocess.run([*shipyard_cmd(), *args], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout

    got = cli("get", "experiments")
    assert "cli" in got and "Succeeded" in got and "3/3" in got
    trials = c.list("trials", selector="experiment=cli")
    listed = cli("get", "trials", "-l", "experiment=cli")
    assert all(t["metadata"]["name"] in listed for t in trials)
    described = cli("describe", "experiment", "cli")
    order = sorted(trials, key=objective)
    positions = [described.index(t["metadata"]["name"], described.index("TRIAL")) for t in order]
    assert positions == sorted(positions)  # best (lowest loss) first
    assert f"Best trial:  {order[0]['metadata']['name']}" in described
    assert "MaxTrialsReached" in cli("experiment", "wait", "cli", "--timeout", "10s")
    logs = cli("logs", "experiment/cli")
    assert all(f"[{t['metadata']['name']}] loss=" in logs for t in trials)


def test_resume_after_control_plane_restart(tmp_path: Path) -> None:
    data = tmp_path / "restart"
    exp = experiment(
        "sobol",
        algorithm="sobol",
        settings={"random_state": "3"},
        max_trials=3,
        resumePolicy="LongRunning",
    )
    with Client.embedded(data) as first:
        first.create(exp)
        first.wait_experiment("sobol", timeout=60)
    with Client.embedded(data) as second:  # a new control plane: no cached sampler
        second.patch("experiment", "sobol", {"spec": {"maxTrialCount": 6}})
        second.wait("experiment", "sobol", jsonpath="{.status.trialsSucceeded}=6", timeout=60)
        trials = second.list("trials", selector="experiment=sobol")
    points = {tuple(a["value"] for a in t["spec"]["parameterAssignments"]) for t in trials}
    assert len(trials) == 6 and len(points) == 6  # the rebuilt sampler did not repeat itself


def test_example_yaml_and_python(c: Client, tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    ((exp, _),) = read_sources([EXAMPLES / "tuning" / "gbm-experiment.yaml"])
    exp["spec"].update(maxTrialCount=2, maxFailedTrialCount=1)
    done, trials = run(c, exp, timeout=180)
    assert done["status"]["trialsSucceeded"] == 2, [t.get("status") for t in trials]
    assert 0.8 < objective(trials[0], "accuracy") <= 1.0
    pod = c.get("pod", trials[0]["metadata"]["name"])
    assert "sklearn.ensemble" in pod["metadata"]["annotations"]["shipyard.dev/warm"]
    script = EXAMPLES / "tuning" / "tune_gbm.py"
    out = subprocess.run(
        [sys.executable, str(script), "--trials", "2", "--name", "example-py"],
        env={**os.environ, "SHIPYARD_URL": c.url},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    assert "best trial: example-py-" in out.stdout and "accuracy" in out.stdout
