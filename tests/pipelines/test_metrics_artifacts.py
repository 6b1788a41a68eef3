"""ClassificationMetrics and SlicedClassificationMetrics: kfp's methods, kfp's metadata
shape, values scikit-learn hands back (numpy arrays, a threshold of inf) stored as JSON, and
a ValueError naming what is wrong."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from shipyard import dsl
from shipyard.pipelines.types import ClassificationMetrics, SlicedClassificationMetrics


def test_roc_curve_and_confusion_matrix_take_kfp_s_shape() -> None:
    m = dsl.ClassificationMetrics(name="m", uri="u")
    m.log_roc_data_point(fpr=0.0, tpr=0.5, threshold=0.9)
    m.log_roc_curve([0.25, 1.0], [0.75, 1.0], [0.5, 0.1])
    m.set_confusion_matrix_categories(["cat", "dog"])
    m.log_confusion_matrix_row("cat", [5, 1])
    m.log_confusion_matrix_cell("dog", "dog", 7)
    assert m.metadata == {
        "confidenceMetrics": [
            {"confidenceThreshold": 0.9, "recall": 0.5, "falsePositiveRate": 0.0},
            {"confidenceThreshold": 0.5, "recall": 0.75, "falsePositiveRate": 0.25},
            {"confidenceThreshold": 0.1, "recall": 1.0, "falsePositiveRate": 1.0},
        ],
        "confusionMatrix": {
            "annotationSpecs": [{"displayName": "cat"}, {"displayName": "dog"}],
            "rows": [{"row": [5, 1]}, {"row": [0, 7]}],
        },
    }
    m.log_confusion_matrix(["a", "b"], [[1, 2], [3, 4]])  # replaces the matrix
    assert m.metadata["confusionMatrix"]["rows"] == [{"row": [1, 2]}, {"row": [3, 4]}]


def test_numpy_values_and_an_infinite_threshold_are_stored_as_json() -> None:
    m = ClassificationMetrics(name="m", uri="u")
    m.log_roc_curve(np.array([0.0, 0.5]), np.array([0.0, 1.0]), np.array([np.inf, 0.3]))
    m.log_confusion_matrix(["x", "y"], np.array([[3, 1], [0, 4]]))
    text = json.dumps(m.metadata, allow_nan=False)  # what the executor does with metadata
    back = json.loads(text)
    assert back["confidenceMetrics"][0]["confidenceThreshold"] == sys.float_info.max
    assert back["confusionMatrix"]["rows"] == [{"row": [3, 1]}, {"row": [0, 4]}]
    assert all(type(v) is int for r in m.metadata["confusionMatrix"]["rows"] for v in r["row"])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.log_roc_curve([0.1], [0.2, 0.3], [0.5]), "got 1, 2 and 1"),
        (lambda m: m.log_roc_data_point("high", 0.1, 0.5), "fpr must be a number, got 'high'"),
        (lambda m: m.log_roc_data_point(float("nan"), 0.1, 0.5), "fpr must be finite"),
        (lambda m: m.log_confusion_matrix_row("a", [1, 2]), "set_confusion_matrix_categories"),
        (lambda m: m.log_confusion_matrix(["a", "b"], [[1, 2]]), "must be 2 x 2"),
        (lambda m: m.set_confusion_matrix_categories(["a", "a"]), "must differ"),
    ],
)
def test_bad_values_raise_value_error_naming_them(call, message: str) -> None:
    m = ClassificationMetrics(name="m", uri="u")
    with pytest.raises(ValueError, match=message):
        call(m)


def test_unknown_categories_and_short_rows_are_refused_and_change_nothing() -> None:
    m = ClassificationMetrics(name="m", uri="u")
    m.log_confusion_matrix(["a", "b"], [[1, 2], [3, 4]])
    before = json.dumps(m.metadata)
    with pytest.raises(ValueError, match=r"unknown category 'c': the categories are \['a', 'b'\]"):
        m.log_confusion_matrix_cell("a", "c", 1)
    with pytest.raises(ValueError, match="row 'b' has 1 values, expected 2"):
        m.log_confusion_matrix_row("b", [9])
    with pytest.raises(ValueError, match="must be 2 x 2"):
        m.log_confusion_matrix(["a", "b"], [[1, 2], [3]])
    with pytest.raises(ValueError, match="row 'y' must be a number"):
        m.log_confusion_matrix(["x", "y"], [[1, 2], [3, "four"]])
    with pytest.raises(ValueError, match="fpr must be finite"):
        m.log_roc_curve([0.0, float("nan")], [0.0, 1.0], [0.9, 0.1])
    assert json.dumps(m.metadata) == before


def test_sliced_metrics_keep_one_classification_entry_per_slice() -> None:
    s = dsl.SlicedClassificationMetrics(name="s", uri="u")
    s.load_roc_readings("young", [[0.8, 0.5, 0.1], [0.2, 0.9, 0.6]])
    s.log_roc_reading("young", threshold=0.1, tpr=1.0, fpr=1.0)
    s.load_confusion_matrix("old", ["no", "yes"], [[4, 1], [2, 3]])
    s.set_confusion_matrix_categories("young", ["no", "yes"])
    s.log_confusion_matrix_row("young", "yes", [1, 6])
    s.log_confusion_matrix_cell("young", "no", "no", 8)
    young, old = s.metadata["evaluationSlices"]
    assert young["slice"] == "young" and old["slice"] == "old"
    assert young["sliceClassificationMetrics"]["confidenceMetrics"] == [
        {"confidenceThreshold": 0.8, "recall": 0.5, "falsePositiveRate": 0.1},
        {"confidenceThreshold": 0.2, "recall": 0.9, "falsePositiveRate": 0.6},
        {"confidenceThreshold": 0.1, "recall": 1.0, "falsePositiveRate": 1.0},
    ]
    assert young["sliceClassificationMetrics"]["confusionMatrix"]["rows"] == [
        {"row": [8, 0]},
        {"row": [1, 6]},
    ]
    assert old["sliceClassificationMetrics"]["confusionMatrix"]["rows"] == [
        {"row": [4, 1]},
        {"row": [2, 3]},
    ]
    before = json.dumps(s.metadata)
    with pytest.raises(ValueError, match=r"\[threshold, tpr, fpr\]"):
        s.load_roc_readings("young", [[0.5, 0.5]])
    with pytest.raises(ValueError, match="tpr must be finite"):
        s.load_roc_readings("young", [[0.5, 0.5, 0.5], [0.4, float("inf"), 0.6]])
    with pytest.raises(ValueError, match="set_confusion_matrix_categories"):
        s.log_confusion_matrix_row("new", "yes", [1, 2])  # a new slice has no categories
    assert json.dumps(s.metadata) == before  # nothing half-written, no empty slice added


def test_an_input_artifact_s_stored_slices_are_read_and_extended() -> None:
    """A task reading the artifact gets its metadata back and can add to it."""
    first = SlicedClassificationMetrics(name="s", uri="u")
    first.load_roc_readings("a", [[0.5, 0.5, 0.5]])
    again = SlicedClassificationMetrics(
        name="s", uri="u", metadata=json.loads(json.dumps(first.metadata))
    )
    again.log_roc_reading("a", 0.1, 1.0, 1.0)
    assert len(again.metadata["evaluationSlices"]) == 1
    assert (
        len(
            again.metadata["evaluationSlices"][0]["sliceClassificationMetrics"]["confidenceMetrics"]
        )
        == 2
    )
