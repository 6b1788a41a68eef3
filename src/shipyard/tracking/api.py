"""The tracking kind: ``TrackingRun`` (``shipyard.dev/v1``), one per execution.

An execution is what a Pod works for: a Trial, a training job (TrainJob, PyTorchJob, ...),
or the Pod itself for a pipeline task or a plain Pod. It is found from the Pod's owner chain;
aggregates (Experiment, PipelineRun) are recorded as the run's parent. Every replica of a
training job logs into the one run of the job.

The run's ``spec`` says what it tracks; its ``status`` holds what was logged: ``params``,
``metrics`` (``{name: [{step, value, timestamp}, ...]}``, the history per step),
``artifacts`` (``[{name, uri, digest, direction: input|output}]``), ``code`` (the main
script's digest) and ``models`` (versions registered from it).
"""

from __future__ import annotations

from typing import Any

from shipyard.core.resource import Column, KindInfo, Model, Obj

GROUP = "shipyard.dev"
VERSION = "v1"
RUN_LABEL = "tracking.shipyard.dev/run"
# Kinds that group executions: the run is the execution below them, they are its parent.
AGGREGATES = frozenset({"Experiment", "PipelineRun", "Pipeline", "InferenceService"})


class ObjectRef(Model):
    api_version: str | None = None
    kind: str
    name: str
    uid: str | None = None


class TrackingRunSpec(Model):
    execution: ObjectRef
    parent: ObjectRef | None = None
    task: str | None = None  # pipeline task name, when the Pod runs one


def _metrics_summary(obj: Obj) -> str:
    metrics = (obj.get("status") or {}).get("metrics") or {}
    parts = []
    for name in sorted(metrics)[:4]:
        hist = metrics[name]
        if hist:
            parts.append(f"{name}={hist[-1]['value']:.4g}")
    return ",".join(parts)


TRACKING_RUN = KindInfo(
    group=GROUP,
    version=VERSION,
    kind="TrackingRun",
    plural="trackingruns",
    singular="trackingrun",
    short_names=("trun", "truns"),
    spec_model=TrackingRunSpec,
    columns=(
        Column(
            "EXECUTION",
            lambda o: f"{o['spec']['execution']['kind']}/{o['spec']['execution']['name']}",
        ),
        Column("PARENT", lambda o: (o["spec"].get("parent") or {}).get("name", "")),
        Column("PARAMS", lambda o: len((o.get("status") or {}).get("params") or {})),
        Column("METRICS", _metrics_summary),
        Column("MODELS", lambda o: ",".join((o.get("status") or {}).get("models") or []), True),
    ),
)


def register(platform: Any) -> None:
    """Add the TrackingRun kind and the tracking endpoints (``/tracking``)."""
    from shipyard.core.artifacts import ArtifactStore, default_root
    from shipyard.tracking.endpoints import PREFIX, make_app
    from shipyard.tracking.runs import Tracker

    platform.registry.add(TRACKING_RUN)
    if getattr(platform, "artifacts", None) is None:
        platform.artifacts = ArtifactStore(default_root(platform.settings.data_dir))
    platform.tracker = Tracker(platform)
    platform.mounts.append((PREFIX, make_app(platform)))
