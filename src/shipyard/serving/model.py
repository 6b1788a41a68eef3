"""Models the server hosts: the ``Model`` base class (in the spirit of ``kserve.Model``) and
the built-in formats (sklearn, xgboost, lightgbm, TorchScript, ONNX).

A custom model subclasses :class:`Model` in a Python file and overrides ``load``,
``preprocess``, ``predict`` and ``postprocess``. Heavy libraries are imported only in
``load`` of the format that needs them.

What ``preprocess`` receives: for V1 the ``instances`` list; for V2 a dict of input name to
numpy array. ``postprocess`` returns a numpy array, a dict of output name to array (V2), or
anything JSON-serialisable (V1 ``predictions``).
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.serving.protocol import ProtocolError


class Model:
    """Base of every hosted model."""

    # True when rows are independent, so the server may concatenate the rows of concurrent
    # requests into one predict call (adaptive batching).
    batchable = False

    def __init__(self, name: str, path: Path | None = None) -> None:
        self.name = name
        self.path = path
        self.ready = False
        self.version: str | None = None

    def load(self) -> None:
        self.ready = True

    def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        return payload

    def predict(self, inputs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement predict()")

    def postprocess(self, outputs: Any, headers: dict[str, str] | None = None) -> Any:
        return outputs

    def metadata(self) -> dict[str, Any]:
        return {"inputs": [], "outputs": []}


class ArrayModel(Model):
    """A model taking one 2-D numeric array (rows of features) and returning one array."""

    batchable = True
    library = ""
    filenames: tuple[str, ...] = ()
    n_features: int | None = None

    def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        if isinstance(payload, dict):
            if len(payload) != 1:
                raise ProtocolError(
                    f"model {self.name!r} takes one input, got {len(payload)}: "
                    + ", ".join(payload)
                )
            ((name, arr),) = payload.items()
        else:
            name = "instances"
            try:
                arr = np.asarray(payload)
            except ValueError as exc:
                raise ProtocolError(f"instances are not a rectangular array: {exc}") from None
        if arr.dtype.kind not in "biuf":
            raise ProtocolError(
                f"input {name!r}: model {self.name!r} needs numbers, got {arr.dtype} data"
            )
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2:
            raise ProtocolError(f"input {name!r}: shape {list(arr.shape)} must be [rows, features]")
        if self.n_features is not None and arr.shape[1] != self.n_features:
            raise ProtocolError(
                f"input {name!r}: shape {list(arr.shape)} has {arr.shape[1]} features, "
                f"model {self.name!r} expects {self.n_features}"
            )
        return arr

    def metadata(self) -> dict[str, Any]:
        feats = self.n_features if self.n_features is not None else -1
        return {
            "platform": self.library,
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, feats]}],
            "outputs": [{"name": "output-0", "datatype": "FP64", "shape": [-1]}],
        }

    def model_file(self) -> Path:
        if self.path is None:
            raise FileNotFoundError(f"model {self.name!r} has no storage path")
        if self.path.is_file():
            return self.path
        for fname in self.filenames:
            if (self.path / fname).is_file():
                return self.path / fname
        suffixes = {Path(f).suffix for f in self.filenames}
        found = sorted(p for p in self.path.iterdir() if p.suffix in suffixes)
        if len(found) == 1:
            return found[0]
        raise FileNotFoundError(
            f"no {self.library} model in {self.path}: expected one of {', '.join(self.filenames)}"
        )


class SKLearnModel(ArrayModel):
    library = "sklearn"
    filenames = ("model.joblib", "model.pkl", "model.pickle")

    def load(self) -> None:
        import joblib

        self._model = joblib.load(self.model_file())
        n = getattr(self._model, "n_features_in_", None)
        self.n_features = int(n) if n is not None else None
        self._predict = self._model.predict
        self.ready = True

    def predict(self, inputs: Any) -> Any:
        return self._predict(inputs)


class XGBoostModel(ArrayModel):
    library = "xgboost"
    filenames = ("model.bst", "model.json", "model.ubj")

    def load(self) -> None:
        import xgboost as xgb

        self._xgb = xgb
        self._model = xgb.Booster(model_file=str(self.model_file()))
        self.n_features = self._model.num_features()
        self.ready = True

    def predict(self, inputs: Any) -> Any:
        return self._model.predict(self._xgb.DMatrix(inputs))


class LightGBMModel(ArrayModel):
    library = "lightgbm"
    filenames = ("model.bst", "model.txt")

    def load(self) -> None:
        import lightgbm as lgb

        self._model = lgb.Booster(model_file=str(self.model_file()))
        self.n_features = self._model.num_feature()
        self.ready = True

    def predict(self, inputs: Any) -> Any:
        return self._model.predict(inputs)


class TorchScriptModel(ArrayModel):
    library = "pytorch"
    filenames = ("model.pt", "model.pth")

    def load(self) -> None:
        import torch

        self._torch = torch
        self._model = torch.jit.load(  # type: ignore[no-untyped-call,unused-ignore]
            str(self.model_file()), map_location="cpu"
        )
        self._model.eval()
        self.ready = True

    def predict(self, inputs: Any) -> Any:
        with self._torch.no_grad():
            x = self._torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
            return self._model(x).numpy()


class ONNXModel(ArrayModel):
    library = "onnx"
    filenames = ("model.onnx",)

    def load(self) -> None:
        import onnxruntime as ort

        self._session = ort.InferenceSession(str(self.model_file()))
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        shape = inp.shape
        if len(shape) == 2 and isinstance(shape[1], int):
            self.n_features = shape[1]
        self.ready = True

    def predict(self, inputs: Any) -> Any:
        x = np.ascontiguousarray(inputs, dtype=np.float32)
        return self._session.run(None, {self._input: x})[0]


FORMATS: dict[str, type[Model]] = {
    "sklearn": SKLearnModel,
    "xgboost": XGBoostModel,
    "lightgbm": LightGBMModel,
    "pytorch": TorchScriptModel,
    "torchscript": TorchScriptModel,
    "onnx": ONNXModel,
}
CUSTOM_FORMATS = ("custom", "python")


def load_custom_class(path: Path) -> type[Model]:
    """The :class:`Model` subclass defined in a Python file (or ``model.py`` in a folder)."""
    file = path / "model.py" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"custom model: {file} does not exist")
    mod_name = f"shipyard_custom_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(mod_name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"custom model: cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    sys.path.insert(0, str(file.parent))
    spec.loader.exec_module(module)
    classes = [
        c
        for _, c in inspect.getmembers(module, inspect.isclass)
        if issubclass(c, Model) and c.__module__ == mod_name
    ]
    if len(classes) != 1:
        raise ImportError(
            f"custom model: {file} must define exactly one subclass of "
            f"shipyard.serving.model.Model, found {len(classes)}"
        )
    return classes[0]


def create_model(name: str, fmt: str, path: Path | None) -> Model:
    """A model object of a format (not loaded yet)."""
    fmt = fmt.lower()
    if fmt in CUSTOM_FORMATS:
        if path is None:
            raise FileNotFoundError("a custom model needs a storageUri pointing at its .py file")
        custom: Model = load_custom_class(path)(name, path)
        return custom
    cls = FORMATS.get(fmt)
    if cls is None:
        raise ValueError(
            f"unknown model format {fmt!r}; use one of {', '.join([*FORMATS, *CUSTOM_FORMATS])}"
        )
    return cls(name, path)
