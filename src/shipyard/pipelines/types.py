"""Artifact classes and the ``Input``/``Output`` annotations, in kfp.dsl v2's shapes.

Shared by the DSL (at compile time) and the executor (inside the task's Pod); light on
purpose: it imports nothing beyond the standard library.
"""

from __future__ import annotations

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


class ClassificationMetrics(Artifact):
    schema_title = "system.ClassificationMetrics"

    def log_confusion_matrix(self, categories: list[str], matrix: list[list[int]]) -> None:
        self.metadata["confusionMatrix"] = {"categories": categories, "matrix": matrix}


class HTML(Artifact):
    schema_title = "system.HTML"


class Markdown(Artifact):
    schema_title = "system.Markdown"


ARTIFACT_TYPES: dict[str, type[Artifact]] = {
    cls.__name__: cls
    for cls in (Artifact, Dataset, Model, Metrics, ClassificationMetrics, HTML, Markdown)
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
