"""The transformer component (KServe's spec.transformer) on a real platform: the example's
custom Python transformer runs as its own replica in front of the sklearn predictor, V1 and
V2 requests go gateway → transformer → gateway → predictor, and a spec without a transformer
command is refused naming the field."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from platform_fixtures import EXAMPLES
from shipyard.client import Client
from shipyard.errors import Invalid

pytestmark = pytest.mark.e2e


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    dest = tmp_path / "serving"
    shutil.copytree(EXAMPLES / "serving", dest, ignore=shutil.ignore_patterns("models"))
    subprocess.run([sys.executable, str(dest / "train_iris.py")], check=True, timeout=120)
    return dest


def test_transformer_example(client: Client, examples: Path) -> None:
    client.apply(examples / "transformer.yaml")
    client.wait_isvc_ready("iris-named", timeout=90)
    isvc = client.get("isvc", "iris-named")
    status = isvc["status"]
    conds = {c["type"]: c["status"] for c in status["conditions"]}
    assert conds["TransformerReady"] == "True" and conds["Ready"] == "True"
    assert status["components"]["transformer"]["latestReadyRevision"].startswith(
        "iris-named-transformer-"
    )
    pods = client.list("pods", selector="serving.kserve.io/inferenceservice=iris-named")
    assert sorted(p["metadata"]["labels"]["component"] for p in pods) == [
        "predictor",
        "transformer",
    ]
    url = status["url"]
    named = {
        "sepal_length": 6.8,
        "sepal_width": 2.8,
        "petal_length": 4.8,
        "petal_width": 1.4,
    }
    setosa = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    r = httpx.post(
        f"{url}/v1/models/iris-named:predict", json={"instances": [named, setosa]}, timeout=30
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": ["versicolor", "setosa"]}
    # V2 passes tensors through; the transformer adds a BYTES output.
    body = {
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [6.8, 2.8, 4.8, 1.4]}]
    }
    r2 = httpx.post(f"{url}/v2/models/iris-named/infer", json=body, timeout=30)
    assert r2.status_code == 200, r2.text
    outs = {o["name"]: o for o in r2.json()["outputs"]}
    assert outs["output-0"]["data"] == [1]
    assert outs["species"] == {
        "name": "species",
        "shape": [1],
        "datatype": "BYTES",
        "data": ["versicolor"],
    }
    # Bad input is the transformer's error, in the protocol's shape.
    r3 = httpx.post(f"{url}/v1/models/iris-named:predict", json={"instances": [{"x": 1}]})
    assert r3.status_code == 500 and "sepal_length" in r3.json()["error"]
    # The predictor stays reachable on its own, as KServe's NAME-predictor.
    r4 = httpx.post(
        f"{client.url}/serving/default/iris-named-predictor/v1/models/iris-named:predict",
        json={"instances": [[6.8, 2.8, 4.8, 1.4]]},
    )
    assert r4.status_code == 200 and r4.json() == {"predictions": [1]}


def test_transformer_needs_a_command(client: Client) -> None:
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "no-cmd"},
        "spec": {
            "transformer": {"containers": [{"name": "kserve-container", "image": "x"}]},
            "predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "/tmp"}},
        },
    }
    with pytest.raises(Invalid, match=r"spec\.transformer\.containers"):
        client.apply(isvc)
