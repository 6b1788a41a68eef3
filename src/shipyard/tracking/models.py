"""Saving models in the formats Shipyard's serving runtimes load.

=============  ======================  ============================================
format         file                    how
=============  ======================  ============================================
sklearn        ``model.joblib``        ``joblib.dump`` (any scikit-learn estimator)
xgboost        ``model.json``          ``Booster.save_model`` (sklearn API too)
lightgbm       ``model.txt``           ``Booster.save_model`` (sklearn API too)
pytorch        ``model.pt``            TorchScript: ``torch.jit.script`` (or ``trace``
                                       with ``input_example``), ``ScriptModule.save``
onnx           ``model.onnx``          ``onnx.save`` of a ModelProto (or its bytes)
=============  ======================  ============================================

The library of a model is recognised from its class's module, so nothing is imported that
the model itself did not already need.
"""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILES = {
    "sklearn": "model.joblib",
    "xgboost": "model.json",
    "lightgbm": "model.txt",
    "pytorch": "model.pt",
    "onnx": "model.onnx",
}


@dataclass
class Saved:
    format: str
    file: str
    framework_versions: dict[str, str] = field(default_factory=dict)
    signature: dict[str, Any] | None = None


def detect_format(model: Any) -> str:
    if isinstance(model, bytes | bytearray):
        return "onnx"
    for cls in type(model).__mro__:
        root = (cls.__module__ or "").split(".")[0]
        if root in ("sklearn", "imblearn"):
            return "sklearn"
        if root == "xgboost":
            return "xgboost"
        if root == "lightgbm":
            return "lightgbm"
        if root == "torch":
            return "pytorch"
        if root == "onnx":
            return "onnx"
    raise TypeError(
        f"cannot tell which library a {type(model).__module__}.{type(model).__name__} "
        f"comes from; pass format= one of {', '.join(FILES)}"
    )


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    names = {"sklearn": "scikit-learn"}
    try:
        return version(names.get(module, module))
    except PackageNotFoundError:
        return "unknown"


def save(model: Any, folder: Path, fmt: str | None = None, input_example: Any = None) -> Saved:
    """Write ``model`` into ``folder`` in its serving format; return what was written."""
    fmt = (fmt or detect_format(model)).lower()
    if fmt == "torchscript":
        fmt = "pytorch"
    if fmt not in FILES:
        raise ValueError(f"unknown model format {fmt!r}: use one of {', '.join(FILES)}")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / FILES[fmt]
    libs = {
        "sklearn": "sklearn",
        "xgboost": "xgboost",
        "lightgbm": "lightgbm",
        "pytorch": "torch",
        "onnx": "onnx",
    }
    if fmt == "sklearn":
        import joblib

        joblib.dump(model, target)
        libs_extra = {"joblib": _version("joblib")}
    elif fmt == "xgboost":
        booster = model.get_booster() if hasattr(model, "get_booster") else model
        booster.save_model(str(target))
        libs_extra = {}
    elif fmt == "lightgbm":
        booster = model.booster_ if hasattr(model, "booster_") else model
        booster.save_model(str(target))
        libs_extra = {}
    elif fmt == "pytorch":
        _save_torch(model, target, input_example)
        libs_extra = {}
    else:
        if isinstance(model, bytes | bytearray):
            target.write_bytes(bytes(model))
        else:
            import onnx

            onnx.save(model, str(target))
        libs_extra = {}
    versions = {libs[fmt]: _version(libs[fmt]), "python": _platform.python_version(), **libs_extra}
    return Saved(fmt, target.name, versions, signature_of(model, input_example))


def _save_torch(model: Any, target: Path, input_example: Any) -> None:
    import torch

    if isinstance(model, torch.jit.ScriptModule):
        scripted = model
    elif input_example is not None:
        example = torch.as_tensor(_as_array(input_example), dtype=torch.float32)
        scripted = torch.jit.trace(model.eval(), example)  # type: ignore[no-untyped-call]
    else:
        scripted = torch.jit.script(model.eval())
    scripted.save(str(target))


def _as_array(x: Any) -> Any:
    import numpy as np

    return np.asarray(x)


_DTYPES = {
    "float64": "FP64",
    "float32": "FP32",
    "int64": "INT64",
    "int32": "INT32",
    "bool": "BOOL",
    "object": "BYTES",
}


def signature_of(model: Any, input_example: Any) -> dict[str, Any] | None:
    """Inputs (and, for estimators that say so, the feature count) of a model."""
    if input_example is not None:
        arr = _as_array(input_example)
        shape = [-1, *[int(d) for d in arr.shape[1:]]]
        return {
            "inputs": [
                {"name": "input-0", "datatype": _DTYPES.get(str(arr.dtype), "FP64"), "shape": shape}
            ]
        }
    n = getattr(model, "n_features_in_", None)
    if isinstance(n, int):
        return {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, n]}]}
    return None
