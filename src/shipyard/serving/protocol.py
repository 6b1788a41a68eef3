"""V1 and V2 (Open Inference Protocol) request/response codecs, including the binary tensor
extension that tritonclient sends with ``binary_data=True``.

Requests are decoded straight from bytes into numpy arrays (no pydantic round trip): this is
the hot path of the model server.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson

HEADER_LENGTH = "inference-header-content-length"

# V2 datatype -> numpy dtype. BF16 has no numpy dtype: it is widened to float32.
DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BF16": np.float32,
    "BYTES": np.object_,
}
_BY_KIND = {
    np.dtype(np.bool_): "BOOL",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.uint16): "UINT16",
    np.dtype(np.uint32): "UINT32",
    np.dtype(np.uint64): "UINT64",
    np.dtype(np.int8): "INT8",
    np.dtype(np.int16): "INT16",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
    np.dtype(np.float16): "FP16",
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
}


class ProtocolError(Exception):
    """A request the protocol refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def datatype_of(arr: np.ndarray) -> str:
    if arr.dtype.kind in ("O", "U", "S"):
        return "BYTES"
    try:
        return _BY_KIND[arr.dtype]
    except KeyError:
        raise ProtocolError(f"cannot send numpy dtype {arr.dtype} over V2", 500) from None


# ---------------------------------------------------------------------------------------------
# V2 requests


