"""Tracking from inside any Pod: ``shipyard.log_param``, ``log_metric``, ``log_artifact``,
``log_input`` and ``log_model``.

The platform gives every Pod ``SHIPYARD_URL`` and its identity (``SHIPYARD_POD_NAMESPACE``,
``SHIPYARD_POD_NAME``, ``SHIPYARD_POD_UID``); the platform finds the run (the Trial, the
training job, or the Pod itself) from the Pod's owners. httpx is imported on first use, so
``import shipyard`` stays light.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

_STATE: dict[str, Any] = {}  # per process: the HTTP client and whether code was sent


class TrackingError(RuntimeError):
    """Logging failed: not inside a Pod, the platform unreachable, or the input refused."""


def _identity() -> tuple[str, str, str, str]:
    url = os.environ.get("SHIPYARD_URL")
    pod = os.environ.get("SHIPYARD_POD_NAME")
    if not url or not pod:
        raise TrackingError(
            "shipyard tracking works inside a Pod run by Shipyard (SHIPYARD_URL and "
            "SHIPYARD_POD_NAME are not set in this process)"
        )
    ns = os.environ.get("SHIPYARD_POD_NAMESPACE") or "default"
    return url.rstrip("/"), ns, pod, os.environ.get("SHIPYARD_POD_UID", "")


def _http() -> Any:
    import httpx

    client = _STATE.get("http")
    if client is None:
        client = httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0))
        _STATE["http"] = client
    return client


def _call(method: str, path: str, **kw: Any) -> Any:
    import httpx

    url, _, _, _ = _identity()
    try:
        resp = _http().request(method, url + path, **kw)
    except httpx.HTTPError as exc:
        raise TrackingError(f"cannot reach the platform at {url}: {exc}") from None
    if resp.status_code >= 400:
        try:
            message = resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = resp.text[:300]
        raise TrackingError(f"the platform refused it ({resp.status_code}): {message}")
    return resp.json()


def _code() -> dict[str, str] | None:
    """The main script's path and digest, sent once per process."""
    if _STATE.get("code_sent"):
        return None
    _STATE["code_sent"] = True
    main = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if main is None or not main.is_file():
        return None
    digest = hashlib.sha256(main.read_bytes()).hexdigest()
    return {"path": str(main.resolve()), "digest": f"sha256:{digest}"}


def _log(**body: Any) -> dict[str, Any]:
    _, ns, pod, uid = _identity()
    body["uid"] = uid
    code = _code()
    if code:
        body["code"] = code
    result: dict[str, Any] = _call(
        "POST", f"/tracking/v1/namespaces/{ns}/pods/{pod}/log", json=body
    )
    return result


def log_param(name: str, value: Any) -> None:
    """Record one parameter of this run (kept as a string)."""
    _log(params={name: value})


def log_params(params: dict[str, Any]) -> None:
    _log(params=dict(params))


def log_metric(name: str, value: float, step: int | None = None) -> None:
    """Append one point to a metric's history (``step`` defaults to the next one)."""
    _log(metrics=[{"name": name, "value": value, "step": step, "timestamp": time.time()}])


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    now = time.time()
    _log(
        metrics=[
            {"name": k, "value": v, "step": step, "timestamp": now} for k, v in metrics.items()
        ]
    )


def upload(path: str | Path) -> dict[str, Any]:
    """Store a file or folder in the platform's artifact store; return ``{uri, digest, size}``."""
    src = Path(path)
    if not src.exists():
        raise TrackingError(f"{src}: no such file or directory")
    with tempfile.TemporaryFile() as spool:
        if src.is_dir():
            with tarfile.open(fileobj=spool, mode="w") as tar:
                for item in sorted(src.rglob("*")):
                    if item.is_file() and not item.is_symlink():
                        tar.add(item, arcname=item.relative_to(src).as_posix(), recursive=False)
            ctype = "application/x-tar"
        else:
            with open(src, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    spool.write(chunk)
            ctype = "application/octet-stream"
        spool.seek(0)
        result: dict[str, Any] = _call(
            "POST",
            "/tracking/v1/artifacts",
            content=iter(lambda: spool.read(1 << 20), b""),
            headers={"content-type": ctype},
        )
    return result


def log_artifact(path: str | Path, name: str | None = None) -> dict[str, Any]:
    """Upload a file or folder as an output of this run; return ``{uri, digest, ...}``."""
    stored = upload(path)
    entry = {
        "name": name or Path(path).name,
        "uri": stored["uri"],
        "direction": "output",
        "path": str(path),
        "size": stored.get("size"),
    }
    _log(artifacts=[entry])
    return {**stored, "name": entry["name"]}


def log_input(source: str | Path, name: str | None = None) -> dict[str, Any]:
    """Record a dataset (a file, a folder or an ``artifact://`` URI) this run consumed.

    Local files are stored (content-addressed: the digest identifies the data)."""
    text = str(source)
    entry: dict[str, Any]
    if text.startswith("artifact://"):
        entry = {"name": name or text.rsplit("/", 1)[-1][:12], "uri": text, "direction": "input"}
        _log(artifacts=[entry])
        return entry
    if "://" in text:
        entry = {"name": name or text.rsplit("/", 1)[-1], "uri": text, "direction": "input"}
        _log(artifacts=[entry])
        return entry
    stored = upload(source)
    entry = {
        "name": name or Path(source).name,
        "uri": stored["uri"],
        "direction": "input",
        "path": text,
        "size": stored.get("size"),
    }
    _log(artifacts=[entry])
    return {**stored, "name": entry["name"]}


def log_model(
    model: Any,
    name: str,
    *,
    register: bool = True,
    format: str | None = None,
    input_example: Any = None,
    description: str | None = None,
) -> dict[str, Any]:
    """Save ``model`` in the format its serving runtime loads, upload it, and (by default)
    register it as the next version of the model ``name``.

    Returns the ModelVersion (``register=True``) or the stored artifact. The version records
    this run's params and latest metrics and points back at the run."""
    from shipyard.tracking.models import save

    _, ns, pod, uid = _identity()
    with tempfile.TemporaryDirectory(prefix="shipyard-model-") as tmp:
        saved = save(model, Path(tmp) / "model", format, input_example)
        stored = upload(Path(tmp) / "model")
    body: dict[str, Any] = {
        "uid": uid,
        "name": name,
        "artifactUri": stored["uri"],
        "format": saved.format,
        "frameworkVersions": saved.framework_versions,
        "register": register,
    }
    if saved.signature:
        body["signature"] = saved.signature
    if description:
        body["description"] = description
    code = _code()
    if code:
        body["code"] = code
    result: dict[str, Any] = _call(
        "POST", f"/tracking/v1/namespaces/{ns}/pods/{pod}/models", json=body
    )
    return result
