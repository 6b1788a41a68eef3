"""The transformer component: a custom Python pre/post-processor in front of the predictor.

As in KServe (``spec.transformer``), the transformer is its own container with its own
replicas. The controller starts the container's command with KServe's arguments appended:
``--model_name NAME --predictor_host HOST:PORT/serving/NS/NAME-predictor --http_port PORT``.
A transformer written for Shipyard subclasses :class:`Transformer` and calls :func:`serve`::

    from shipyard.serving.transformer import Transformer, serve

    class Scale(Transformer):
        def preprocess(self, payload, headers=None):
            return [[v / 10 for v in row] for row in payload]   # V1: the instances

    if __name__ == "__main__":
        serve(Scale)

Requests reach the transformer through the gateway; ``preprocess`` gets what a model does
(V1: the ``instances`` list; V2: a dict of input name to numpy array); ``predict`` sends
the result to the predictor in the same protocol (a dict goes as V2 inputs, anything else
as V1 instances) and ``postprocess`` gets the predictor's answer (V1: the ``predictions``;
V2: a dict of output name to numpy array). The predictor is reached through the gateway, so
its canary split, autoscaling and scale-from-zero apply.
"""

from __future__ import annotations

import argparse
import gc
import socket
import sys
from typing import Any

import numpy as np
import orjson

from shipyard.serving.model import Model
from shipyard.serving.protocol import DTYPES, ProtocolError, datatype_of
from shipyard.serving.upstream import UpstreamPool

_JSON = [(b"content-type", b"application/json")]


class Transformer(Model):
    """A model whose ``predict`` calls the predictor over HTTP."""

    def __init__(self, name: str, predictor_host: str, timeout: float = 60.0) -> None:
        super().__init__(name)
        host, _, prefix = predictor_host.removeprefix("http://").partition("/")
        self.predictor_host = predictor_host
        self._prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self._pool = UpstreamPool(f"http://{host}", timeout)

    async def predict(self, inputs: Any) -> Any:
        if isinstance(inputs, dict):
            return await self._v2(inputs)
        body = orjson.dumps({"instances": inputs}, option=orjson.OPT_SERIALIZE_NUMPY)
        out = await self._call(f"/v1/models/{self.name}:predict", body)
        return out.get("predictions")

    async def _v2(self, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        tensors = []
        for name, value in inputs.items():
            arr = np.asarray(value)
            data = arr.ravel().tolist()
            if arr.dtype.kind == "S":
                data = [v.decode(errors="replace") for v in data]
            tensors.append(
                {
                    "name": str(name),
                    "shape": list(arr.shape),
                    "datatype": datatype_of(arr),
                    "data": data,
                }
            )
        out = await self._call(f"/v2/models/{self.name}/infer", orjson.dumps({"inputs": tensors}))
        result = {}
        for o in out.get("outputs") or []:
            dtype = DTYPES.get(o.get("datatype", "FP64"), np.float64)
            result[o["name"]] = np.asarray(o.get("data"), dtype=dtype).reshape(o.get("shape"))
        return result

    async def _call(self, path: str, body: bytes) -> Any:
        try:
            status, _, raw = await self._pool.request("POST", self._prefix + path, _JSON, body)
        except (OSError, TimeoutError) as exc:
            message = f"predictor at {self.predictor_host} unreachable: {exc}"
            raise ProtocolError(message, 503) from None
        try:
            out = orjson.loads(raw)
        except orjson.JSONDecodeError:
            out = {"error": raw[:500].decode(errors="replace")}
        if status != 200:
            error = out.get("error") if isinstance(out, dict) else None
            raise ProtocolError(f"predictor: {error or raw[:500]!r}", status)
        return out


def parser() -> argparse.ArgumentParser:
    """KServe's transformer arguments (what the controller appends to the command)."""
    p = argparse.ArgumentParser(description="a Shipyard/KServe transformer")
    p.add_argument("--model_name", default="model")
    p.add_argument("--predictor_host", required=True)
    p.add_argument("--http_port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1")
    return p


def serve(cls: type[Transformer], argv: list[str] | None = None) -> None:
    """Run ``cls`` as a transformer server (V1 and V2 over REST, like the model server)."""
    from shipyard.serving.server import ModelServer, _serve

    args, _ = parser().parse_known_args(argv)
    try:
        model = cls(args.model_name, args.predictor_host)
        model.load()
    except Exception as exc:
        print(f"model server: failed to load: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    app = ModelServer([model])
    gc.freeze()  # as the model server: long-lived objects out of full collections
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.http_port))
    sock.listen(2048)
    print(f"transformer: serving {args.model_name} on {args.host}:{args.http_port}", flush=True)
    _serve(app, sock)
