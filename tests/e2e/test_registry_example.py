"""The registry example from the README: pipeline → registered version → alias → served →
lineage both ways, all through the CLI against a real platform."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from platform_fixtures import EXAMPLES, shipyard_cmd
from shipyard.client import Client

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REG = EXAMPLES / "registry"


def _cli(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [*shipyard_cmd(), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, f"shipyard {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
    return r


def test_train_register_alias_serve_and_lineage(client: Client, cli_env: dict[str, str]) -> None:
    _cli(cli_env, "run", str(REG / "train_register.py"), "--name", "iris-reg", "--watch")
    prun = client.get("pipelineruns", "iris-reg")
    assert prun["status"]["phase"] == "Succeeded"
    mv = client.get("modelversion", "iris-v1")
    src = mv["spec"]["source"]
    assert src["pipelineRun"] == "iris-reg" and src["task"] == "train"
    assert mv["spec"]["params"] == {"n_estimators": "30", "max_depth": "4"}
    assert mv["spec"]["metrics"]["accuracy"] > 0.8

    _cli(cli_env, "alias", "iris", "production", "1")
    _cli(cli_env, "apply", "-f", str(REG / "iris-production.yaml"))
    _cli(cli_env, "wait", "isvc/iris", "--for=condition=Ready", "--timeout=180s")
    pred = _cli(cli_env, "predict", "iris", "-d", f"@{EXAMPLES / 'serving' / 'input-v1.json'}")
    assert len(json.loads(pred.stdout)["predictions"]) == 2

    text = _cli(cli_env, "lineage", "model/iris/production").stdout
    up, down = text.split("downstream:")
    data_digest = prun["status"]["tasks"]["load-data"]["artifacts"]["data"]["digest"]
    assert "modelversion iris-v1 (v1, aliases production)" in text
    assert "run " in up and "task=train" in up and "params n_estimators=30" in up
    assert data_digest in up  # the dataset, by digest
    assert "pipelinetask iris-reg/load-data" in up  # and the task that produced it
    assert "pipelinerun iris-reg" in up
    assert "[served by] inferenceservice iris (models:/iris@production)" in down

    graph = client.lineage("iris", 1)
    kinds = {n["type"] for n in graph["nodes"]}
    assert {
        "ModelVersion",
        "Artifact",
        "TrackingRun",
        "Pod",
        "PipelineRun",
        "PipelineTask",
        "InferenceService",
    } <= kinds


def test_readme_registry_section_names_the_example_commands() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("<!-- section:registry -->", 1)[1].split("<!-- section:", 1)[0]
    for cmd in (
        "shipyard run examples/registry/train_register.py",
        "shipyard alias iris production 1",
        "shipyard apply -f examples/registry/iris-production.yaml",
        "shipyard lineage model/iris/production",
        "shipyard compare",
        "shipyard gc",
    ):
        assert cmd in section, cmd
