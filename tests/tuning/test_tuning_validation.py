"""Katib webhook-style validation: bad Experiments are refused with a 4xx naming the field."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard import errors
from shipyard.client import Client
from tuning.tuning_helpers import experiment


@pytest.fixture(scope="module")
def c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    client = Client.embedded(Path(tmp_path_factory.mktemp("tuning-validation")))
    try:
        yield client
    finally:
        client.close()


def _bad(c: Client, exp: dict, field: str, words: str) -> None:
    with pytest.raises(errors.ShipyardError) as info:
        c.create(exp)
    assert 400 <= info.value.status < 500
    assert info.value.field == field, info.value.message
    assert words in info.value.message


def test_list_with_min_max(c: Client) -> None:
    exp = experiment("v1")
    exp["spec"]["parameters"][0]["feasibleSpace"]["list"] = ["1", "2"]
    _bad(c, exp, "spec.parameters[0].feasibleSpace.list", "must be empty")


def test_step_on_categorical(c: Client) -> None:
    exp = experiment("v2")
    exp["spec"]["parameters"][1] = {
        "name": "y",
        "parameterType": "categorical",
        "feasibleSpace": {"list": ["a", "b"], "step": "1"},
    }
    _bad(c, exp, "spec.parameters[1].feasibleSpace.step", "not allowed")


def test_unknown_algorithm(c: Client) -> None:
    _bad(
        c,
        experiment("v3", algorithm="simulated-annealing"),
        "spec.algorithm.algorithmName",
        "unknown",
    )


def test_unknown_algorithm_setting(c: Client) -> None:
    exp = experiment("v4", algorithm="tpe", settings={"n_startup_trials": "2", "bogus": "1"})
    _bad(c, exp, "spec.algorithm.algorithmSettings[1].name", "bogus")


def test_missing_objective_metric_name(c: Client) -> None:
    exp = experiment("v5")
    del exp["spec"]["objective"]["objectiveMetricName"]
    _bad(c, exp, "spec.objective.objectiveMetricName", "required")


def test_parallel_above_max(c: Client) -> None:
    _bad(c, experiment("v6", max_trials=2, parallel=3), "spec.parallelTrialCount", "maxTrialCount")


def test_undefined_trial_parameter(c: Client) -> None:
    exp = experiment("v7")
    exp["spec"]["trialTemplate"]["trialParameters"].pop()
    _bad(c, exp, "spec.trialTemplate.trialParameters", "does not define 'y'")


def test_primary_container_must_exist(c: Client) -> None:
    exp = experiment("v8")
    exp["spec"]["trialTemplate"]["primaryContainerName"] = "trainer"
    _bad(c, exp, "spec.trialTemplate.primaryContainerName", "not a container")


def test_hyperband_needs_resource(c: Client) -> None:
    _bad(
        c,
        experiment("v9", algorithm="hyperband", settings={"r_l": "9"}),
        "spec.algorithm.algorithmSettings",
        "resource_name",
    )


def test_grid_double_needs_step(c: Client) -> None:
    _bad(c, experiment("v10", algorithm="grid"), "spec.parameters[0].feasibleSpace.step", "grid")


def test_defaults_written(c: Client) -> None:
    exp = experiment("v11", max_trials=2)
    del exp["spec"]["parallelTrialCount"]
    created = c.create(exp)
    spec = created["spec"]
    assert spec["parallelTrialCount"] == 2
    assert spec["objective"]["metricStrategies"] == [{"name": "loss", "value": "min"}]
    assert spec["metricsCollectorSpec"]["collector"]["kind"] == "StdOut"
    assert created["apiVersion"] == "kubeflow.org/v1beta1"


def test_only_counts_change(c: Client) -> None:
    exp = experiment("v12", max_trials=1, parallel=1)
    c.create(exp)
    changed = copy.deepcopy(exp)
    changed["spec"]["algorithm"]["algorithmName"] = "tpe"
    with pytest.raises(errors.Invalid) as info:
        c.apply(changed)
    assert info.value.field == "spec.algorithm"
