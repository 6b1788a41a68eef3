"""The dashboard in a real browser (Debian's Chromium via Playwright) against an embedded
platform: follow a pipeline run, an experiment, a registered model and a served model the way
a person would, and assert what the page shows."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Page, expect

from shipyard import dsl
from shipyard.client import Client

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ARTIFACTS = ROOT / "test-artifacts" / "ui"  # git-ignored
DONE = re.compile(r"^(Succeeded|Failed|Cancelled)$")


def open_page(page: Page, c: Client, route: str) -> None:
    page.goto(f"{c.url}/#/{route}")


def shot(page: Page, name: str) -> None:
    """A screenshot of what the page shows now, kept as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_root_serves_the_dashboard_to_browsers_and_json_to_clients(platform_client: Client) -> None:
    c = platform_client
    html = httpx.get(c.url + "/", headers={"accept": "text/html"})
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    script = re.search(r'src="(/ui/assets/[^"]+\.js)"', html.text)
    assert script, html.text
    asset = httpx.get(c.url + script.group(1))
    assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
    assert httpx.get(c.url + "/").json()["name"] == "shipyard"


def test_pipeline_run_dag_live_states_logs_and_artifacts(
    platform_client: Client, page: Page
) -> None:
    c = platform_client
    run = c.run_pipeline(str(EXAMPLES / "pipelines" / "iris_train.py"), {})
    open_page(page, c, "default/runs")
    page.get_by_role("link", name=run.name).click()
    # The DAG is drawn (cytoscape canvas) and the page follows the run live, no reload.
    expect(page.locator("#dag canvas").first).to_be_visible()
    expect(page.locator("#run-phase [data-state]")).to_have_text(DONE, timeout=180_000)
    status = run.wait(timeout=30)
    assert status["phase"] == "Succeeded"
    expect(page.locator("#run-phase")).to_have_text("Succeeded")
    for task, entry in status["tasks"].items():
        expect(page.locator(f'tr[data-task="{task}"] [data-state]')).to_have_text(entry["state"])
    expect(page.locator('tr[data-task="report-low"]')).to_contain_text("Skipped")
    # A task's panel: its metrics artifact as a table and its log.
    page.locator('tr[data-task="evaluate"]').click()
    panel = page.locator("#task-panel")
    accuracy = status["tasks"]["evaluate"]["outputs"]["Output"]
    expect(panel.locator('[data-artifact="metrics"] table.metrics')).to_contain_text("accuracy")
    expect(panel.locator('[data-artifact="metrics"]')).to_contain_text(str(accuracy))
    expect(page.locator("#task-logs")).to_contain_text(f"accuracy={accuracy}")
    shot(page, "pipeline-run-page")
    page.locator('tr[data-task="report-low"]').click()
    expect(page.locator("#task-logs")).to_have_text("(skipped: no pod ran)")
    # Back on the list the run shows its final state.
    page.get_by_role("link", name="Pipeline runs").first.click()
    expect(page.locator(f'tr[data-name="{run.name}"]')).to_contain_text("Succeeded")


def test_the_run_graph_draws_an_exit_handler_after_the_tasks_it_guards(
    platform_client: Client, page: Page
) -> None:
    c = platform_client
    run = c.run_pipeline(str(EXAMPLES / "pipelines" / "exit_handler.py"), {"fail": True})
    assert run.wait(timeout=60)["phase"] == "Failed"
    open_page(page, c, f"default/runs/{run.name}")
    expect(page.locator('tr[data-task="cleanup"]')).to_contain_text("Succeeded")
    # cytoscape keeps its instance on the container; each edge: source, target, kind.
    edges = page.evaluate(
        """() => document.querySelector("#dag")._cyreg.cy.edges()
        .map((e) => [e.source().id(), e.target().id(), e.data("kind"),
                     e.style("line-style")])"""
    )
    assert edges == [["work", "cleanup", "exit", "dashed"]]
    shot(page, "exit-handler-run-page")


