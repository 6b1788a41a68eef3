"""Pipelines: a KFP-shaped DSL, compiled DAGs, runs with caching, retries, loops and
conditions, each task a Pod forked from a warm worker (see DESIGN §2)."""

from __future__ import annotations

from typing import Any


def register(platform: Any) -> None:
    from shipyard.pipelines.api import PIPELINE, PIPELINE_RUN, RECURRING_RUN
    from shipyard.pipelines.controller import PipelineRunController
    from shipyard.pipelines.recurring import RecurringRunController

    platform.registry.add(PIPELINE)
    platform.registry.add(PIPELINE_RUN)
    platform.registry.add(RECURRING_RUN)
    platform.service.mutators.append(_resolve_pipeline_ref)
    platform.manager.add(PipelineRunController(platform))
    platform.manager.add(RecurringRunController(platform))


def _resolve_pipeline_ref(req: Any) -> None:
    """On create, a run naming a Pipeline gets that pipeline's spec copied in (later edits of
    the Pipeline do not change a run), and its parameters are checked."""
    from shipyard.errors import NotFound
    from shipyard.pipelines.api import PIPELINE, PIPELINE_RUN, RECURRING_RUN, resolve_parameters

    if req.operation != "CREATE" or req.info.key not in (PIPELINE_RUN.key, RECURRING_RUN.key):
        return
    spec = req.obj.setdefault("spec", {})
    ref = spec.get("pipelineRef")
    if ref and not spec.get("pipelineSpec"):
        ns = req.obj["metadata"].get("namespace", "")
        pipeline = req.service.store.try_get(PIPELINE.key, ns, ref["name"])
        if pipeline is None:
            raise NotFound(
                f"pipeline {ref['name']!r} not found in namespace {ns!r}: apply it first "
                "(shipyard compile FILE -o p.yaml && shipyard apply -f p.yaml)",
                field="spec.pipelineRef.name",
            )
        if req.info.key == PIPELINE_RUN.key:
            spec["pipelineSpec"] = pipeline["spec"]
        resolve_parameters(pipeline["spec"], spec.get("parameters") or {})
