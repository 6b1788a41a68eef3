"""Early stopping: Katib's median stopping rule on intermediate objective values.

A running trial that has reported at least ``start_step`` objective values is stopped when
its best value so far is worse than the median, over the succeeded trials (at least
``min_trials_required`` of them), of their running averages up to the same step.
"""

from __future__ import annotations

from statistics import median
from typing import Any

from shipyard.core.resource import Obj
from shipyard.errors import Invalid

_SETTINGS = {"min_trials_required": 3, "start_step": 4}


def settings_of(es: Obj) -> dict[str, int]:
    out = dict(_SETTINGS)
    for i, s in enumerate(es.get("algorithmSettings") or []):
        where = f"spec.earlyStopping.algorithmSettings[{i}]"
        if s["name"] not in _SETTINGS:
            raise Invalid(
                f"{where}: unknown setting {s['name']!r} for medianstop; known: "
                + ", ".join(sorted(_SETTINGS)),
                field=f"{where}.name",
            )
        try:
            value = int(str(s.get("value")))
        except ValueError:
            raise Invalid(f"{where}.value must be an integer", field=f"{where}.value") from None
        if value < 1:
            raise Invalid(f"{where}.value must be ≥ 1", field=f"{where}.value")
        out[s["name"]] = value
    return out


def check_settings(es: Obj) -> None:
    if es.get("algorithmName") != "medianstop":
        raise Invalid(
            f"spec.earlyStopping.algorithmName {es.get('algorithmName')!r} is unknown: "
            "use medianstop",
            field="spec.earlyStopping.algorithmName",
        )
    settings_of(es)


def median_stop(
    values: list[float],
    completed: list[list[float]],
    *,
    maximize: bool,
    settings: dict[str, Any],
) -> str | None:
    """Why the trial should stop, or None to let it run."""
    step = len(values)
    if step < settings["start_step"] or len(completed) < settings["min_trials_required"]:
        return None
    averages = [sum(c[:step]) / len(c[:step]) for c in completed if c]
    if len(averages) < settings["min_trials_required"]:
        return None
    mid = median(averages)
    best = max(values) if maximize else min(values)
    worse = best < mid if maximize else best > mid
    if not worse:
        return None
    return (
        f"best objective {best:g} after {step} steps is worse than the median {mid:g} "
        f"of {len(averages)} succeeded trials"
    )
