"""InferenceServices whose storageUri is a registry ``models:/`` URI, resolved in the
service's namespace: a pinned version, an alias that moves (a new revision takes over), and
a URI naming no registered model (refused at apply)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.client import Client
from shipyard.errors import Invalid

pytestmark = pytest.mark.e2e
NS = "team-models"
ROW = [6.8, 2.8, 4.8, 1.4]


def _train(folder: Path, offset: int) -> Path:
    """An iris classifier whose class labels are shifted by ``offset`` (so versions differ)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    folder.mkdir(parents=True)
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=1000).fit(x, y + offset), folder / "model.joblib")
    return folder


def _isvc(name: str, uri: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri}}},
    }


def _predict(c: Client, name: str) -> Any:
    url = c.get("isvc", name, NS)["status"]["url"]
    r = httpx.post(f"{url}/v1/models/{name}:predict", json={"instances": [ROW]}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["predictions"]


def _eventually(check: Callable[[], Any], timeout: float = 90.0) -> Any:
    import time

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, KeyError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out; last: {last!r}")


def test_models_uri_version_alias_and_missing(client: Client, tmp_path: Path) -> None:
    client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    client.register_model("iris", str(_train(tmp_path / "v1", 0)), namespace=NS)
    client.register_model("iris", str(_train(tmp_path / "v2", 10)), namespace=NS)
    client.set_alias("iris", "production", 1, namespace=NS)

    client.apply(_isvc("pinned", "models:/iris/2"))
    client.apply(_isvc("prod", "models:/iris@production"))
    client.wait_isvc_ready("pinned", namespace=NS, timeout=90)
    client.wait_isvc_ready("prod", namespace=NS, timeout=90)
    assert _predict(client, "pinned") == [11]
    assert _predict(client, "prod") == [1]

    # Moving the alias rolls the service onto the version it now names.
    first = client.get("isvc", "prod", NS)["status"]["components"]["predictor"]
    client.set_alias("iris", "production", 2, namespace=NS)
    _eventually(lambda: _predict(client, "prod") == [11])
    pred = client.get("isvc", "prod", NS)["status"]["components"]["predictor"]
    assert pred["latestRolledoutRevision"] != first["latestRolledoutRevision"]

    # A URI naming no registered model is refused when applied, naming it.
    with pytest.raises(Invalid, match="other"):
        client.apply(_isvc("later", "models:/other@production"))
