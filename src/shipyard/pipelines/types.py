"""Artifact classes and the ``Input``/``Output`` annotations, in kfp.dsl v2's shapes.

Shared by the DSL (at compile time) and the executor (inside the task's Pod); light on
purpose: it imports nothing beyond the standard library.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any, NamedTuple, TypeVar

T = TypeVar("T")


class _InputMarker:
    pass


class _OutputMarker:
    pass


Input = Annotated[T, _InputMarker]
Output = Annotated[T, _OutputMarker]


class InputPath:
    """kfp's ``InputPath(Dataset)`` (or ``InputPath('Dataset')``): the component gets the
    local path of the input artifact, a str. With a parameter type (``InputPath(int)``) the
    input is a parameter, and the component gets the path of a file holding its value (as
    :func:`value_to_text` writes it)."""

    def __init__(self, type: Any = None) -> None:
        self.type = type

    def __repr__(self) -> str:
        return f"InputPath({self.type!r})"


class OutputPath:
    """kfp's ``OutputPath(...)``: the component gets a local path to write. ``OutputPath(str)``
    (int, float, bool, list, dict) is an output parameter whose value is the file's content
    (JSON for a list or dict); ``OutputPath(Model)`` (or ``'Model'``) an output artifact."""

    def __init__(self, type: Any = None) -> None:
        self.type = type

    def __repr__(self) -> str:
        return f"OutputPath({self.type!r})"


class Artifact:
    """A file or folder a task reads or writes: ``.path`` (local), ``.uri``, ``.metadata``."""

    schema_title = "system.Artifact"

    def __init__(
        self, name: str = "", uri: str = "", metadata: dict[str, Any] | None = None, path: str = ""
    ) -> None:
        self.name = name
        self.uri = uri
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    @path.setter
    def path(self, value: str) -> None:
        self._path = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, uri={self.uri!r})"


class Dataset(Artifact):
    schema_title = "system.Dataset"


class Model(Artifact):
    schema_title = "system.Model"

    @property
    def framework(self) -> str:
        return str(self.metadata.get("framework", ""))


class Metrics(Artifact):
    schema_title = "system.Metrics"

    def log_metric(self, metric: str, value: float) -> None:
        self.metadata[metric] = value


def _number(value: Any, what: str) -> float | int:
    """A plain int or float (numpy scalars too) for metadata stored as JSON."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return int(value) if isinstance(value, numbers.Integral) else number


