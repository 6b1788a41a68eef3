"""KFP v2 pipeline YAML, compiled by the real kfp compiler (``scripts/gen-kfp-fixtures.py``),
run by Shipyard through the CLI and the client, with the kfp package not installed."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from platform_fixtures import EXAMPLES, shipyard_cmd
from shipyard import components, dsl
from shipyard.client import Client

pytestmark = pytest.mark.e2e
FIXTURES = Path(__file__).resolve().parents[1] / "pipelines" / "kfp_fixtures"
HELLO = EXAMPLES / "pipelines" / "kfp_hello.yaml"


def states(status: dict[str, Any]) -> dict[str, str]:
    return {tid: t["state"] for tid, t in status["tasks"].items()}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*shipyard_cmd(), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_kfp_is_not_installed_where_the_tasks_run() -> None:
    # The point of the translation: the components run without the kfp SDK.
    assert importlib.util.find_spec("kfp") is None


def test_kfp_example_runs_from_the_cli_with_defaults_and_params(
    client: Client, cli_env: dict[str, str]
) -> None:
    r = cli(cli_env, "run", str(HELLO), "--name", "hello", "--watch")
    assert r.returncode == 0, r.stdout + r.stderr
    st = client.get("pipelineruns", "hello")["status"]
    assert st["phase"] == "Succeeded"
    # times defaults to 2 (kfp wrote `defaultValue: 2.0`): an int, so the list repeats.
    assert st["parameters"] == {"name": "world", "times": 2}
    assert st["outputs"] == {"Output": "HELLO WORLD HELLO WORLD"}
    r = cli(cli_env, "run", str(HELLO), "--name", "ada", "-p", "name=Ada", "-p", "times=3")
    assert r.returncode == 0, r.stderr
    st = client.pipeline_run("ada").wait(60, check=True)
    assert st["outputs"]["Output"] == "HELLO ADA HELLO ADA HELLO ADA"
    logs = cli(cli_env, "logs", "run/ada", "--task", "shout")
    assert logs.returncode == 0 and "HELLO ADA HELLO ADA HELLO ADA" in logs.stdout


def test_kfp_features_chain_conditions_loops_collected_artifacts_exit_handler(
    client: Client,
) -> None:
    text = (FIXTURES / "features.yaml").read_text()
    st = client.run_pipeline(text).wait(120, check=True)
    s = states(st)
    out = {tid: (t.get("outputs") or {}) for tid, t in st["tasks"].items()}
    # Pipeline params with defaults; ints stay ints end to end (kubeflow/pipelines#9442).
    assert st["parameters"] == {"a": 2, "b": 3, "factor": 1.5, "threshold": 4}
    assert out["add"]["Output"] == 5
    assert out["describe-type"]["Output"] == "int:5 float:1.5"
    # dsl.If / Elif / Else on a task output: 5 > 4 takes the If branch only.
    assert (s["say"], s["say-2"], s["say-3"]) == ("Succeeded", "Skipped", "Skipped")
    # A Dataset passed between tasks, and a Metrics artifact logged.
    rows = st["tasks"]["make-dataset"]["artifacts"]["rows"]
    assert rows["type"] == "Dataset" and rows["metadata"] == {"rows": 5}
    assert st["tasks"]["count-rows"]["inputs"]["artifacts"]["rows"]["digest"] == rows["digest"]
    assert st["tasks"]["count-rows"]["artifacts"]["metrics"]["metadata"] == {"rows": 5}
    # ParallelFor over a task output (parallelism 2) and Collected into two consumers.
    assert [out[f"square[{i}]"]["Output"] for i in range(5)] == [1, 4, 9, 16, 25]
    assert out["total"]["Output"] == 55
    assert out["stats"] == {"biggest": 25, "count": 5}
    # ParallelFor over literal dicts, reading fields of the item.
    assert [out[f"add-2[{i}]"]["Output"] for i in range(2)] == [11, 22]
    # The exit handler ran after everything and was told it all succeeded.
    assert out["report"]["Output"] == "SUCCEEDED"

    # Other params take the Elif and Else branches; the unchanged tasks are cached.
    eq = client.run_pipeline(FIXTURES / "features.yaml", {"threshold": 5}).wait(120, check=True)
    assert (states(eq)["say"], states(eq)["say-2"], states(eq)["say-3"]) == (
        "Skipped",
        "Succeeded",
        "Skipped",
    )
    assert states(eq)["add"] == "Cached" and states(eq)["square[0]"] == "Cached"
    small = client.run_pipeline(FIXTURES / "features.yaml", {"a": 0, "b": 1}).wait(120, check=True)
    assert states(small)["say-3"] == "Succeeded" and states(small)["say"] == "Skipped"
    assert small["tasks"]["total"]["outputs"]["Output"] == 1


def test_kfp_container_components_paths_retries_env_and_failing_exit_handler(
    client: Client, tmp_path: Path
) -> None:
    ir = yaml.safe_load((FIXTURES / "ops.yaml").read_text())
    h = client.run_pipeline(ir, {"marker": str(tmp_path / "flaky")})
    st = h.wait(120, check=True)
    t = st["tasks"]
    # A container component: placeholders substituted, an OutputPath(str) parameter read back.
    assert t["shout"]["outputs"]["out"] == "HEY!HEY!"
    # Concat + IfPresent placeholders, and an Output[Dataset] written by the container.
    assert t["read-path"]["outputs"]["Output"] == "HEY!HEY!? untagged"
    # InputPath / OutputPath in a lightweight component.
    assert t["read-path-2"]["outputs"]["Output"] == "hey via OutputPath"
    # retryPolicy: failed once, passed on the second attempt; its caching is off.
    assert t["flaky"]["attempts"] == 2 and t["flaky"]["outputs"]["Output"] == 2
    # set_env_variable reaches the task (and its cache key).
    assert t["env-value"]["outputs"]["Output"] == "GREETING: hello"
    assert t["report"]["outputs"]["Output"] == "SUCCEEDED"
    # A run-time placeholder in a constant, filled when the task starts.
    assert t["say"]["outputs"]["Output"] == f"run {h.name}"

    again = client.run_pipeline(ir, {"marker": str(tmp_path / "flaky")}).wait(120, check=True)
    assert states(again)["shout"] == "Cached"
    assert states(again)["flaky"] == "Succeeded"  # enableCache is off for it

    bad = client.run_pipeline(ir, {"marker": str(tmp_path / "flaky2"), "fail": True}).wait(120)
    assert bad["phase"] == "Failed"
    assert "RuntimeError: failing on purpose" in bad["tasks"]["maybe-fail"]["message"]
    assert bad["tasks"]["report"]["state"] == "Succeeded"
    assert bad["tasks"]["report"]["outputs"]["Output"] == "FAILED"


def test_a_kfp_importer_brings_a_file_in_as_an_artifact(client: Client, tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("a,b")
    ir = FIXTURES / "imports.yaml"
    st = client.run_pipeline(ir, {"uri": str(data)}).wait(60, check=True)
    assert st["outputs"] == {"Output": "a,b {'origin': 'test'}"}
    data.write_text("c,d")  # read again on the next run, not a cached copy
    st = client.run_pipeline(ir, {"uri": f"file://{data}"}).wait(60, check=True)
    assert st["outputs"] == {"Output": "c,d {'origin': 'test'}"}
    assert st["tasks"]["importer"]["artifacts"]["artifact"]["type"] == "Dataset"


def test_kfp_ignore_upstream_failure_runs_the_task_with_its_default(client: Client) -> None:
    ir = FIXTURES / "ignore.yaml"
    st = client.run_pipeline(ir, {"fail": True}).wait(60)
    assert st["phase"] == "Failed"
    assert st["tasks"]["summary"]["outputs"] == {"Output": "summary: upstream failed"}
    st = client.run_pipeline(ir, {"fail": False}).wait(60, check=True)
    assert st["tasks"]["summary"]["outputs"] == {"Output": "summary: ok"}


def test_kfp_nested_parallel_for_runs_per_outer_item(client: Client) -> None:
    st = client.run_pipeline(FIXTURES / "nested.yaml", {"n": 3}).wait(60, check=True)
    assert st["outputs"] == {"Output": 0 + (0 + 1) + (0 + 2 + 4)}
    runs = sorted(tid for tid, t in st["tasks"].items() if t["task"] == "times")
    assert runs == ["times[0][0]", "times[1][0]", "times[1][1]", "times[2][0]", "times[2][1]",
                    "times[2][2]"]  # fmt: skip
    assert st["tasks"]["times[2][1]"]["inputs"]["parameters"] == {"a": 2, "b": 1}


def test_kfp_one_of_takes_the_branch_that_ran(client: Client) -> None:
    for v, said, read in ((1, "heads", "A"), (-1, "tails", "B")):
        st = client.run_pipeline(FIXTURES / "oneof.yaml", {"v": v}).wait(60, check=True)
        assert st["outputs"] == {"Output": f"it was {said}"}
        assert st["tasks"]["read-path"]["outputs"] == {"Output": f"{read} via OutputPath"}


def test_kfp_classification_metrics_log_in_kfp_s_shape(client: Client) -> None:
    st = client.run_pipeline(FIXTURES / "metrics.yaml", {}).wait(60, check=True)
    assert st["outputs"] == {"Output": [[8, 2], [1, 9]]}
    arts = st["tasks"]["evaluate"]["artifacts"]
    assert arts["roc"]["type"] == "ClassificationMetrics"
    assert arts["roc"]["metadata"]["confidenceMetrics"][1] == {
        "confidenceThreshold": 0.5, "recall": 0.875, "falsePositiveRate": 0.25
    }  # fmt: skip
    assert arts["sliced"]["type"] == "SlicedClassificationMetrics"
    assert arts["sliced"]["metadata"] == {
        "evaluationSlices": [
            {
                "slice": "young",
                "sliceClassificationMetrics": {
                    "confusionMatrix": {
                        "annotationSpecs": [{"displayName": "neg"}, {"displayName": "pos"}],
                        "rows": [{"row": [0, 0]}, {"row": [1, 4]}],
                    }
                },
            }
        ]
    }


def test_components_loaded_from_yaml_run_in_a_shipyard_pipeline(client: Client) -> None:
    add = components.load_component_from_file(FIXTURES / "component_add.yaml")
    shout = components.load_component_from_file(FIXTURES / "component_shout.yaml")
    count = components.load_component_from_file(FIXTURES / "component_v1_word_count.yaml")

    @dsl.component
    def text(words: str, out: dsl.Output[dsl.Dataset]) -> None:
        with open(out.path, "w") as fh:
            fh.write(words)

    @dsl.component
    def read(doc: dsl.Input[dsl.Markdown]) -> str:
        with open(doc.path) as fh:
            return fh.read()

    @dsl.pipeline(name="loaded-components")
    def loaded() -> dict:
        words = text(words="one two three four")
        tagged = count(text=words.outputs["out"], extra="tagged")
        plain = count(text=words.outputs["out"], label="n")
        return {
            "sum": add(a=1, b=2).output,
            "shout": shout(msg="hi", times=2).outputs["out"],
            "count": tagged.outputs["count"],
            "tagged": read(doc=tagged.outputs["report"]).output,
            "plain": read(doc=plain.outputs["report"]).output,
        }

    st = client.run_pipeline(loaded, {}).wait(120, check=True)
    assert st["outputs"] == {
        "sum": 3,
        "shout": "HI!HI!",
        "count": 4,
        "tagged": "# words: 4 (tagged)\n",
        "plain": "# n: 4\n",
    }


def test_kfp_kubernetes_env_from_secrets_and_config_maps(client: Client) -> None:
    client.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                  "stringData": {"pw": "s3cret"}})  # fmt: skip
    client.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
                  "data": {"mode": "fast"}})  # fmt: skip
    st = client.run_pipeline(FIXTURES / "platform.yaml").wait(60, check=True)
    assert st["tasks"]["env-value"]["outputs"] == {"Output": "PASSWORD: s3cret"}
    assert st["outputs"] == {"Output": "MODE: fast"}
    pod = client.get("pods", st["tasks"]["env-value-2"]["pod"])
    assert pod["spec"]["nodeSelector"] == {"disk": "ssd"}
    assert pod["spec"]["tolerations"] == [{"key": "gpu", "operator": "Exists",
                                           "effect": "NoSchedule"}]  # fmt: skip


def test_unsupported_kfp_features_are_refused_naming_the_task(
    client: Client, cli_env: dict[str, str], tmp_path: Path
) -> None:
    ir = yaml.safe_load(HELLO.read_text())
    ir["root"]["dag"]["tasks"]["shout"]["artifactIterator"] = {"itemInput": "x"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(ir))
    r = cli(cli_env, "run", str(bad))
    assert r.returncode != 0
    assert "task 'shout'" in r.stderr and "artifactIterator" in r.stderr
    assert client.list("pipelineruns") == []


def test_kfp_empty_loop_then_failure_still_runs_the_exit_handler(client: Client) -> None:
    # a=-10: no rows, an empty ParallelFor, sum([]) == 0, and max([]) fails `stats`.
    st = client.run_pipeline(FIXTURES / "features.yaml", {"a": -10}).wait(120)
    assert st["phase"] == "Failed" and "stats" in st["message"]
    assert not any(tid.startswith("square[") for tid in st["tasks"])
    assert st["tasks"]["total"]["outputs"]["Output"] == 0
    assert st["tasks"]["report"]["outputs"]["Output"] == "FAILED"
