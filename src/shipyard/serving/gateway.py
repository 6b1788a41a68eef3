"""The serving gateway: an ASGI app on the platform's port under ``/serving``.

``/serving/{namespace}/{name}/v2/models/{m}/infer`` (or ``/serving/v2/...`` with a Host
header ``{name}.{namespace}.…``) goes to a ready replica of the InferenceService:

- traffic is split between revisions by their percent (smooth weighted round robin, so a
  20% canary gets exactly 20 of every 100 requests);
- within a revision, the replica with the fewest outstanding requests wins;
- a revision with no ready replica (scaled to zero, or still starting) holds the request,
  wakes the controller and forwards it once a replica is ready — the first request after
  scale-from-zero succeeds (KServe #2882);
- per-revision concurrency and request counts feed the autoscaler;
- request rate and latency per service and per revision (:mod:`shipyard.serving.reqstats`)
  are served as JSON at ``GET /serving/{namespace}/{name}/_stats?window=60`` (outside the
  model's ``/v1`` and ``/v2`` paths), which the dashboard polls.

The routing table is written by the controller (from its threads) with :meth:`set_route`;
it holds only what the controller observed, and is rebuilt by reconciling after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson

from shipyard.serving.reqstats import SPAN, RequestWindow
from shipyard.serving.upstream import UpstreamPool

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
_DROP = {b"date", b"server"}
_HOP = {b"host", b"connection", b"keep-alive", b"transfer-encoding", b"content-length"}
HOLD_TIMEOUT = 60.0


@dataclass
class Replica:
    url: str
    pod: str
    inflight: int = 0


@dataclass
class RevisionStats:
    """Observed load of one revision, read by the autoscaler."""

    inflight: int = 0
    waiting: int = 0
    area: float = 0.0  # integral of inflight over time (for average concurrency)
    count: int = 0
    last_t: float = field(default_factory=time.monotonic)
    last_request: float = 0.0
    window: RequestWindow = field(default_factory=RequestWindow)  # rate and latency

    def change(self, delta: int) -> None:
        now = time.monotonic()
        self.area += self.inflight * (now - self.last_t)
        self.last_t = now
        self.inflight += delta

    def sample(self) -> tuple[float, float, int]:
        """(time, concurrency area so far, requests so far)."""
        self.change(0)
        return self.last_t, self.area, self.count


@dataclass
class Route:
    traffic: list[tuple[str, int]]  # (revision, percent)
    replicas: dict[str, list[Replica]]
    timeout: float = HOLD_TIMEOUT
    weights: dict[str, int] = field(default_factory=dict)
    owner: str = ""  # the InferenceService (a route may be one of its components)

    def pick_revision(self) -> str | None:
        """Smooth weighted round robin over revisions with a share of traffic."""
        live = [(r, p) for r, p in self.traffic if p > 0]
        if not live:
            return None
        if len(live) == 1:
            return live[0][0]
        total = sum(p for _, p in live)
        best = None
        for rev, pct in live:
            self.weights[rev] = self.weights.get(rev, 0) + pct
            if best is None or self.weights[rev] > self.weights[best]:
                best = rev
        assert best is not None
        self.weights[best] -= total
        return best


class Gateway:
    # The platform's server calls the gateway at its ASGI entry, before FastAPI's
    # middleware and router (see server/app.py): the gateway answers its own errors.
    bypass_middleware = True

    def __init__(self, platform: Any) -> None:
        self.platform = platform
        self._routes: dict[tuple[str, str], Route] = {}
        self._stats: dict[tuple[str, str, str], RevisionStats] = {}
        self._ingress: dict[tuple[str, str], RequestWindow] = {}  # per route, as called
        self._replicas: dict[str, Replica] = {}
        self._waiters: dict[tuple[str, str], list[asyncio.Future[None]]] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pools: dict[str, UpstreamPool] = {}

    # -- controller side (any thread) ---------------------------------------------------------

    def set_route(
        self,
        namespace: str,
        name: str,
        traffic: list[tuple[str, int]],
        endpoints: dict[str, list[tuple[str, str]]],
        timeout: float = HOLD_TIMEOUT,
        owner: str | None = None,
    ) -> None:
        """Publish the ready replicas (pod, url) per revision and the traffic split of the
        route ``name``: an InferenceService, or one of its components (``NAME-predictor``
        behind a transformer), whose ``owner`` is the InferenceService."""
        key = (namespace, name)
        with self._lock:
            replicas = {}
            for rev, eps in endpoints.items():
                replicas[rev] = [
                    self._replicas.setdefault(url, Replica(url, pod)) for pod, url in eps
                ]
            old = self._routes.get(key)
            route = Route(traffic, replicas, timeout, owner=owner or name)
            if old is not None and old.traffic == traffic:
                route.weights = old.weights
            self._routes[key] = route
            ready = any(replicas.get(r) for r, p in traffic if p > 0)
            waiters = self._waiters.pop(key, []) if ready else []
        if waiters and self._loop is not None:
            self._loop.call_soon_threadsafe(_wake_all, waiters)

    def remove(self, namespace: str, name: str) -> None:
        """Forget the routes of an InferenceService (all its components)."""
        with self._lock:
            for key in [
                k for k, r in self._routes.items() if k[0] == namespace and r.owner == name
            ]:
                del self._routes[key]
                self._ingress.pop(key, None)
            self._routes.pop((namespace, name), None)
            self._ingress.pop((namespace, name), None)
            for k in [k for k in self._stats if k[:2] == (namespace, name)]:
                del self._stats[k]

    def stats(self, namespace: str, name: str, revision: str) -> RevisionStats:
        key = (namespace, name, revision)
        st = self._stats.get(key)
        if st is None:
            st = self._stats.setdefault(key, RevisionStats())
        return st

    # -- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        target = self._target(path, scope)
        if target is None:
            await _reply(
                send,
                404,
                {
                    "error": f"no inference service at {path!r}: use "
                    "/serving/NAMESPACE/NAME/v1|v2/..."
                },
            )
            return
        namespace, name, rest = target
        try:
            if rest == STATS_PATH:
                await self._serve_stats(namespace, name, scope, send)
                return
            await self._forward(namespace, name, rest, scope, receive, send)
        except _GatewayError as exc:
            headers = [(b"retry-after", b"1")] if exc.status == 503 else []
            await _reply(send, exc.status, {"error": exc.message}, headers)

    def _target(self, path: str, scope: dict[str, Any]) -> tuple[str, str, str] | None:
        parts = path.lstrip("/").split("/", 2)
        if parts and parts[0] in ("v1", "v2"):
            host = b""
            for k, v in scope["headers"]:
                if k == b"host":
                    host = v
            labels = host.decode().split(":")[0].split(".")
            if len(labels) >= 2:
                return labels[1], labels[0], path
            return None
        if len(parts) < 3:
            return None
        return parts[0], parts[1], "/" + parts[2]

    async def _replica(self, namespace: str, name: str, qs: str) -> tuple[str, Replica, Route]:
        key = (namespace, name)
        deadline = time.monotonic() + HOLD_TIMEOUT
        while True:
            route = self._routes.get(key)
            rev = route.pick_revision() if route is not None else None
            if route is None and not self._exists(namespace, name):
                raise _GatewayError(404, f"inference service {namespace}/{name} not found")
            owner = route.owner if route is not None else name
            if rev is not None and route is not None:
                reps = route.replicas.get(rev)
                if reps:
                    return rev, min(reps, key=lambda r: r.inflight), route
                deadline = min(deadline, time.monotonic() + route.timeout)
            # No ready replica: hold the request, wake the controller (scale from zero).
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _GatewayError(
                    503, f"inference service {namespace}/{name} has no ready replica yet"
                )
            st = self.stats(namespace, owner, rev or "")
            st.waiting += 1
            st.last_request = time.monotonic()
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            with self._lock:
                self._waiters.setdefault(key, []).append(fut)
            self.platform.manager.enqueue(_ISVC_KEY, namespace, owner)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(fut, min(remaining, 1.0))
            finally:
                st.waiting -= 1

    def _exists(self, namespace: str, name: str) -> bool:
        return self.platform.store.try_get(_ISVC_KEY, namespace, name) is not None

    async def _forward(
        self,
        namespace: str,
        name: str,
        rest: str,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
    ) -> None:
        body = await _body(receive)
        qs = scope.get("query_string", b"").decode()
        headers = [(k, v) for k, v in scope["headers"] if k not in _HOP]
        method = scope["method"]
        t0 = time.monotonic()
        for attempt in range(3):
            try:
                rev, rep, route = await self._replica(namespace, name, qs)
            except _GatewayError as exc:
                if exc.status == 503:  # held until the deadline: the caller saw an error
                    self._ingress_window(namespace, name).record(time.monotonic() - t0, True)
                raise
            st = self.stats(namespace, route.owner, rev)
            st.count += 1
            st.last_request = time.monotonic()
            st.change(1)
            rep.inflight += 1
            try:
                pool = self._pool(rep, route.timeout)
                path = rest + (f"?{qs}" if qs else "")
                status, rheaders, rbody = await pool.request(method, path, headers, body)
            except Exception as exc:
                if attempt == 2:
                    took = time.monotonic() - t0
                    st.window.record(took, True)
                    self._ingress_window(namespace, name).record(took, True)
                    raise _GatewayError(503, f"replica {rep.pod} failed: {exc}") from None
                self._drop(rep)
                continue
            finally:
                rep.inflight -= 1
                st.change(-1)
            took = time.monotonic() - t0
            st.window.record(took, status >= 500)
            self._ingress_window(namespace, name).record(took, status >= 500)
            out = [(k, v) for k, v in rheaders if k not in _HOP and k not in _DROP]
            out.append((b"x-shipyard-revision", rev.encode()))
            out.append((b"content-length", str(len(rbody)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": out})
            await send({"type": "http.response.body", "body": rbody})
            return

    def _ingress_window(self, namespace: str, name: str) -> RequestWindow:
        win = self._ingress.get((namespace, name))
        if win is None:
            win = self._ingress.setdefault((namespace, name), RequestWindow())
        return win

    # -- request rate and latency -------------------------------------------------------------

    def report(self, namespace: str, name: str, window: int = 60, step: int = 5) -> dict[str, Any]:
        """Request rate and latency of the InferenceService ``name`` over the last ``window``
        seconds: the service as called (``requests``, and ``series``: points every ``step``
        seconds over the last five minutes) and each revision it has (``revisions``: its
        component, traffic percent, ready replicas, in-flight requests and the same figures).
        """
        now, wall = time.monotonic(), time.time()
        routes = [
            (k[1], r)
            for k, r in list(self._routes.items())
            if k[0] == namespace and (r.owner == name or k[1] == name)
        ]
        stats = {k[2]: st for k, st in list(self._stats.items()) if k[:2] == (namespace, name)}
        revs: dict[str, dict[str, Any]] = {}
        for _, route in routes:
            for rev, pct in route.traffic:
                revs.setdefault(rev, {})["percent"] = pct
                revs[rev]["replicas"] = len(route.replicas.get(rev) or [])
        out = []
        for rev in sorted(set(revs) | {r for r in stats if r}):
            st = stats.get(rev)
            win = st.window if st is not None else RequestWindow()
            out.append(
                {
                    "revision": rev,
                    "component": "transformer" if "-transformer-" in rev else "predictor",
                    "percent": revs.get(rev, {}).get("percent", 0),
                    "replicas": revs.get(rev, {}).get("replicas", 0),
                    "inflight": st.inflight if st is not None else 0,
                    **win.summary(window, now),
                }
            )
        ingress = self._ingress.get((namespace, name)) or RequestWindow()
        return {
            "namespace": namespace,
            "name": name,
            "windowSeconds": max(1, min(SPAN, window)),
            "requests": ingress.summary(window, now),
            "revisions": out,
            "series": {"stepSeconds": step, "points": ingress.series(step, SPAN, now, wall)},
        }

    async def _serve_stats(
        self, namespace: str, name: str, scope: dict[str, Any], send: Send
    ) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            raise _GatewayError(405, f"{STATS_PATH} answers GET only")
        query = parse_qs(scope.get("query_string", b"").decode())
        try:
            window = int((query.get("window") or ["60"])[0])
            if not 1 <= window <= SPAN:
                raise ValueError
        except ValueError:
            raise _GatewayError(
                400, f"window: give whole seconds from 1 to {SPAN} (e.g. ?window=60)"
            ) from None
        if (namespace, name) not in self._routes and not self._exists(namespace, name):
            raise _GatewayError(404, f"inference service {namespace}/{name} not found")
        await _reply(send, 200, self.report(namespace, name, window))

    def _drop(self, rep: Replica) -> None:
        """A replica refused a connection: stop sending to it until the controller decides."""
        with self._lock:
            for route in self._routes.values():
                for rev, reps in route.replicas.items():
                    if rep in reps:
                        route.replicas[rev] = [r for r in reps if r is not rep]

    def _pool(self, rep: Replica, timeout: float) -> UpstreamPool:
        pool = self._pools.get(rep.url)
        if pool is None:
            pool = self._pools[rep.url] = UpstreamPool(rep.url, timeout)
        return pool


_ISVC_KEY = "serving.kserve.io/InferenceService"
STATS_PATH = "/_stats"


class _GatewayError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _wake_all(waiters: list[asyncio.Future[None]]) -> None:
    for fut in waiters:
        if not fut.done():
            fut.set_result(None)


async def _body(receive: Receive) -> bytes:
    parts = []
    while True:
        msg = await receive()
        parts.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(parts)


async def _reply(
    send: Send, status: int, obj: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = orjson.dumps(obj)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
