"""Admission for Experiments on update, as Katib's webhook: only the trial counts may change,
and a finished experiment resumes only with resumePolicy LongRunning (or FromVolume)."""

from __future__ import annotations

from typing import Any

from shipyard.core.resource import is_true
from shipyard.errors import Invalid
from shipyard.tuning.api import EXPERIMENT

MUTABLE = ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount")


def admission(req: Any) -> None:
    if req.operation != "UPDATE" or req.info.key != EXPERIMENT.key or req.old is None:
        return
    new, old = req.obj.get("spec") or {}, req.old.get("spec") or {}
    for key in sorted(set(new) | set(old)):
        if key not in MUTABLE and new.get(key) != old.get(key):
            raise Invalid(
                f"spec.{key} cannot change after creation: only "
                + ", ".join(f"spec.{m}" for m in MUTABLE)
                + " may; create a new experiment instead",
                field=f"spec.{key}",
            )
    status = req.old.get("status") or {}
    done = is_true(status, "Succeeded") or is_true(status, "Failed")
    if (
        done
        and new.get("maxTrialCount") != old.get("maxTrialCount")
        and old.get("resumePolicy", "Never") == "Never"
    ):
        raise Invalid(
            "spec.maxTrialCount: the experiment has finished and its resumePolicy is Never; "
            "create it with resumePolicy LongRunning to continue it",
            field="spec.maxTrialCount",
        )