def parse_v2(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    """The JSON part of a V2 request and the binary tail (empty without the extension)."""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise ProtocolError(
                f"Inference-Header-Content-Length {header_length!r} is not a number"
            ) from None
        if n < 0 or n > len(body):
            raise ProtocolError(
                f"Inference-Header-Content-Length {n} exceeds the body's {len(body)} bytes"
            )
        head, tail = body[:n], body[n:]
    else:
        head, tail = body, b""
    try:
        req = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(req, dict):
        raise ProtocolError("request body must be a JSON object with 'inputs'")
    if not isinstance(req.get("inputs"), list) or not req["inputs"]:
        raise ProtocolError("request must have a non-empty 'inputs' list")
    return req, tail


def decode_inputs(req: dict[str, Any], tail: bytes) -> dict[str, np.ndarray]:
    """Every input of a V2 request as a numpy array of its declared shape and datatype."""
    out: dict[str, np.ndarray] = {}
    offset = 0
    for i, inp in enumerate(req["inputs"]):
        if not isinstance(inp, dict):
            raise ProtocolError(f"inputs[{i}] must be an object")
        name = inp.get("name")
        if not isinstance(name, str):
            raise ProtocolError(f"inputs[{i}] has no 'name'")
        shape, datatype = inp.get("shape"), inp.get("datatype")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise ProtocolError(f"input {name!r}: 'shape' must be a list of non-negative ints")
        if datatype not in DTYPES:
            raise ProtocolError(
                f"input {name!r}: unknown datatype {datatype!r}; use one of {', '.join(DTYPES)}"
            )
        params = inp.get("parameters") or {}
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None:
            if not isinstance(size, int) or offset + size > len(tail):
                raise ProtocolError(f"input {name!r}: binary_data_size {size} exceeds the body")
            out[name] = _from_binary(name, tail[offset : offset + size], shape, datatype)
            offset += size
        else:
            if "data" not in inp:
                raise ProtocolError(f"input {name!r} has no 'data'")
            out[name] = _from_json(name, inp["data"], shape, datatype)
    return out


def _count(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _from_json(name: str, data: Any, shape: list[int], datatype: str) -> np.ndarray:
    try:
        if datatype == "BYTES":
            arr = np.array(data, dtype=np.object_)
            arr = np.array(
                [x.encode() if isinstance(x, str) else x for x in arr.reshape(-1)], dtype=np.object_
            )
        else:
            arr = np.asarray(data, dtype=DTYPES[datatype])
    except (ValueError, TypeError, OverflowError) as exc:
        raise ProtocolError(
            f"input {name!r}: data does not fit datatype {datatype}: {exc}"
        ) from None
    if arr.size != _count(shape):
        raise ProtocolError(
            f"input {name!r}: shape {shape} needs {_count(shape)} values, data has {arr.size}"
        )
    return arr.reshape(shape)


def _from_binary(name: str, raw: bytes, shape: list[int], datatype: str) -> np.ndarray:
    n = _count(shape)
    if datatype == "BYTES":
        items: list[bytes] = []
        pos = 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise ProtocolError(f"input {name!r}: truncated BYTES element")
            (length,) = struct.unpack_from("<I", raw, pos)
            items.append(raw[pos + 4 : pos + 4 + length])
            pos += 4 + length
        arr = np.empty(len(items), dtype=np.object_)
        arr[:] = items
    elif datatype == "BF16":
        half = np.frombuffer(raw, dtype="<u2")
        arr = (half.astype(np.uint32) << 16).view(np.float32)
    elif datatype == "BOOL":
        arr = np.frombuffer(raw, dtype=np.bool_)
    else:
        dt = np.dtype(DTYPES[datatype]).newbyteorder("<")
        if len(raw) % dt.itemsize:
            raise ProtocolError(f"input {name!r}: {len(raw)} bytes is not a whole {datatype}")
        arr = np.frombuffer(raw, dtype=dt)
    if arr.size != n:
        raise ProtocolError(f"input {name!r}: shape {shape} needs {n} values, got {arr.size}")
    return arr.reshape(shape)


# ---------------------------------------------------------------------------------------------
# V2 responses


def wants_binary(req: dict[str, Any]) -> tuple[bool, dict[str, bool]]:
    """(all outputs binary by default, per-output override) from the request."""
    params = req.get("parameters") or {}
    default = bool(params.get("binary_data_output")) if isinstance(params, dict) else False
    per: dict[str, bool] = {}
    for o in req.get("outputs") or []:
        if isinstance(o, dict) and isinstance(o.get("name"), str):
            p = o.get("parameters") or {}
            if isinstance(p, dict) and "binary_data" in p:
                per[o["name"]] = bool(p["binary_data"])
    return default, per


def _to_bytes(arr: np.ndarray) -> bytes:
    if arr.dtype.kind in ("O", "U", "S"):
        parts = []
        for x in arr.reshape(-1):
            b = x if isinstance(x, bytes) else str(x).encode()
            parts.append(struct.pack("<I", len(b)) + b)
        return b"".join(parts)
    return np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def _json_data(arr: np.ndarray) -> list[Any]:
    flat = arr.reshape(-1)
    if arr.dtype.kind == "O":
        return [x.decode(errors="replace") if isinstance(x, bytes) else x for x in flat.tolist()]
    if arr.dtype.kind == "S":
        return [x.decode(errors="replace") for x in flat.tolist()]
    return list(flat.tolist())


def encode_v2(
    model_name: str,
    model_version: str | None,
    request_id: str | None,
    outputs: dict[str, np.ndarray],
    req: dict[str, Any],
) -> tuple[bytes, dict[str, str]]:
    """The response body and extra headers (the binary extension when asked for)."""
    default_binary, per = wants_binary(req)
    requested = [str(o.get("name")) for o in req.get("outputs") or [] if isinstance(o, dict)]
    if requested:
        missing = [n for n in requested if n not in outputs]
        if missing:
            raise ProtocolError(f"unknown output {missing[0]!r}; outputs: {', '.join(outputs)}")
        outputs = {n: outputs[n] for n in requested}
    tail: list[bytes] = []
    out_list = []
    for name, arr in outputs.items():
        entry: dict[str, Any] = {
            "name": name,
            "datatype": datatype_of(arr),
            "shape": list(arr.shape),
        }
        if per.get(name, default_binary):
            raw = _to_bytes(arr)
            entry["parameters"] = {"binary_data_size": len(raw)}
            tail.append(raw)
        else:
            entry["data"] = _json_data(arr)
        out_list.append(entry)
    resp: dict[str, Any] = {"model_name": model_name, "outputs": out_list}
    if model_version:
        resp["model_version"] = model_version
    if request_id is not None:
        resp["id"] = request_id
    head = orjson.dumps(resp, option=orjson.OPT_SERIALIZE_NUMPY)
    if not tail:
        return head, {}
    return head + b"".join(tail), {"Inference-Header-Content-Length": str(len(head))}


# ---------------------------------------------------------------------------------------------
# V1


def parse_v1(body: bytes) -> list[Any]:
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(req, dict):
        raise ProtocolError('request body must be a JSON object with "instances"')
    instances = req.get("instances", req.get("inputs"))
    if not isinstance(instances, list):
        raise ProtocolError('request must have an "instances" list')
    return instances


def encode_v1(predictions: Any) -> bytes:
    if isinstance(predictions, np.ndarray):
        predictions = predictions.tolist()
    return orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY)