def _clamped(threshold: Any) -> Any:
    """scikit-learn's roc_curve starts at threshold inf ("above every score"), which JSON
    cannot hold: it is stored as the largest float, which keeps the thresholds' order."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        return threshold  # _number names it
    return math.copysign(sys.float_info.max, value) if math.isinf(value) else threshold


class ClassificationMetrics(Artifact):
    """An ROC curve and a confusion matrix, with kfp's methods and kfp's metadata shape:
    ``confidenceMetrics`` is a list of ``{confidenceThreshold, recall, falsePositiveRate}``
    and ``confusionMatrix`` is ``{annotationSpecs: [{displayName}], rows: [{row: [...]}]}``."""

    schema_title = "system.ClassificationMetrics"

    def log_roc_data_point(self, fpr: float, tpr: float, threshold: float) -> None:
        self._add_roc([(fpr, tpr, threshold)])

    def log_roc_curve(self, fpr: Sequence[float], tpr: Sequence[float],
                      threshold: Sequence[float]) -> None:  # fmt: skip
        if not len(fpr) == len(tpr) == len(threshold):
            raise ValueError(
                "log_roc_curve: fpr, tpr and threshold must be as long as each other, got "
                f"{len(fpr)}, {len(tpr)} and {len(threshold)}"
            )
        self._add_roc(list(zip(fpr, tpr, threshold, strict=True)))

    def _add_roc(self, points: list[tuple[Any, Any, Any]]) -> None:
        """Appends (fpr, tpr, threshold) points, all checked before any is stored."""
        checked = [
            {
                "confidenceThreshold": _number(_clamped(threshold), "threshold"),
                "recall": _number(tpr, "tpr"),
                "falsePositiveRate": _number(fpr, "fpr"),
            }
            for fpr, tpr, threshold in points
        ]
        self.metadata.setdefault("confidenceMetrics", []).extend(checked)

    def set_confusion_matrix_categories(self, categories: Sequence[str]) -> None:
        names = [str(c) for c in categories]
        if len(set(names)) != len(names):
            raise ValueError(f"confusion matrix categories must differ, got {names}")
        self.metadata["confusionMatrix"] = {
            "annotationSpecs": [{"displayName": n} for n in names],
            "rows": [{"row": [0] * len(names)} for _ in names],
        }

    def _categories(self) -> list[str]:
        matrix = self.metadata.get("confusionMatrix") or {}
        if "annotationSpecs" not in matrix:
            raise ValueError("call set_confusion_matrix_categories(categories) first")
        return [spec["displayName"] for spec in matrix["annotationSpecs"]]

    def _index(self, category: str) -> int:
        names = self._categories()
        if str(category) not in names:
            raise ValueError(f"unknown category {category!r}: the categories are {names}")
        return names.index(str(category))

    def log_confusion_matrix_row(self, row_category: str, row: Sequence[float]) -> None:
        i = self._index(row_category)
        self.metadata["confusionMatrix"]["rows"][i] = {"row": self._row(row_category, row)}

    def _row(self, category: str, row: Sequence[float]) -> list[float | int]:
        size = len(self._categories())
        if len(row) != size:
            raise ValueError(f"row {category!r} has {len(row)} values, expected {size}")
        return [_number(v, f"row {category!r}") for v in row]

    def log_confusion_matrix_cell(self, row_category: str, col_category: str,
                                  value: float) -> None:  # fmt: skip
        i, j = self._index(row_category), self._index(col_category)
        cell = _number(value, f"cell ({row_category!r}, {col_category!r})")
        self.metadata["confusionMatrix"]["rows"][i]["row"][j] = cell

    def log_confusion_matrix(self, categories: Sequence[str],
                             matrix: Sequence[Sequence[float]]) -> None:  # fmt: skip
        if len(matrix) != len(categories) or any(len(r) != len(categories) for r in matrix):
            raise ValueError(
                f"log_confusion_matrix: the matrix must be {len(categories)} x "
                f"{len(categories)}, one row and column per category"
            )
        names = [str(c) for c in categories]
        rows = [
            [_number(v, f"row {n!r}") for v in row] for n, row in zip(names, matrix, strict=True)
        ]
        self.set_confusion_matrix_categories(names)
        self.metadata["confusionMatrix"]["rows"] = [{"row": r} for r in rows]


class SlicedClassificationMetrics(Artifact):
    """:class:`ClassificationMetrics` per slice of the data, with kfp's methods; metadata
    ``evaluationSlices`` lists ``{slice, sliceClassificationMetrics}``."""

    schema_title = "system.SlicedClassificationMetrics"

    def _on_slice(self, name: str, change: Callable[[ClassificationMetrics], None]) -> None:
        """Applies ``change`` to the slice's metrics; a new slice is added only once the
        change succeeded (every change checks its values before it writes)."""
        slices = self.metadata.get("evaluationSlices") or []
        entry = next((e for e in slices if e["slice"] == str(name)), None)
        metrics = ClassificationMetrics(name=self.name, uri=self.uri)
        if entry is not None:
            metrics.metadata = entry["sliceClassificationMetrics"]  # changed in place
        change(metrics)
        if entry is None:
            entry = {"slice": str(name), "sliceClassificationMetrics": metrics.metadata}
            self.metadata.setdefault("evaluationSlices", []).append(entry)

    def log_roc_reading(self, slice: str, threshold: float, tpr: float, fpr: float) -> None:
        self._on_slice(slice, lambda m: m.log_roc_data_point(fpr, tpr, threshold))

    def load_roc_readings(self, slice: str, readings: Sequence[Sequence[float]]) -> None:
        """``readings``: ``[threshold, tpr, fpr]`` per point."""
        for reading in readings:
            if len(reading) != 3:
                raise ValueError(f"a ROC reading is [threshold, tpr, fpr], got {reading!r}")
        points = [(fpr, tpr, threshold) for threshold, tpr, fpr in readings]
        self._on_slice(slice, lambda m: m._add_roc(points))

    def set_confusion_matrix_categories(self, slice: str, categories: Sequence[str]) -> None:
        self._on_slice(slice, lambda m: m.set_confusion_matrix_categories(categories))

    def log_confusion_matrix_row(self, slice: str, row_category: str,
                                 row: Sequence[float]) -> None:  # fmt: skip
        self._on_slice(slice, lambda m: m.log_confusion_matrix_row(row_category, row))

    def log_confusion_matrix_cell(self, slice: str, row_category: str, col_category: str,
                                  value: float) -> None:  # fmt: skip
        self._on_slice(
            slice, lambda m: m.log_confusion_matrix_cell(row_category, col_category, value)
        )

    def load_confusion_matrix(self, slice: str, categories: Sequence[str],
                              matrix: Sequence[Sequence[float]]) -> None:  # fmt: skip
        self._on_slice(slice, lambda m: m.log_confusion_matrix(categories, matrix))


class HTML(Artifact):
    schema_title = "system.HTML"


class Markdown(Artifact):
    schema_title = "system.Markdown"


ARTIFACT_TYPES: dict[str, type[Artifact]] = {
    cls.__name__: cls
    for cls in (
        Artifact,
        Dataset,
        Model,
        Metrics,
        ClassificationMetrics,
        SlicedClassificationMetrics,
        HTML,
        Markdown,
    )
}

PARAMETER_TYPES: dict[type, str] = {
    int: "int",
    float: "float",
    str: "str",
    bool: "bool",
    list: "list",
    dict: "dict",
}


class PipelineTaskFinalStatus(NamedTuple):
    """What an exit handler's task receives about the tasks it guards (kfp's shape)."""

    state: str
    pipeline_job_resource_name: str
    pipeline_task_name: str
    error_code: int | None
    error_message: str | None


def check_value(value: Any, type_name: str) -> Any:
    """``value`` as ``type_name`` (ints that arrived as floats become ints again); raises
    TypeError naming the expected type."""
    if type_name == "any":
        return value
    if type_name == "int":
        if isinstance(value, bool):
            raise TypeError(f"expected an int, got bool {value!r}")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise TypeError(f"expected an int, got {type(value).__name__} {value!r}")
        return value
    if type_name == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"expected a float, got {type(value).__name__} {value!r}")
        return float(value)
    expected = {"str": str, "bool": bool, "list": list, "dict": dict}[type_name]
    if not isinstance(value, expected):
        raise TypeError(f"expected a {type_name}, got {type(value).__name__} {value!r}")
    return value


_TRUE = ("1", "t", "true")
_FALSE = ("0", "f", "false")


def value_to_text(value: Any) -> str:
    """A parameter's value as an ``InputPath`` file holds it: a str as it is, anything else
    as JSON (``true``, ``3``, ``[1, 2]``); :func:`value_from_text` reads it back."""
    import json

    return value if isinstance(value, str) else json.dumps(value)


def value_from_text(text: str, type_name: str) -> Any:
    """An output parameter's value from the file an ``OutputPath`` wrote, as kfp's launcher
    reads it: a str as it is, numbers and booleans parsed, a list or dict as JSON. Raises
    ValueError saying what the text should be."""
    import json

    if type_name == "str":
        return text
    word = text.strip()
    if type_name == "int":
        return int(word)
    if type_name == "float":
        return float(word)
    if type_name == "bool":
        if word.lower() in _TRUE:
            return True
        if word.lower() in _FALSE:
            return False
        raise ValueError(f"expected true or false, got {word[:40]!r}")
    if type_name in ("list", "dict"):
        return json.loads(text)
    try:
        return json.loads(text)
    except ValueError:
        return text
