"""The registry's HTTP endpoints, served on the platform's port under ``/registry``.

- ``POST /registry/v1/namespaces/{ns}/models/{model}/versions`` — register the next version
  (body: the ModelVersion spec without name/version, plus optional ``labels``);
- ``GET  /registry/v1/namespaces/{ns}/resolve?uri=models:/…`` — the version and its location;
- ``POST /registry/v1/gc?dryRun=true&minAge=600`` — remove artifacts nothing references.

Errors are ``{"error": {"code", "message", "field"}}`` like the rest of the API.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from shipyard.core.artifacts import find_uris
from shipyard.errors import BadRequest, ShipyardError

PREFIX = "/registry"
Handler = Callable[[Any], Awaitable[Any]]


def json_endpoint(fn: Handler) -> Handler:
    """Run ``fn(request)`` and send its result as JSON; ShipyardErrors become 4xx bodies."""
    from starlette.responses import JSONResponse

    async def endpoint(request: Any) -> Any:
        try:
            result = await fn(request)
        except ShipyardError as exc:
            return JSONResponse(exc.to_dict(), status_code=exc.status)
        status = 200
        if isinstance(result, tuple):
            result, status = result
        return JSONResponse(result, status_code=status)

    return endpoint


async def read_json(request: Any) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def referenced_artifacts(platform: Any) -> set[str]:
    """Every artifact URI any stored object (of any kind, any namespace) mentions."""
    found: set[str] = set()
    for info in platform.registry:
        for obj in platform.store.list(info.key, None).items:
            found |= find_uris(obj)
    return found


def collect_garbage(platform: Any, *, min_age: float, dry_run: bool) -> dict[str, Any]:
    started = time.time()
    result = platform.artifacts.gc(referenced_artifacts(platform), min_age=min_age, dry_run=dry_run)
    return {
        "removed": result.removed,
        "kept": result.kept,
        "freedBytes": result.freed_bytes,
        "dryRun": dry_run,
        "seconds": round(time.time() - started, 3),
    }


def _float_param(request: Any, name: str, default: float) -> float:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"{name} {raw!r} is not a number of seconds", field=name) from None
    if value < 0:
        raise BadRequest(f"{name} must not be negative", field=name)
    return value


def make_app(platform: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.routing import Route

    from shipyard.registry import uris
    from shipyard.registry.versions import create_version

    @json_endpoint
    async def register(request: Any) -> Any:
        ns, model = request.path_params["namespace"], request.path_params["model"]
        body = await read_json(request)
        labels = body.pop("labels", None)
        obj = await run_in_threadpool(
            create_version, platform.service, ns, model, body, labels=labels
        )
        return obj, 201

    @json_endpoint
    async def resolve(request: Any) -> Any:
        ns = request.path_params["namespace"]
        uri = request.query_params.get("uri") or ""
        if not uri:
            raise BadRequest("pass the model URI as ?uri=models:/NAME/VERSION", field="uri")
        version = uris.resolve(platform.store, uri, ns)
        location = uris.resolve_location(platform, uri, ns)
        return {"uri": uri, "modelVersion": version, "location": location}

    @json_endpoint
    async def gc(request: Any) -> Any:
        dry = request.query_params.get("dryRun", "").lower() in ("true", "1", "all")
        min_age = _float_param(request, "minAge", 600.0)
        return await run_in_threadpool(
            lambda: collect_garbage(platform, min_age=min_age, dry_run=dry)
        )

    return Starlette(
        routes=[
            Route("/v1/namespaces/{namespace}/models/{model}/versions", register, methods=["POST"]),
            Route("/v1/namespaces/{namespace}/resolve", resolve, methods=["GET"]),
            Route("/v1/gc", gc, methods=["POST"]),
        ]
    )
