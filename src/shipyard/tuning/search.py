"""Search-space helpers for ``Client.tune`` (Katib's ``katib.search``): each returns a Katib
parameter spec without its name."""

from __future__ import annotations

import builtins
from typing import Any

Spec = dict[str, Any]


def _space(lo: float, hi: float, step: float | None, distribution: str | None) -> Spec:
    space: Spec = {"min": str(lo), "max": str(hi)}
    if step is not None:
        space["step"] = str(step)
    if distribution is not None:
        space["distribution"] = distribution
    return space


def double(
    min: float, max: float, step: float | None = None, *, distribution: str | None = None
) -> Spec:
    return {"parameterType": "double", "feasibleSpace": _space(min, max, step, distribution)}


def int(
    min: builtins.int,
    max: builtins.int,
    step: builtins.int | None = None,
    *,
    distribution: str | None = None,
) -> Spec:
    return {"parameterType": "int", "feasibleSpace": _space(min, max, step, distribution)}


def log_double(min: float, max: float) -> Spec:
    return double(min, max, distribution="logUniform")


def categorical(values: list[Any]) -> Spec:
    return {"parameterType": "categorical", "feasibleSpace": {"list": [str(v) for v in values]}}


def discrete(values: list[float]) -> Spec:
    return {"parameterType": "discrete", "feasibleSpace": {"list": [str(v) for v in values]}}
