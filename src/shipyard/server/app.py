"""The REST API: one generic, Kubernetes-style surface over every registered kind.

Core kinds live under ``/api/v1``, every other group under ``/apis/{group}/{version}``.
Lists are sent straight from the store's JSON rows (no per-item model round trip); watches
are server-sent events; errors are ``{"error": {"code", "message", "field"}}``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from shipyard import __version__
from shipyard.core.resource import KindInfo, Obj
from shipyard.core.service import parse_documents
from shipyard.errors import BadRequest, NotFound, ShipyardError
from shipyard.server import ui
from shipyard.server.tables import table
from shipyard.server.watch import watch_response

JSON = "application/json"
log = logging.getLogger(__name__)


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type=JSON)


def _error(exc: ShipyardError) -> Response:
    return _json(exc.to_dict(), exc.status)


async def read_body(request: Request) -> Obj:
    raw = await request.body()
    if not raw.strip():
        raise BadRequest("the request body is empty: send the object as JSON or YAML")
    ctype = request.headers.get("content-type", "")
    if "yaml" in ctype:
        docs = parse_documents(raw.decode(), "request body")
        if len(docs) != 1:
            raise BadRequest(f"request body must hold one object, found {len(docs)}")
        return docs[0]
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def field_filters(request: Request) -> tuple[str | None, str | None]:
    """(phase, name) from ``fieldSelector`` (status.phase, metadata.name) or ``phase``."""
    phase, name = request.query_params.get("phase"), None
    for part in (request.query_params.get("fieldSelector") or "").split(","):
        key, _, value = part.partition("=")
        key = key.strip().rstrip("=")
        if key == "status.phase":
            phase = value.strip().lstrip("=")
        elif key == "metadata.name":
            name = value.strip().lstrip("=")
        elif part.strip():
            raise BadRequest(
                f"unsupported field selector {part!r}: use status.phase=VALUE or "
                "metadata.name=VALUE",
                field="fieldSelector",
            )
    return phase, name


def _wants_table(request: Request) -> bool:
    return (
        "as=Table" in request.headers.get("accept", "") or request.query_params.get("as") == "Table"
    )


class Api:
    """The route handlers, bound to one platform."""

    def __init__(self, platform: Any) -> None:
        self.platform = platform
        self.service = platform.service
        self.registry = platform.registry

    def info(self, group: str, version: str, plural: str) -> KindInfo:
        info: KindInfo = self.registry.for_path(group, version, plural)
        return info

    async def list(
        self, request: Request, group: str, version: str, plural: str, namespace: str | None
    ) -> Response:
        info = self.info(group, version, plural)
        q = request.query_params
        selector = q.get("labelSelector")
        phase, name = field_filters(request)
        if q.get("watch") in ("true", "1"):
            return watch_response(
                self.platform.store,
                info,
                namespace,
                selector,
                q.get("resourceVersion"),
                name,
                q.get("timeoutSeconds"),
                phase,
            )
        limit = q.get("limit")
        try:
            n = int(limit) if limit else None
        except ValueError:
            raise BadRequest(f"limit {limit!r} is not a number", field="limit") from None
        order = q.get("order", "name")
        if order not in ("name", "newest"):
            raise BadRequest(
                f"order {order!r} is not known: use name (the default) or newest", field="order"
            )
        raw = self.service.list_raw(
            info,
            namespace,
            selector=selector,
            phase=phase,
            limit=n,
            continue_=q.get("continue"),
            name=name,
            newest_first=order == "newest",
        )
        if _wants_table(request):
            items = [orjson.loads(b) for b in raw.items]
            tbl = table(info, items, all_namespaces=namespace is None)
            tbl["metadata"] = {"resourceVersion": str(raw.rv), "continue": raw.continue_}
            return _json(tbl)
        head = orjson.dumps(
            {
                "apiVersion": info.api_version,
                "kind": f"{info.kind}List",
                "metadata": {"resourceVersion": str(raw.rv), "continue": raw.continue_},
            }
        )
        body = head[:-1] + b',"items":[' + b",".join(raw.items) + b"]}"
        return Response(body, media_type=JSON)

    async def create(
        self, request: Request, group: str, version: str, plural: str, namespace: str | None
    ) -> Response:
        info = self.info(group, version, plural)
        body = await read_body(request)
        got = self.registry.for_object(body)
        if got.key != info.key:
            raise BadRequest(f"body is a {got.kind}, the path names {info.plural}", field="kind")
        dry = request.query_params.get("dryRun") == "All"
        return _json(self.service.create(body, namespace=namespace, dry_run=dry), 201)

    async def get(
        self,
        request: Request,
        group: str,
        version: str,
        plural: str,
        name: str,
        namespace: str | None,
    ) -> Response:
        info = self.info(group, version, plural)
        return _json(self.service.get(info, namespace or "", name))

    async def replace(
        self,
        request: Request,
        group: str,
        version: str,
        plural: str,
        name: str,
        namespace: str | None,
    ) -> Response:
        info = self.info(group, version, plural)
        body = await read_body(request)
        return _json(self.service.replace(info, namespace or "", name, body))

    async def patch(
        self,
        request: Request,
        group: str,
        version: str,
        plural: str,
        name: str,
        namespace: str | None,
    ) -> Response:
        info = self.info(group, version, plural)
        ctype = request.headers.get("content-type", "")
        body = await read_body(request)
        if "apply-patch" in ctype:
            md = body.get("metadata") if isinstance(body.get("metadata"), dict) else None
            if md is not None and md.get("name") not in (None, name):
                raise BadRequest(
                    f"metadata.name {md.get('name')!r} does not match the path's {name!r}",
                    field="metadata.name",
                )
            dry = request.query_params.get("dryRun") == "All"
            obj, action = self.service.apply(body, namespace=namespace, dry_run=dry)
            resp = _json(obj, 201 if action == "created" else 200)
            resp.headers["X-Shipyard-Action"] = action
            return resp
        return _json(self.service.patch(info, namespace or "", name, body))

    async def delete(
        self,
        request: Request,
        group: str,
        version: str,
        plural: str,
        name: str,
        namespace: str | None,
    ) -> Response:
        info = self.info(group, version, plural)
        return _json(self.service.delete(info, namespace or "", name))

    async def status(
        self,
        request: Request,
        group: str,
        version: str,
        plural: str,
        name: str,
        namespace: str | None,
    ) -> Response:
        info = self.info(group, version, plural)
        body = await read_body(request)
        if request.method == "PATCH":
            return _json(
                self.service.patch(
                    info, namespace or "", name, {"status": body.get("status", body)}
                )
            )
        rv = (body.get("metadata") or {}).get("resourceVersion")
        return _json(
            self.service.update_status(info, namespace or "", name, body.get("status") or {}, rv)
        )

    async def logs(
        self,
        request: Request,
        group: str,
        version: str,
        plural: str,
        name: str,
        namespace: str | None,
    ) -> Response:
        info = self.info(group, version, plural)
        if info.kind != "Pod":
            raise BadRequest(f"logs are served for pods, not {info.plural}")
        try:
            pod = self.service.get(info, namespace or "", name)
        except NotFound:
            # The local runtime keeps logs of deleted Pods; serve the newest of that name.
            archived = getattr(self.platform.runtime, "archived_pod", None)
            pod = archived(namespace or "", name) if archived is not None else None
            if pod is None:
                raise
        q = request.query_params
        tail = q.get("tailLines")
        try:
            tail_lines = int(tail) if tail else None
        except ValueError:
            raise BadRequest(f"tailLines {tail!r} is not a number", field="tailLines") from None
        chunks = self.platform.runtime.logs(
            pod, q.get("container"), follow=q.get("follow") in ("true", "1"), tail=tail_lines
        )
        # Resolve the container name now so a bad one is a 400, not a broken stream. The
        # runtime's iterator blocks (a followed Pod that prints nothing yet): run it in a
        # worker thread, never on the event loop.
        first = await run_in_threadpool(next, chunks, b"")

        def stream() -> Any:
            yield first
            yield from chunks

        return StreamingResponse(stream(), media_type="text/plain; charset=utf-8")


def _routes(app: FastAPI, api: Api) -> None:
    Handler = Callable[..., Awaitable[Response]]

    def add(path: str, handler: Handler, methods: list[str], *, core: bool, ns: bool) -> None:
        async def endpoint(request: Request) -> Response:
            p = dict(request.path_params)
            group = "" if core else p.pop("group")
            args: dict[str, Any] = {
                "group": group,
                "version": p.pop("version"),
                "plural": p.pop("plural"),
            }
            if "name" in p:
                args["name"] = p.pop("name")
            args["namespace"] = p.pop("namespace", None) if ns else None
            return await handler(request, **args)

        endpoint.__name__ = (
            f"{handler.__name__}_{'core' if core else 'group'}_{'ns' if ns else 'cluster'}"
        )
        app.add_api_route(
            path,
            endpoint,
            methods=methods,
            include_in_schema=True,
            name=endpoint.__name__,
            summary=f"{handler.__name__} ({path})",
        )

    for core, prefix in ((True, "/api/{version}"), (False, "/apis/{group}/{version}")):
        nsp = prefix + "/namespaces/{namespace}/{plural}"
        for method in ("PUT", "PATCH"):  # one route each: OpenAPI operationIds stay unique
            add(prefix + "/{plural}/{name}/status", api.status, [method], core=core, ns=False)
            add(nsp + "/{name}/status", api.status, [method], core=core, ns=True)
        add(nsp + "/{name}/log", api.logs, ["GET"], core=core, ns=True)
        add(nsp + "/{name}", api.get, ["GET"], core=core, ns=True)
        add(nsp + "/{name}", api.replace, ["PUT"], core=core, ns=True)
        add(nsp + "/{name}", api.patch, ["PATCH"], core=core, ns=True)
        add(nsp + "/{name}", api.delete, ["DELETE"], core=core, ns=True)
        add(nsp, api.list, ["GET"], core=core, ns=True)
        add(nsp, api.create, ["POST"], core=core, ns=True)
        add(prefix + "/{plural}/{name}", api.get, ["GET"], core=core, ns=False)
        add(prefix + "/{plural}/{name}", api.replace, ["PUT"], core=core, ns=False)
        add(prefix + "/{plural}/{name}", api.patch, ["PATCH"], core=core, ns=False)
        add(prefix + "/{plural}/{name}", api.delete, ["DELETE"], core=core, ns=False)
        add(prefix + "/{plural}", api.list, ["GET"], core=core, ns=False)
        add(prefix + "/{plural}", api.create, ["POST"], core=core, ns=False)


def _discovery(platform: Any) -> Obj:
    return {
        "kind": "APIResourceList",
        "resources": [
            {
                "group": i.group,
                "version": i.version,
                "kind": i.kind,
                "name": i.plural,
                "singularName": i.singular or i.kind.lower(),
                "shortNames": list(i.short_names),
                "namespaced": i.namespaced,
                "aliases": [{"group": g, "version": v} for g, v in i.aliases],
            }
            for i in platform.registry.all()
        ],
    }


class _Timing:
    """ASGI middleware: API latency per route template into the platform's histogram."""

    def __init__(self, app: Any, metrics: Any) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500, "started": 0}

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = 1
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            # Answer an unexpected error here, as JSON, and keep the connection: Starlette's
            # own handler would re-raise it, and uvicorn would then drop the connection.
            if status["started"]:
                raise
            log.exception("unhandled error in %s %s", scope["method"], scope.get("path"))
            body = orjson.dumps(
                {
                    "error": {
                        "code": "InternalError",
                        "message": f"{type(exc).__name__}: {exc}",
                        "field": None,
                    }
                }
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.api_seconds.labels(scope["method"], path, str(status["code"])).observe(
                time.perf_counter() - start
            )


def _allowed_methods(request: Request) -> str:
    """Every method some route serves for this path (each route has one method here, so
    Starlette's own Allow header names only the first)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "\x00"})
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods - {"HEAD"}))


class _App(FastAPI):
    """FastAPI whose ASGI entry hands some mounted apps their requests first.

    A mounted app with a true ``bypass_middleware`` attribute (the serving gateway) gets
    requests under its prefix straight from the server, before FastAPI's middleware stack,
    exception handlers and router: that stack costs more than the gateway's own work on
    every inference request. The scope is what the mount would give it (``root_path``
    extended by the prefix, ``path`` unchanged). Such an app answers its own errors and is
    not timed in ``shipyard_api_request_duration_seconds``.
    """

    direct: tuple[tuple[str, Any], ...] = ()
    # Set by create_app: POST of a JSON object to a namespaced collection (the create of a
    # burst of Pods or pipeline tasks) goes straight to Api.create, timed as its route.
    api: Any = None
    metrics: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and self.api is not None
            and not scope.get("query_string")
        ):
            m = _CREATE_PATH.match(scope["path"])
            if m is not None and not scope.get("root_path"):
                await self._create(m, scope, receive, send)
                return
        if scope["type"] == "http" and self.direct:
            root: str = scope.get("root_path", "")
            path: str = scope["path"]
            if root and path.startswith(root):
                path = path[len(root) :]
            for prefix, sub_app in self.direct:
                if path.startswith(prefix) and (
                    len(path) == len(prefix) or path[len(prefix)] == "/"
                ):
                    scope = {**scope, "app_root_path": root, "root_path": root + prefix}
                    await sub_app(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)

    async def _create(self, m: re.Match[str], scope: Any, receive: Any, send: Any) -> None:
        """The create route without FastAPI's router and middleware (~0.2 ms a request):
        the same handler, errors and latency metric."""
        start = time.perf_counter()
        core = m.group("group") is None
        try:
            response = await self.api.create(
                Request(scope, receive),
                "" if core else m.group("group"),
                m.group("version"),
                m.group("plural"),
                m.group("namespace"),
            )
        except ShipyardError as exc:
            response = _error(exc)
        except Exception as exc:
            log.exception("unhandled error in POST %s", scope["path"])
            err = {"code": "InternalError", "message": f"{type(exc).__name__}: {exc}"}
            response = _json({"error": {**err, "field": None}}, 500)
        await response(scope, receive, send)
        route = _CREATE_ROUTES[core]
        self.metrics.api_seconds.labels("POST", route, str(response.status_code)).observe(
            time.perf_counter() - start
        )


_CREATE_PATH = re.compile(
    r"^/(?:api|apis/(?P<group>[^/]+))/(?P<version>[^/]+)/namespaces/(?P<namespace>[^/]+)"
    r"/(?P<plural>[^/]+)$"
)
_CREATE_ROUTES = {
    True: "/api/{version}/namespaces/{namespace}/{plural}",
    False: "/apis/{group}/{version}/namespaces/{namespace}/{plural}",
}


def create_app(platform: Any) -> FastAPI:
    app = _App(
        title="Shipyard",
        version=__version__,
        description="Kubernetes-style REST API over every Shipyard resource kind.",
    )
    app.state.platform = platform
    api = Api(platform)

    @app.exception_handler(ShipyardError)
    async def _shipyard_error(request: Request, exc: ShipyardError) -> Response:
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in err.get("loc", ()))
        return _json(
            {"error": {"code": "BadRequest", "message": f"{field}: {err['msg']}", "field": field}},
            400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = (
            "NotFound"
            if exc.status_code == 404
            else "MethodNotAllowed"
            if exc.status_code == 405
            else "Error"
        )
        msg = f"no such path: {request.url.path}" if exc.status_code == 404 else str(exc.detail)
        allowed = _allowed_methods(request) if exc.status_code == 405 else None
        if allowed:
            msg = f"{request.method} is not allowed on {request.url.path}; use {allowed}"
        resp = _json({"error": {"code": code, "message": msg, "field": None}}, exc.status_code)
        if allowed:
            resp.headers["Allow"] = allowed
        return resp

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Response:
        return JSONResponse(
            {
                "error": {
                    "code": "InternalError",
                    "message": f"{type(exc).__name__}: {exc}",
                    "field": None,
                }
            },
            status_code=500,
        )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return Response(b"ok", media_type="text/plain")

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        m = platform.metrics
        m.pods.clear()
        for phase, n in platform.store.count_by_phase("Pod").items():
            m.pods.labels(phase).set(n)
        return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/apis", summary="Discovery: every resource kind this server serves")
    async def discovery() -> Response:
        return _json(_discovery(platform))

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> Response:
        if ui.wants_html(request.headers.get("accept", "")):
            return ui.index()  # the dashboard
        return _json({"name": "shipyard", "version": __version__, "apis": "/apis", "docs": "/docs"})

    _routes(app, api)
    for prefix, sub_app in getattr(platform, "mounts", []):
        app.mount(prefix, sub_app)
        if getattr(sub_app, "bypass_middleware", False):
            app.direct += ((prefix.rstrip("/"), sub_app),)
    app.mount(ui.PREFIX, ui.assets_app())
    app.add_middleware(_Timing, metrics=platform.metrics)
    app.api, app.metrics = api, platform.metrics
    return app
