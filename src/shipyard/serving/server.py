"""The model server: V1 and V2 (Open Inference Protocol) over REST, as a lean ASGI app.

No framework routing and no per-request pydantic: the path is split by hand, bodies are
decoded with orjson straight into numpy, and the app runs on uvicorn with httptools and
uvloop. Several models per server; adaptive batching per model (``--max-batch-size``);
errors in the protocol's shape ``{"error": "..."}`` with 400 / 404 / 503 / 500, malformed
bodies included.

    python -m shipyard.serving.server --model iris:sklearn:/models/iris --http-port 8081
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from shipyard.serving.batching import Batcher
from shipyard.serving.model import Model, create_model
from shipyard.serving.protocol import (
    ProtocolError,
    decode_inputs,
    encode_v1,
    encode_v2,
    parse_v1,
    parse_v2,
)

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
JSON_HEADERS = [(b"content-type", b"application/json")]
VERSION = "0.1.0"


class RequestLogger:
    """Request/response logging (KServe's logger modes all / request / response) as JSON
    lines appended to a sink file, one ``write`` per record."""

    def __init__(self, path: Path, mode: str = "all") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.requests = mode in ("all", "request")
        self.responses = mode in ("all", "response")

    def write(self, kind: str, model: str, rid: str, body: bytes, status: int = 0) -> None:
        rec: dict[str, Any] = {"time": time.time(), "type": kind, "model": model, "id": rid}
        if status:
            rec["status"] = status
        try:
            rec["body"] = orjson.loads(body)
        except orjson.JSONDecodeError:
            rec["body"] = body[:4096].decode(errors="replace")
        os.write(self.fd, orjson.dumps(rec) + b"\n")


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "shipyard_serving_requests_total",
            "Inference requests by model, protocol and status",
            ["model", "protocol", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "shipyard_serving_request_duration_seconds",
            "Inference latency by model",
            ["model"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=self.registry,
        )
        self.batch = Histogram(
            "shipyard_serving_batch_size",
            "Rows per predict call by model",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )


class Hosted:
    """A model plus its batcher and metric children."""

    def __init__(self, model: Model, metrics: ServerMetrics, batching: tuple[int, float] | None):
        self.model = model
        self.latency = metrics.latency.labels(model.name)
        self.batch_hist = metrics.batch.labels(model.name)
        self.batcher: Batcher | None = None
        if batching and model.batchable:
            size, latency = batching
            self.batcher = Batcher(model.predict, size, latency, self.batch_hist.observe)

    async def infer(self, payload: Any) -> Any:
        model = self.model
        x = model.preprocess(payload)
        if self.batcher is not None and isinstance(x, np.ndarray) and x.ndim >= 1:
            y = await self.batcher.submit(x)
        else:
            if isinstance(x, np.ndarray) and x.ndim >= 1:
                self.batch_hist.observe(x.shape[0])
            y = model.predict(x)
            if asyncio.iscoroutine(y):
                y = await y
        return model.postprocess(y)


def _outputs(result: Any) -> dict[str, np.ndarray]:
    if isinstance(result, dict):
        return {str(k): np.asarray(v) for k, v in result.items()}
    return {"output-0": np.asarray(result)}


class ModelServer:
    """The ASGI app."""

    def __init__(
        self,
        models: list[Model],
        *,
        batching: tuple[int, float] | None = None,
        logger: RequestLogger | None = None,
    ) -> None:
        self.metrics = ServerMetrics()
        self.models = {m.name: Hosted(m, self.metrics, batching) for m in models}
        self.logger = logger
        self._ids = itertools.count(1)
        self._counters: dict[tuple[str, str, int], Any] = {}

    # -- plumbing -----------------------------------------------------------------------------

    @staticmethod
    async def _body(receive: Receive) -> bytes:
        msg = await receive()
        body: bytes = msg.get("body", b"")
        if not msg.get("more_body"):
            return body
        parts = [body]
        while msg.get("more_body"):
            msg = await receive()
            parts.append(msg.get("body", b""))
        return b"".join(parts)

    @staticmethod
    async def _send(
        send: Send,
        status: int,
        body: bytes,
        headers: list[tuple[bytes, bytes]] = JSON_HEADERS,
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _error(self, send: Send, status: int, message: str) -> None:
        headers = JSON_HEADERS
        if status == 503:
            headers = [*JSON_HEADERS, (b"retry-after", b"1")]
        await self._send(send, status, orjson.dumps({"error": message}), headers)

    def _count(self, model: str, protocol: str, code: int) -> None:
        key = (model, protocol, code)
        child = self._counters.get(key)
        if child is None:
            child = self._counters[key] = self.metrics.requests.labels(model, protocol, str(code))
        child.inc()

    def _hosted(self, name: str, version: str | None = None) -> Hosted:
        hosted = self.models.get(name)
        if hosted is None or (version and hosted.model.version not in (None, version)):
            what = f"{name} version {version}" if version else name
            raise ProtocolError(f"model {what!r} not found on this server", 404)
        if not hosted.model.ready:
            raise ProtocolError(f"model {name!r} is not ready", 503)
        return hosted

    # -- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        try:
            if path.startswith("/v2"):
                await self._v2(path, method, scope, receive, send)
            elif path.startswith("/v1/models"):
                await self._v1(path, method, scope, receive, send)
            elif path == "/metrics":
                body = generate_latest(self.metrics.registry)
                await self._send(send, 200, body, [(b"content-type", CONTENT_TYPE_LATEST.encode())])
            elif path in ("/", "/healthz"):
                await self._send(send, 200, b'{"status":"alive"}')
            else:
                raise ProtocolError(f"no such path: {path}", 404)
        except ProtocolError as exc:
            await self._error(send, exc.status, exc.message)
        except Exception as exc:  # an inference error: protocol shape, never a traceback
            await self._error(send, 500, f"{type(exc).__name__}: {exc}")

    async def _v2(
        self, path: str, method: str, scope: dict[str, Any], receive: Receive, send: Send
    ) -> None:
        parts = path.rstrip("/").split("/")[2:]  # after "", "v2"
        if not parts:
            body = {"name": "shipyard", "version": VERSION, "extensions": ["binary_tensor_data"]}
            await self._send(send, 200, orjson.dumps(body))
            return
        if parts[0] == "health" and len(parts) == 2 and parts[1] in ("live", "ready"):
            ok = parts[1] == "live" or all(h.model.ready for h in self.models.values())
            await self._send(send, 200 if ok else 503, orjson.dumps({parts[1]: ok}))
            return
        if parts[0] != "models" or len(parts) < 2:
            raise ProtocolError(f"no such path: {path}", 404)
        name, rest = parts[1], parts[2:]
        version = None
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = rest[1], rest[2:]
        if rest == ["infer"]:
            if method != "POST":
                raise ProtocolError("use POST for infer", 405)
            await self._v2_infer(name, version, scope, receive, send)
            return
        if rest == ["ready"]:
            hosted = self.models.get(name)
            if hosted is None:
                raise ProtocolError(f"model {name!r} not found on this server", 404)
            ready = hosted.model.ready
            await self._send(
                send, 200 if ready else 503, orjson.dumps({"name": name, "ready": ready})
            )
            return
        if rest:
            raise ProtocolError(f"no such path: {path}", 404)
        hosted = self._hosted(name, version)
        meta = {"name": name, "versions": [hosted.model.version or "1"], **hosted.model.metadata()}
        meta.setdefault("platform", "shipyard")
        await self._send(send, 200, orjson.dumps(meta))

    async def _v2_infer(
        self, name: str, version: str | None, scope: dict[str, Any], receive: Receive, send: Send
    ) -> None:
        start = time.perf_counter()
        body = await self._body(receive)
        code = 500
        try:
            hosted = self._hosted(name, version)
            header_len = None
            for k, v in scope["headers"]:
                if k == b"inference-header-content-length":
                    header_len = v.decode()
            req, tail = parse_v2(body, header_len)
            rid = req.get("id")
            rid = str(rid) if rid is not None else str(next(self._ids))
            if self.logger is not None and self.logger.requests:
                head = body[: int(header_len)] if header_len else body
                self.logger.write("request", name, rid, head)
            result = await hosted.infer(decode_inputs(req, tail))
            out, extra = encode_v2(name, hosted.model.version, rid, _outputs(result), req)
            if self.logger is not None and self.logger.responses:
                n = int(extra.get("Inference-Header-Content-Length") or len(out))
                self.logger.write("response", name, rid, out[:n], 200)
            headers = JSON_HEADERS
            if extra:
                headers = [
                    (b"content-type", b"application/octet-stream"),
                    *((k.lower().encode(), v.encode()) for k, v in extra.items()),
                ]
            code = 200
            await self._send(send, 200, out, headers)
            hosted.latency.observe(time.perf_counter() - start)
        except ProtocolError as exc:
            code = exc.status
            raise
        finally:
            self._count(name, "v2", code)

    async def _v1(
        self, path: str, method: str, scope: dict[str, Any], receive: Receive, send: Send
    ) -> None:
        rest = path[len("/v1/models") :].strip("/")
        if not rest:
            await self._send(send, 200, orjson.dumps({"models": list(self.models)}))
            return
        if rest.endswith(":predict") or rest.endswith(":explain"):
            name, _, verb = rest.rpartition(":")
            if method != "POST":
                raise ProtocolError(f"use POST for :{verb}", 405)
            if verb == "explain":
                raise ProtocolError(f"model {name!r} has no explainer", 501)
            await self._v1_predict(name, receive, send)
            return
        hosted = self.models.get(rest)
        if hosted is None:
            raise ProtocolError(f"model {rest!r} not found on this server", 404)
        ready = hosted.model.ready
        await self._send(send, 200 if ready else 503, orjson.dumps({"name": rest, "ready": ready}))

    async def _v1_predict(self, name: str, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        body = await self._body(receive)
        code = 500
        try:
            hosted = self._hosted(name)
            instances = parse_v1(body)
            rid = str(next(self._ids))
            if self.logger is not None and self.logger.requests:
                self.logger.write("request", name, rid, body)
            result = await hosted.infer(instances)
            out = encode_v1(result)
            if self.logger is not None and self.logger.responses:
                self.logger.write("response", name, rid, out, 200)
            code = 200
            await self._send(send, 200, out)
            hosted.latency.observe(time.perf_counter() - start)
        except ProtocolError as exc:
            code = exc.status
            raise
        finally:
            self._count(name, "v1", code)


# ---------------------------------------------------------------------------------------------
# Process entry point


def parse_model(text: str) -> tuple[str, str, Path | None]:
    """``NAME:FORMAT:PATH`` (PATH may be empty for a custom model without files)."""
    name, sep, rest = text.partition(":")
    fmt, _, path = rest.partition(":")
    if not sep or not name or not fmt:
        raise ValueError(f"--model {text!r}: use NAME:FORMAT:PATH")
    return name, fmt, Path(path) if path else None


def build(args: argparse.Namespace) -> ModelServer:
    models = []
    for spec in args.model:
        name, fmt, path = parse_model(spec)
        model = create_model(name, fmt, path)
        model.load()
        models.append(model)
    batching = None
    if args.max_batch_size:
        batching = (args.max_batch_size, args.max_latency_ms / 1000.0)
    logger = RequestLogger(Path(args.log_sink), args.log_mode) if args.log_sink else None
    return ModelServer(models, batching=batching, logger=logger)


def _serve(app: ModelServer, sock: socket.socket) -> None:
    import uvicorn

    config = uvicorn.Config(
        app,
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    uvicorn.Server(config).run(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="shipyard.serving.server", description=__doc__)
    p.add_argument("--model", action="append", required=True, help="NAME:FORMAT:PATH")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--max-batch-size", type=int, default=0, help="0: no batching")
    p.add_argument("--max-latency-ms", type=float, default=5.0)
    p.add_argument("--log-sink", default="")
    p.add_argument("--log-mode", default="all", choices=("all", "request", "response"))
    p.add_argument("--workers", type=int, default=1, help="processes sharing the socket")
    args = p.parse_args(argv)
    try:
        app = build(args)
    except Exception as exc:
        print(f"model server: failed to load: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    # The model and the imports live as long as the process: keep them out of the cyclic
    # collector's full passes, which otherwise stall requests in flight.
    gc.freeze()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.http_port))
    sock.listen(2048)
    children = []
    for _ in range(max(0, args.workers - 1)):
        pid = os.fork()
        if pid == 0:
            _serve(app, sock)
            os._exit(0)
        children.append(pid)
    if children:

        def _forward(signum: int, _frame: Any) -> None:
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)

        signal.signal(signal.SIGTERM, _forward)
    print(f"model server: serving {', '.join(app.models)} on {args.host}:{args.http_port}")
    sys.stdout.flush()
    _serve(app, sock)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
