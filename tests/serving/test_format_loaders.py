"""The built-in loaders for xgboost, lightgbm, TorchScript and ONNX, each with a tiny model
made here, served by a real model server process and checked against the library's own
predictions. Each format's library is an optional extra: its test is skipped without it, and
the model server imports none of them until a model of that format loads."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

Maker = Callable[[Path, np.ndarray, np.ndarray], np.ndarray]
Launcher = Callable[[list[str], Path], tuple[subprocess.Popen[bytes], str]]


def _iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y


def _xgboost(folder: Path, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xgb = pytest.importorskip("xgboost")
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 2}
    booster = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=5)
    booster.save_model(str(folder / "model.json"))
    return np.asarray(booster.predict(xgb.DMatrix(x[:3])))


def _lightgbm(folder: Path, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    lgb = pytest.importorskip("lightgbm")
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 4, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(x, label=y, params={"verbose": -1}), 5)
    booster.save_model(str(folder / "model.txt"))
    return np.asarray(booster.predict(x[:3]))


def _torchscript(folder: Path, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is what KServe loads
        scripted = torch.jit.script(net)
    scripted.save(str(folder / "model.pt"))
    with torch.no_grad():
        return np.asarray(net(torch.from_numpy(x[:3])).numpy())


def _onnx(folder: Path, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=1000).fit(x, y)
    onx = skl2onnx.convert_sklearn(
        clf, initial_types=[("x", FloatTensorType([None, 4]))], options={"zipmap": False}
    )
    (folder / "model.onnx").write_bytes(onx.SerializeToString())
    return np.asarray(clf.predict(x[:3]))


FORMATS: dict[str, Maker] = {
    "xgboost": _xgboost,
    "lightgbm": _lightgbm,
    "pytorch": _torchscript,
    "onnx": _onnx,
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_format_is_served(fmt: str, tmp_path: Path, launch_server: Launcher) -> None:
    x, y = _iris()
    folder = tmp_path / "model"
    folder.mkdir()
    expected = FORMATS[fmt](folder, x, y)
    proc, url = launch_server(["--model", f"m:{fmt}:{folder}"], tmp_path / "server.log")
    try:
        rows = x[:3].tolist()
        body = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32", "data": rows}]}
        r = httpx.post(f"{url}/v2/models/m/infer", json=body, timeout=30)
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        got = np.asarray(out["data"]).reshape(out["shape"])
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
        # V1 too, and the metadata names the feature count the model was built with.
        r1 = httpx.post(f"{url}/v1/models/m:predict", json={"instances": rows}, timeout=30)
        assert r1.status_code == 200, r1.text
        np.testing.assert_allclose(r1.json()["predictions"], expected, rtol=1e-4, atol=1e-5)
        bad = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
        r2 = httpx.post(f"{url}/v2/models/m/infer", json=bad, timeout=30)
        if fmt != "pytorch":  # a TorchScript module does not declare its input width
            assert r2.status_code == 400 and "expects 4" in r2.json()["error"], r2.text
    finally:
        proc.terminate()
        proc.wait(10)


def test_model_server_imports_no_ml_library_it_does_not_load() -> None:
    code = (
        "import sys, json; import shipyard.serving.server, shipyard.serving.transformer; "
        "print(json.dumps([m for m in ('torch', 'xgboost', 'lightgbm', 'onnxruntime') "
        "if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