@dsl.component
def roc_scores(
    roc: dsl.Output[dsl.ClassificationMetrics], sliced: dsl.Output[dsl.SlicedClassificationMetrics]
) -> None:
    roc.log_roc_curve(fpr=[0.0, 0.25, 1.0], tpr=[0.0, 0.75, 1.0], threshold=[0.9, 0.5, 0.1])
    roc.log_confusion_matrix(["cat", "dog"], [[7, 1], [2, 5]])
    sliced.load_confusion_matrix("indoor", ["cat", "dog"], [[3, 0], [1, 2]])
    sliced.load_roc_readings("outdoor", [[0.5, 0.6, 0.2]])


@dsl.pipeline(name="ui-metrics")
def _metrics_pipeline() -> None:
    roc_scores()


def test_classification_metrics_show_an_roc_chart_and_a_confusion_matrix(
    platform_client: Client, page: Page
) -> None:
    c = platform_client
    run = c.run_pipeline(_metrics_pipeline, {})
    assert run.wait(timeout=60)["phase"] == "Succeeded"
    open_page(page, c, f"default/runs/{run.name}")
    page.locator('tr[data-task="roc-scores"]').click()
    card = page.locator('#task-panel [data-artifact="roc"]')
    # The ROC curve is drawn with ECharts' SVG renderer: its axis names are text in the page.
    expect(card.locator(".roc svg")).to_contain_text("false positive rate")
    expect(card.locator(".roc svg")).to_contain_text("true positive rate")
    rows = card.locator("table.confusion tr")
    expect(rows.nth(1)).to_have_text(re.compile(r"^\s*cat\s*7\s*1\s*$"))
    expect(rows.nth(2)).to_have_text(re.compile(r"^\s*dog\s*2\s*5\s*$"))
    sliced = page.locator('#task-panel [data-artifact="sliced"]')
    expect(sliced.locator('[data-slice="indoor"] table.confusion tr').nth(2)).to_have_text(
        re.compile(r"^\s*dog\s*1\s*2\s*$")
    )
    expect(sliced.locator('[data-slice="outdoor"] .roc svg')).to_contain_text("true positive rate")
    expect(page.locator("#task-logs")).to_have_text("(no output)")  # it printed nothing
    # A one-task graph is not blown up to fill its box.
    assert page.evaluate('() => document.querySelector("#dag")._cyreg.cy.zoom()') <= 1.5
    shot(page, "classification-metrics")


def _gbm_experiment(trials: int) -> dict[str, Any]:
    path = EXAMPLES / "tuning" / "gbm-experiment.yaml"
    exp: dict[str, Any] = yaml.safe_load(path.read_text())
    exp["metadata"]["name"] = "gbm-ui"
    exp["metadata"].setdefault("annotations", {})["shipyard.dev/source-dir"] = str(path.parent)
    exp["spec"]["maxTrialCount"] = trials
    return exp


def test_experiment_trials_best_trial_and_charts(platform_client: Client, page: Page) -> None:
    c = platform_client
    c.create(_gbm_experiment(trials=4))
    open_page(page, c, "default/experiments")
    page.get_by_role("link", name="gbm-ui").click()
    # The page updates live as trials finish.
    expect(page.locator("table.trials tbody tr")).to_have_count(4, timeout=180_000)
    done = c.wait_experiment("gbm-ui", timeout=180)
    best = done["status"]["currentOptimalTrial"]
    best_value = next(
        m["latest"] for m in best["observation"]["metrics"] if m["name"] == "accuracy"
    )
    card = page.locator("#best-trial")
    expect(card).to_contain_text(best["bestTrialName"])
    expect(card).to_contain_text(f"{float(best_value):.4g}")
    expect(page.locator("tr.best")).to_have_attribute("data-trial", best["bestTrialName"])
    trials = c.list("trials", selector="experiment=gbm-ui")
    for t in trials:
        expect(page.locator(f'tr[data-trial="{t["metadata"]["name"]}"]')).to_contain_text(
            "Succeeded"
        )
    # Charts: objective per trial with the best-so-far line; parameters vs the objective.
    expect(page.locator("#objective-chart svg")).to_contain_text("best so far")
    for axis in ("n_estimators", "learning_rate", "max_depth", "subsample", "accuracy"):
        expect(page.locator("#parallel-chart svg")).to_contain_text(axis)


