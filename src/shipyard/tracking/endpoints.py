"""Tracking endpoints, served on the platform's port under ``/tracking``.

- ``POST /tracking/v1/namespaces/{ns}/pods/{pod}/log`` — params, metrics, artifacts, code
  from a Pod (body carries the Pod's ``uid``);
- ``POST /tracking/v1/namespaces/{ns}/pods/{pod}/models`` — a saved model's artifact:
  recorded as the run's output and, unless ``register`` is false, registered as a version;
- ``POST /tracking/v1/artifacts`` — upload a file (raw bytes) or a folder
  (``application/x-tar``) into the artifact store; ``GET /tracking/v1/artifacts/{hex}``
  (``?member=path`` inside a folder) downloads one;
- ``GET /tracking/v1/namespaces/{ns}/compare?runs=a,b`` — runs side by side;
- ``GET /tracking/v1/namespaces/{ns}/lineage/models/{model}/{version}`` — the lineage graph.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from shipyard.core.artifacts import SCHEME, safe_relpath
from shipyard.core.resource import Obj
from shipyard.errors import BadRequest, NotFound, ShipyardError
from shipyard.registry.endpoints import json_endpoint, read_json

PREFIX = "/tracking"
MAX_UPLOAD = 20 * (1 << 30)


def store_upload(platform: Any, spool: Path, is_tar: bool) -> Obj:
    """Put an uploaded file, or the folder a tar holds, into the artifact store."""
    if not is_tar:
        stored = platform.artifacts.put_file(spool)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="upload-", dir=spool.parent))
        try:
            try:
                with tarfile.open(spool) as tar:
                    for member in tar.getmembers():
                        safe_relpath(member.name)  # no absolute path, no '..'
                    # "data" also refuses links out of the folder, devices and odd modes.
                    tar.extractall(tmp, filter="data")
            except (tarfile.TarError, OSError) as exc:
                raise BadRequest(f"the uploaded folder is not a valid tar archive: {exc}") from None
            except BadRequest as exc:
                raise BadRequest(f"the uploaded folder is refused: {exc.message}") from None
            stored = platform.artifacts.put_dir(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"uri": stored.uri, "digest": stored.digest, "size": stored.size, "isDir": stored.is_dir}


def log_model(platform: Any, namespace: str, pod_name: str, body: Obj) -> Obj:
    from shipyard.registry.versions import create_version

    tracker = platform.tracker
    name, uri = body.get("name"), body.get("artifactUri")
    if not isinstance(name, str) or not name:
        raise BadRequest("name (the registered model's name) is required", field="name")
    if not isinstance(uri, str) or not uri.startswith(SCHEME):
        raise BadRequest(
            "artifactUri must be an artifact:// URI returned by the upload", field="artifactUri"
        )
    entry = {"name": name, "uri": uri, "direction": "output"}
    run = tracker.record(
        namespace,
        pod_name,
        {"uid": body.get("uid"), "artifacts": [entry], "code": body.get("code")},
    )
    if body.get("register") is False:
        return {"uri": uri, "run": run["metadata"]["name"]}
    status = run.get("status") or {}
    spec: Obj = {"artifactUri": uri, "source": _source(run, pod_name)}
    for key in ("format", "frameworkVersions", "signature", "description"):
        if body.get(key):
            spec[key] = body[key]
    if status.get("params"):
        spec["params"] = dict(status["params"])
    latest = {k: v[-1]["value"] for k, v in (status.get("metrics") or {}).items() if v}
    if latest:
        spec["metrics"] = latest
    version = create_version(platform.service, namespace, name, spec)
    vname = version["metadata"]["name"]
    tracker.update(
        namespace,
        run["metadata"]["name"],
        lambda st: st.update(models=sorted({*(st.get("models") or []), vname})),
    )
    return version


def _source(run: Obj, pod: str) -> Obj:
    spec = run["spec"]
    ex, parent = spec["execution"], spec.get("parent") or {}
    src: Obj = {
        "run": run["metadata"]["name"],
        "kind": ex["kind"],
        "name": ex["name"],
        "uid": ex.get("uid"),
        "pod": pod,
    }
    if parent.get("kind") == "PipelineRun":
        src["pipelineRun"] = parent["name"]
    if spec.get("task"):
        src["task"] = spec["task"]
    if ex["kind"] == "Trial":
        src["trial"] = ex["name"]
    return {k: v for k, v in src.items() if v}


def make_app(platform: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import FileResponse, JSONResponse, StreamingResponse
    from starlette.routing import Route

    from shipyard.tracking.compare import compare
    from shipyard.tracking.lineage import model_lineage

    @json_endpoint
    async def log(request: Any) -> Any:
        ns, pod = request.path_params["namespace"], request.path_params["pod"]
        body = await read_json(request)
        run = await run_in_threadpool(platform.tracker.record, ns, pod, body)
        return {"run": run["metadata"]["name"]}

    @json_endpoint
    async def models(request: Any) -> Any:
        ns, pod = request.path_params["namespace"], request.path_params["pod"]
        body = await read_json(request)
        return await run_in_threadpool(log_model, platform, ns, pod, body), 201

    @json_endpoint
    async def upload(request: Any) -> Any:
        is_tar = "tar" in request.headers.get("content-type", "")
        root = Path(platform.settings.data_dir) / "tmp"
        root.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=root)
        spool = Path(name)
        try:
            size = 0
            with os.fdopen(fd, "wb") as fh:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_UPLOAD:
                        raise BadRequest(f"upload larger than {MAX_UPLOAD} bytes")
                    fh.write(chunk)
            return await run_in_threadpool(store_upload, platform, spool, is_tar), 201
        finally:
            spool.unlink(missing_ok=True)

    async def download(request: Any) -> Any:
        store = platform.artifacts
        member = request.query_params.get("member")
        try:
            uri = SCHEME + request.path_params["digest"].removeprefix("sha256:")
            if not store.exists(uri):
                raise NotFound(f"artifact {uri} is not in the store", field="digest")
            if not store.remote and member is None and store.path(uri).is_file():
                return FileResponse(store.path(uri), media_type="application/octet-stream")
            fh = store.open(uri, member)
        except ShipyardError as exc:
            return JSONResponse(exc.to_dict(), status_code=exc.status)
        return StreamingResponse(
            iter(lambda: fh.read(1 << 20), b""), media_type="application/octet-stream"
        )

    @json_endpoint
    async def compare_runs(request: Any) -> Any:
        ns = request.path_params["namespace"]
        names = [r for r in (request.query_params.get("runs") or "").split(",") if r]
        return await run_in_threadpool(compare, platform, ns, names)

    @json_endpoint
    async def lineage(request: Any) -> Any:
        p = request.path_params
        return await run_in_threadpool(
            model_lineage, platform, p["namespace"], p["model"], p["version"]
        )

    ns = "/v1/namespaces/{namespace}"
    return Starlette(
        routes=[
            Route(ns + "/pods/{pod}/log", log, methods=["POST"]),
            Route(ns + "/pods/{pod}/models", models, methods=["POST"]),
            Route("/v1/artifacts", upload, methods=["POST"]),
            Route("/v1/artifacts/{digest}", download, methods=["GET"]),
            Route(ns + "/compare", compare_runs, methods=["GET"]),
            Route(ns + "/lineage/models/{model}/{version}", lineage, methods=["GET"]),
        ]
    )
