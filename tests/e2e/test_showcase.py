"""What `make up` applies for a new user to follow in the dashboard: a pipeline run, an
experiment and a served model (examples/showcase/), all reaching their end state."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from platform_fixtures import EXAMPLES
from shipyard.client import Client, read_sources

pytest.importorskip("sklearn")


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A copy of examples/ with the iris models trained into it (the repo stays clean)."""
    dest = tmp_path / "examples"
    for part in ("showcase", "serving", "tuning", "pipelines"):
        shutil.copytree(EXAMPLES / part, dest / part, ignore=shutil.ignore_patterns("models"))
    subprocess.run(
        [sys.executable, str(dest / "serving" / "train_iris.py")], check=True, timeout=120
    )
    return dest


@pytest.mark.timeout(300)
def test_showcase_runs_end_to_end(client: Client, examples: Path) -> None:
    results = client.apply_documents(read_sources([examples / "showcase"]))
    assert sorted(r.ref for r in results) == [
        "experiment/gbm-demo",
        "inferenceservice/iris-demo",
        "pipelinerun/iris-demo",
    ]
    run = client.wait("pipelinerun", "iris-demo", phase="Succeeded,Failed", timeout=240)
    assert run is not None and run["status"]["phase"] == "Succeeded"
    isvc = client.wait("isvc", "iris-demo", condition="Ready", timeout=120)
    assert isvc is not None
    body = yaml.safe_load((EXAMPLES / "serving" / "input-v2.json").read_text())
    r = httpx.post(
        f"{client.url}/serving/default/iris-demo/v2/models/iris-demo/infer", json=body, timeout=60
    )
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"]
    exp = client.wait(
        "experiment", "gbm-demo", jsonpath="{.status.trialsSucceeded}=12", timeout=240
    )
    assert exp is not None
    best = exp["status"]["currentOptimalTrial"]["observation"]["metrics"][0]
    assert 0.8 < float(best["max"] if "max" in best else best["latest"]) <= 1.0


def test_showcase_run_matches_the_pipeline_source() -> None:
    """examples/showcase/iris-run.yaml is what scripts/gen-showcase.py writes today."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, str(root / "scripts" / "gen-showcase.py"), "--print"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert proc.stdout == (EXAMPLES / "showcase" / "iris-run.yaml").read_text()