def test_model_alias_lineage_and_served_prediction(platform_client: Client, page: Page) -> None:
    c = platform_client
    run = c.run_pipeline(str(EXAMPLES / "registry" / "train_register.py"), {})
    run.wait(timeout=240, check=True)
    version = c.list("modelversions")[0]
    assert version["spec"]["modelName"] == "iris"
    n = version["spec"]["version"]
    open_page(page, c, "default/models")
    page.get_by_role("link", name="iris").click()
    row = page.locator(f'tr[data-version="{n}"]')
    expect(row).to_be_visible()
    # Point the "production" alias at it from the page.
    page.get_by_label("alias").fill("production")
    row.get_by_role("button", name="set alias").click()
    expect(page.locator(f'tr[data-version="{n}"]')).to_contain_text("production")
    assert c.get("registeredmodels", "iris")["spec"]["aliases"] == {"production": n}
    # Lineage: the version, the run that produced it and the pipeline run behind it.
    nodes = page.locator("table.lineage-nodes")
    expect(nodes).to_contain_text("ModelVersion")
    expect(nodes).to_contain_text("PipelineRun")
    expect(nodes).to_contain_text(run.name)
    expect(page.locator("#lineage canvas").first).to_be_visible()
    shot(page, "model-page")

    # Serve it: paste the example manifest into the YAML editor and apply.
    open_page(page, c, "default/apply")
    text = (EXAMPLES / "registry" / "iris-production.yaml").read_text()
    page.locator("#yaml-editor").fill(text)
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#apply-result")).to_contain_text("InferenceService/iris created")
    page.get_by_role("link", name="Inference services").click()
    page.get_by_role("link", name="iris").click()
    expect(page.locator("h1 [data-state]")).to_have_text("Ready", timeout=120_000)
    rev = page.locator("table.revisions tbody tr").first
    expect(rev).to_contain_text("100%")
    expect(rev.locator("td.replicas")).to_have_text(re.compile(r"^[1-9]\d*/[1-9]\d*$"))
    # Try it: a V2 request from the form; the page shows what the model answers.
    body = (EXAMPLES / "serving" / "input-v2.json").read_text()
    page.locator("#infer-input").fill(body)
    page.get_by_role("button", name="Send request").click()
    direct = httpx.post(
        f"{c.url}/serving/default/iris/v2/models/iris/infer",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    ).json()
    expect(page.locator("#infer-output")).to_contain_text("HTTP 200")
    shown = page.locator("#infer-output td.prediction").first.inner_text()
    assert json.loads(shown) == direct["outputs"][0]["data"]
    # Request rate and latency: the panel (polled from the gateway's _stats) counts them.
    panel = page.locator("#requests")
    nonzero = re.compile(r"[1-9]")
    for stat in ("#req-count", "#req-rate", "#req-p50", "#req-p95"):
        expect(panel.locator(stat)).to_have_text(nonzero)
    expect(panel.locator("table.revision-stats tbody tr").first.locator("td.count")).to_have_text(
        nonzero
    )
    expect(page.locator("#requests-chart svg")).to_contain_text("req/s")
    shot(page, "inference-service-page")


