"""CLI for serving: ``shipyard serve PATH --name NAME`` and ``shipyard predict NAME -d @FILE``.

``shipyard get isvc`` needs nothing here (its table comes from the kind's columns);
``shipyard logs isvc/NAME`` prints the replicas' logs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from shipyard.cli import output
from shipyard.cli.main import LOG_SOURCES, Namespace, app, client


@app.command()
def serve(
    path: Annotated[str, typer.Argument(help="Model folder or file (or s3://, models:/ URI).")],
    name: Annotated[str, typer.Option("--name", help="InferenceService name.")],
    model_format: Annotated[
        str,
        typer.Option("--format", help="sklearn, xgboost, lightgbm, pytorch, onnx or custom."),
    ] = "sklearn",
    namespace: Namespace = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return without waiting.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for Ready.")] = 120.0,
) -> None:
    """Serve a model: create or update an InferenceService and wait until it is Ready."""
    if "://" not in path and not Path(path).expanduser().exists():
        output.fail(f"{path}: no such file or directory")
    with client() as c:
        obj = c.serve(
            path, name, model_format, namespace=namespace, wait=not no_wait, timeout=timeout
        )
    url = (obj.get("status") or {}).get("url", "")
    state = "created" if no_wait else "ready"
    output.out.print(f"inferenceservice/{name} {state}" + (f" at {url}" if url else ""))


@app.command()
def predict(
    name: Annotated[str, typer.Argument(help="InferenceService name.")],
    data: Annotated[
        str,
        typer.Option("--data", "-d", help="JSON request, @FILE, or @- for stdin."),
    ],
    namespace: Namespace = None,
    model: Annotated[
        str | None, typer.Option(help="Model name inside the server (default: NAME).")
    ] = None,
) -> None:
    """Send a V1 ({"instances": ...}) or V2 ({"inputs": ...}) request through the gateway."""
    if data.startswith("@"):
        src = data[1:]
        try:
            raw = sys.stdin.buffer.read() if src == "-" else Path(src).read_bytes()
        except OSError as exc:
            output.fail(f"{src}: {exc.strerror}")
    else:
        raw = data.encode()
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        output.fail(f"--data is not valid JSON: {exc}")
    if not isinstance(payload, dict) or not ({"instances", "inputs"} & set(payload)):
        output.fail('--data must be a JSON object with "instances" (V1) or "inputs" (V2)')
    with client() as c:
        result = c.predict(name, payload, namespace=namespace, model=model)
    output.out.print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


def _replicas(c: Any, name: str, namespace: str | None, part: str | None) -> list[Any]:
    pods = c.list("pods", namespace, selector=f"serving.kserve.io/inferenceservice={name}")
    return [
        (p["metadata"]["name"], p["metadata"]["name"], "kserve-container")
        for p in pods
        if not part or part in p["metadata"]["name"]
    ]


LOG_SOURCES["InferenceService"] = _replicas
