"""Client methods for pipelines: ``run_pipeline``, ``compile_pipeline`` and run handles."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import shipyard.errors as errors
from shipyard.pipelines.kfp_recurring import RecurringRunsMixin
from shipyard.pipelines.labels import EXPERIMENT_LABEL

Obj = dict[str, Any]
TERMINAL = ("Succeeded", "Failed", "Cancelled")
PIPELINE_LABEL = "pipelines.shipyard.dev/pipeline"


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
    if isinstance(source, Path) or (isinstance(source, str) and Path(source).exists()):
        return load(source, pipeline)  # a path that is not there: "PATH: no such file"
    if isinstance(source, str):
        import yaml

        one_line = "\n" not in source.strip()
        try:
            doc = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            if not one_line:
                text = " ".join(str(exc).split())
                raise errors.BadRequest(f"the pipeline YAML does not parse: {text}") from None
            doc = None
        if isinstance(doc, dict):
            if doc.get("kind") == "Pipeline":
                return doc
            if "pipelineInfo" in doc:
                from shipyard.pipelines.compiler import KFP_UNSUPPORTED

                raise errors.BadRequest(KFP_UNSUPPORTED)
        if one_line:
            return load(source, pipeline)  # not a pipeline: a path that is not there
    raise errors.BadRequest(
        "run_pipeline takes a @dsl.pipeline function, a Pipeline dict, YAML text or a file path"
    )


_KFP_STATES = {
    "Succeeded": "SUCCEEDED",
    "Failed": "FAILED",
    "Cancelled": "CANCELED",
    "Running": "RUNNING",
    "Pending": "PENDING",
}


class KfpRun:
    """A run as kfp.Client's ``get_run`` and ``wait_for_run_completion`` return it, with
    kfp's names: ``run_id`` (the run's name here), ``display_name``, ``state`` (``PENDING``,
    ``RUNNING``, ``SUCCEEDED``, ``FAILED``, ``CANCELED``), ``created_at``, ``finished_at``,
    ``error`` (the failure's message, or None); ``status`` is Shipyard's whole status."""

    def __init__(self, obj: Obj) -> None:
        md, self.status = obj["metadata"], obj.get("status") or {}
        self.run_id = self.display_name = str(md["name"])
        self.namespace = md.get("namespace")
        self.experiment_id = (md.get("labels") or {}).get(EXPERIMENT_LABEL)
        phase = str(self.status.get("phase", "Pending"))
        self.state = _KFP_STATES.get(phase, phase.upper())
        self.created_at = md.get("creationTimestamp")
        self.finished_at = self.status.get("finishedAt")
        failed = self.state in ("FAILED", "CANCELED")
        self.error = self.status.get("message") if failed else None

    def __repr__(self) -> str:
        return f"KfpRun(run_id={self.run_id!r}, state={self.state!r})"


class RunPipelineResult:
    """What kfp.Client's ``create_run_from_pipeline_*`` return: ``run_id``, ``run_info`` and
    ``wait_for_run_completion(timeout)``."""

    def __init__(self, client: Any, handle: PipelineRunHandle, created: Obj) -> None:
        self._client, self.handle = client, handle
        self.run_id = handle.name
        self.run_info = KfpRun(created)

    def wait_for_run_completion(self, timeout: float | None = None) -> KfpRun:
        return self._client.wait_for_run_completion(self.run_id, timeout)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"RunPipelineResult(run_id={self.run_id})"


class PipelinesMixin(RecurringRunsMixin):
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
        labels: dict[str, str] | None = None,
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
        md: Obj = {"name": run_name, "labels": {**(labels or {}), PIPELINE_LABEL: base}}
        if source_dir:
            md["annotations"] = {"shipyard.dev/source-dir": source_dir}
        run = {"apiVersion": "shipyard.dev/v1", "kind": "PipelineRun", "metadata": md, "spec": spec}
        created = self.create(run, namespace)  # type: ignore[attr-defined]
        ns = created["metadata"].get("namespace")
        return PipelineRunHandle(self, run_name, ns, created)

    # -- kfp.Client's names, for scripts that drive runs -------------------------------------

    def create_run_from_pipeline_func(
        self,
        pipeline_func: Any,
        arguments: Obj | None = None,
        run_name: str | None = None,
        experiment_name: str | None = None,
        namespace: str | None = None,
        pipeline_root: str | None = None,
        enable_caching: bool | None = None,
        cache_key: str | None = None,
        service_account: str | None = None,
        experiment_id: str | None = None,
    ) -> RunPipelineResult:
        """kfp.Client's call: run a ``@dsl.pipeline`` function. ``experiment_name`` (or
        ``experiment_id``) labels the run; ``enable_caching=False`` turns caching off."""
        for option, value in (
            ("pipeline_root", pipeline_root),
            ("cache_key", cache_key),
            ("service_account", service_account),
        ):
            if value is not None:
                raise errors.BadRequest(
                    f"{option} is not supported here: artifacts go to the platform's store "
                    "and Pods run with its account"
                )
        experiment = experiment_name or experiment_id
        handle = self.run_pipeline(
            pipeline_func,
            arguments,
            name=run_name,
            namespace=namespace,
            cache=enable_caching is not False,
            labels={EXPERIMENT_LABEL: experiment} if experiment else None,
        )
        return RunPipelineResult(self, handle, handle._created or handle.get())

    def create_run_from_pipeline_package(
        self, pipeline_file: str, arguments: Obj | None = None, **kwargs: Any
    ) -> RunPipelineResult:
        """kfp.Client's call: run a compiled pipeline (kfp's YAML, or Shipyard's)."""
        return self.create_run_from_pipeline_func(pipeline_file, arguments, **kwargs)

    def get_run(self, run_id: str, namespace: str | None = None) -> KfpRun:
        return KfpRun(self.get("pipelineruns", run_id, namespace))  # type: ignore[attr-defined]

    def wait_for_run_completion(
        self,
        run_id: str,
        timeout: float | None = None,
        sleep_duration: float = 5,
        namespace: str | None = None,
    ) -> KfpRun:
        """kfp.Client's call: block until the run ends (TimeoutError after ``timeout``
        seconds); the server tells the end, so ``sleep_duration`` is not needed."""
        obj = self.wait(  # type: ignore[attr-defined]
            "pipelineruns",
            run_id,
            namespace=namespace,
            phase=",".join(TERMINAL),
            timeout=timeout if timeout is not None else 10 * 365 * 86400.0,
        )
        return KfpRun(obj)

    def pipeline_run(self, name: str, namespace: str | None = None) -> PipelineRunHandle:
        self.get("pipelineruns", name, namespace)  # type: ignore[attr-defined]
        return PipelineRunHandle(self, name, namespace)