def test_yaml_view_delete_and_namespace_switcher(platform_client: Client, page: Page) -> None:
    c = platform_client
    c.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-ui"}})
    c.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "team-ui"},
            "data": {"greeting": "hello from the ui test"},
        }
    )
    open_page(page, c, "default/r")
    page.get_by_label("Namespace").select_option("team-ui")
    expect(page).to_have_url(re.compile(r"#/team-ui/r$"))
    page.get_by_role("link", name="ConfigMap", exact=True).click()
    page.get_by_role("link", name="settings").click()
    expect(page.locator("#object-yaml")).to_contain_text("greeting: hello from the ui test")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.locator(".empty")).to_contain_text("No configmaps")
    assert c.list("configmaps", namespace="team-ui") == []


def test_the_runs_page_lists_recurring_runs_when_there_are_some(
    platform_client: Client, page: Page
) -> None:
    c = platform_client
    for ns in ("team-rr", "team-none"):
        c.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    pipeline = c.compile_pipeline(str(EXAMPLES / "pipelines" / "fan_out.py"))
    pipeline["metadata"]["namespace"] = "team-rr"
    c.apply(pipeline)
    c.apply(
        {
            "apiVersion": "shipyard.dev/v1",
            "kind": "RecurringRun",
            "metadata": {"name": "nightly", "namespace": "team-rr"},
            "spec": {"schedule": "0 3 * * *", "pipelineRef": {"name": "fan-out"}},
        }
    )
    open_page(page, c, "team-rr/runs")
    section = page.locator("#recurring-runs")
    expect(section.get_by_role("heading", name="Recurring runs")).to_be_visible()
    row = section.locator('tr[data-name="nightly"]')
    expect(row).to_contain_text("0 3 * * *")
    expect(page.locator(".empty")).to_contain_text("No pipelineruns")  # and no runs yet
    row.get_by_role("link", name="nightly").click()
    expect(page.locator("#object-yaml")).to_contain_text("schedule: 0 3 * * *")
    open_page(page, c, "team-none/runs")
    expect(page.locator(".empty")).to_contain_text("No pipelineruns")
    expect(page.get_by_role("heading", name="Recurring runs")).to_have_count(0)


def test_lists_show_the_newest_first_or_by_name(platform_client: Client, page: Page) -> None:
    c = platform_client
    c.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-order"}})
    made = ["a-first", "c-second", "b-third", "d-fourth"]
    for name in made:
        c.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "team-order"},
            }
        )
    open_page(page, c, "team-order/r/core/v1/configmaps")
    rows = page.locator("table.resource-list tbody tr")
    expect(rows).to_have_count(4)
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.name)") == made[::-1]
    page.get_by_label("Order").select_option("name")
    expect(rows.first).to_have_attribute("data-name", "a-first")  # redrawn
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.name)") == sorted(made)


def test_training_job_replica_states_and_logs(platform_client: Client, page: Page) -> None:
    c = platform_client
    path = EXAMPLES / "training" / "tfjob.yaml"
    job: dict[str, Any] = yaml.safe_load(path.read_text())
    job["metadata"]["annotations"] = {"shipyard.dev/source-dir": str(path.parent)}
    c.create(job)
    name = job["metadata"]["name"]
    open_page(page, c, "default/training?kind=kubeflow.org/tfjobs")
    page.get_by_role("link", name=name).click()
    expect(page.locator("h1 [data-state]")).to_have_text("Succeeded", timeout=120_000)
    done = c.get("tfjobs", name)
    for rtype, counts in done["status"]["replicaStatuses"].items():
        expect(page.locator(f'tr[data-replica-type="{rtype}"]')).to_contain_text(
            str(counts.get("succeeded", 0))
        )
    pods = c.list("pods", selector=f"training.kubeflow.org/job-name={name}")
    expect(page.locator("table.pods tbody tr")).to_have_count(len(pods))
    first = pods[0]["metadata"]["name"]
    page.locator(f'tr[data-pod="{first}"]').get_by_role("button", name="logs").click()
    logs = "".join(c.logs(first))
    expect(page.locator("#replica-logs")).to_have_text(logs)
