"""Client methods for pipelines: ``run_pipeline``, ``compile_pipeline`` and run handles."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import shipyard.errors as errors

Obj = dict[str, Any]
TERMINAL = ("Succeeded", "Failed", "Cancelled")


class PipelineRunHandle:
    """A submitted run: ``wait()``, ``outputs``, ``tasks``, ``cancel()``, ``retry()``."""

    def __init__(
        self, client: Any, name: str, namespace: str | None, created: Obj | None = None
    ) -> None:
        self.client, self.name, self.namespace = client, name, namespace
        self._created = created  # the run as created: the first wait() starts from it

    def get(self) -> Obj:
        obj: Obj = self.client.get("pipelineruns", self.name, self.namespace)
        return obj

    @property
    def status(self) -> Obj:
        return self.get().get("status") or {}

    @property
    def phase(self) -> str:
        return str(self.status.get("phase", "Pending"))

    @property
    def tasks(self) -> Obj:
        tasks: Obj = self.status.get("tasks") or {}
        return tasks

    @property
    def outputs(self) -> Obj:
        out: Obj = self.status.get("outputs") or {}
        return out

    def wait(self, timeout: float = 300.0, *, check: bool = False) -> Obj:
        """Block until the run ends; return its status. ``check=True`` raises when it did
        not succeed."""
        created, self._created = self._created, None
        obj = self.client.wait(
            "pipelineruns",
            self.name,
            namespace=self.namespace,
            phase=",".join(TERMINAL),
            timeout=timeout,
            seen=created,
        )
        status: Obj = (obj or {}).get("status") or {}
        if check and status.get("phase") != "Succeeded":
            raise errors.ShipyardError(
                f"run {self.name} {status.get('phase')}: {status.get('message', '')}"
            )
        return status

    def cancel(self) -> None:
        self.client.patch("pipelineruns", self.name, {"spec": {"cancelled": True}}, self.namespace)

    def retry(self) -> None:
        """Re-run from the failed tasks, keeping the successful ones."""
        token = f"{time.time():.6f}"
        self.client.patch(
            "pipelineruns",
            self.name,
            {"metadata": {"annotations": {"pipelines.shipyard.dev/retry": token}}},
            self.namespace,
        )

    def __repr__(self) -> str:
        return f"PipelineRunHandle({self.name!r})"


def _pipeline_object(source: Any, pipeline: str | None = None) -> Obj:
    from shipyard.pipelines.compiler import compile_pipeline, load
    from shipyard.pipelines.dsl import Pipeline

    if isinstance(source, Pipeline):
        return compile_pipeline(source)
    from shipyard.pipelines.kfp import translate_if_kfp

    if isinstance(source, dict | str) and (kfp := translate_if_kfp(source)) is not None:
        return kfp
    if isinstance(source, dict):
        return source
    if isinstance(source, str | Path) and Path(source).exists():
        return load(source, pipeline)
    if isinstance(source, str):
        import yaml

        doc = yaml.safe_load(source)
        if isinstance(doc, dict):
            if doc.get("kind") == "Pipeline":
                return doc
            if "pipelineInfo" in doc:
                from shipyard.pipelines.compiler import KFP_UNSUPPORTED

                raise errors.BadRequest(KFP_UNSUPPORTED)
    raise errors.BadRequest(
        "run_pipeline takes a @dsl.pipeline function, a Pipeline dict, YAML text or a file path"
    )


class PipelinesMixin:
    def compile_pipeline(self, source: Any, pipeline: str | None = None) -> Obj:
        return _pipeline_object(source, pipeline)

    def run_pipeline(
        self,
        source: Any,
        params: Obj | None = None,
        *,
        name: str | None = None,
        namespace: str | None = None,
        pipeline: str | None = None,
        cache: bool = True,
        parallelism: int | None = None,
        source_dir: str | None = None,
    ) -> PipelineRunHandle:
        """Compile (if needed) and submit a run; returns a handle with ``wait()``."""
        pobj = _pipeline_object(source, pipeline)
        base = pobj["metadata"]["name"][:40].rstrip("-")
        run_name = name or f"{base}-{uuid.uuid4().hex[:6]}"
        spec: Obj = {"pipelineSpec": pobj["spec"], "parameters": dict(params or {})}
        if not cache:
            spec["cache"] = False
        if parallelism:
            spec["parallelism"] = parallelism
        md: Obj = {"name": run_name, "labels": {"pipelines.shipyard.dev/pipeline": base}}
        if source_dir:
            md["annotations"] = {"shipyard.dev/source-dir": source_dir}
        run = {"apiVersion": "shipyard.dev/v1", "kind": "PipelineRun", "metadata": md, "spec": spec}
        created = self.create(run, namespace)  # type: ignore[attr-defined]
        ns = created["metadata"].get("namespace")
        return PipelineRunHandle(self, run_name, ns, created)

    def pipeline_run(self, name: str, namespace: str | None = None) -> PipelineRunHandle:
        self.get("pipelineruns", name, namespace)  # type: ignore[attr-defined]
        return PipelineRunHandle(self, name, namespace)
