"""CLI for the model registry and tracking.

``shipyard register``, ``alias``, ``resolve``, ``delete-version``, ``compare``, ``lineage``
and ``gc``. ``shipyard get registeredmodels|modelversions|trackingruns`` need nothing here.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from shipyard.cli import output
from shipyard.cli.main import Namespace, app, client


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            output.fail(f"--{what} {item!r}: use NAME=VALUE")
        out[key] = value
    return out


@app.command()
def register(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    source: Annotated[str, typer.Argument(help="Model file or folder, or an artifact:// URI.")],
    model_format: Annotated[
        str | None, typer.Option("--format", help="sklearn, xgboost, lightgbm, pytorch, onnx.")
    ] = None,
    metric: Annotated[list[str] | None, typer.Option(help="NAME=VALUE (repeatable).")] = None,
    param: Annotated[list[str] | None, typer.Option(help="NAME=VALUE (repeatable).")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    namespace: Namespace = None,
) -> None:
    """Register a model file/folder (uploaded) or artifact as the next version of NAME."""
    metrics: dict[str, float] = {}
    for k, v in _pairs(metric, "metric").items():
        try:
            metrics[k] = float(v)
        except ValueError:
            output.fail(f"--metric {k}={v}: the value must be a number")
    with client() as c:
        mv = c.register_model(
            name,
            source,
            namespace=namespace,
            format=model_format,
            metrics=metrics,
            params=_pairs(param, "param"),
            description=description,
        )
    output.out.print(
        f"modelversion/{mv['metadata']['name']} registered (version {mv['spec']['version']}, "
        f"{mv['spec']['artifactUri']})"
    )


@app.command()
def alias(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    name: Annotated[str, typer.Argument(help="Alias, e.g. production.")],
    version: Annotated[int | None, typer.Argument(help="Version number.")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    namespace: Namespace = None,
) -> None:
    """Point an alias at a version (it moves from wherever it pointed), or remove it."""
    if version is None and not delete:
        output.fail("alias needs a VERSION (or --delete)")
    with client() as c:
        c.set_alias(model, name, None if delete else version, namespace)
    if delete:
        output.out.print(f"alias {name} of {model} removed")
    else:
        output.out.print(f"alias {name} of {model} -> version {version}")


@app.command()
def resolve(
    uri: Annotated[str, typer.Argument(help="models:/NAME/VERSION, models:/NAME@ALIAS, ...")],
    namespace: Namespace = None,
) -> None:
    """Print which version a models:/ URI names and where its files are."""
    with client() as c:
        r = c.resolve_model(uri, namespace)
    mv = r["modelVersion"]
    output.out.print(
        f"{uri} -> modelversion/{mv['metadata']['name']} (version {mv['spec']['version']}) "
        f"{mv['spec']['artifactUri']} at {r['location']}"
    )


@app.command("delete-version")
def delete_version(
    model: Annotated[str, typer.Argument()],
    version: Annotated[int, typer.Argument()],
    force: Annotated[
        bool, typer.Option("--force", help="Even if a service serves it or an alias names it.")
    ] = False,
    namespace: Namespace = None,
) -> None:
    """Delete one model version (refused while an InferenceService serves it)."""
    with client() as c:
        c.delete_version(model, version, force=force, namespace=namespace)
    output.out.print(f"modelversion/{model}-v{version} deleted")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@app.command()
def compare(
    runs: Annotated[list[str], typer.Argument(help="Tracking runs (or trial/job/pod names).")],
    history: Annotated[
        bool, typer.Option("--history", help="Also print every metric's history.")
    ] = False,
    output_fmt: Annotated[str | None, typer.Option("--output", "-o", help="json")] = None,
    namespace: Namespace = None,
) -> None:
    """Params and metrics of runs side by side (differing params marked with *)."""
    with client() as c:
        result = c.compare(*runs, namespace=namespace)
    if output_fmt == "json":
        output.out.print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    names = [r["name"] for r in result["runs"]]
    tbl = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
    tbl.add_column("")
    for n in names:
        tbl.add_column(escape(n))
    tbl.add_row(
        "execution",
        *(escape(f"{r['execution']['kind']}/{r['execution']['name']}") for r in result["runs"]),
    )
    differing = set(result["differentParams"])
    for p, row in result["params"].items():
        label = f"param {p}{' *' if p in differing else ''}"
        tbl.add_row(escape(label), *(escape(_fmt(row.get(n))) for n in names))
    for m, row in result["metrics"].items():
        cells = []
        for n in names:
            cell = row.get(n)
            cells.append(
                "-"
                if cell is None
                else f"{_fmt(cell['last'])} (min {_fmt(cell['min'])}, max "
                f"{_fmt(cell['max'])}, {cell['steps']} steps)"
            )
        tbl.add_row(escape(f"metric {m}"), *cells)
    output.out.print(tbl)
    if history:
        for m, row in result["metrics"].items():
            for n in names:
                cell = row.get(n)
                if cell:
                    points = " ".join(f"{s}:{_fmt(v)}" for s, v in cell["history"])
                    output.out.print(escape(f"{m} [{n}] {points}"))


def _node_line(node: dict[str, Any]) -> str:
    t = node.get("type", "")
    if t == "Artifact":
        name = f" {node['name']}" if node.get("name") else ""
        return f"artifact{name} {node.get('digest') or node.get('uri')}"
    if t == "TrackingRun":
        bits = [f"run {node['name']}"]
        if node.get("task"):
            bits.append(f"task={node['task']}")
        if node.get("params"):
            bits.append("params " + ", ".join(f"{k}={v}" for k, v in node["params"].items()))
        if node.get("metrics"):
            bits.append(
                "metrics " + ", ".join(f"{k}={_fmt(v)}" for k, v in node["metrics"].items())
            )
        if node.get("code"):
            bits.append(f"code {node['code'].get('digest')} ({node['code'].get('path')})")
        return "; ".join(bits)
    if t == "ModelVersion":
        aliases = ",".join(node.get("aliases") or [])
        return f"modelversion {node['name']} (v{node.get('version')}" + (
            f", aliases {aliases})" if aliases else ")"
        )
    if t == "InferenceService":
        return f"inferenceservice {node['name']} ({node.get('storageUri')}) {node.get('url') or ''}"
    return f"{t.lower()} {node.get('name')}"


@app.command()
def lineage(
    ref: Annotated[
        str, typer.Argument(help="model/NAME/VERSION (VERSION: number, latest or alias).")
    ],
    output_fmt: Annotated[str | None, typer.Option("--output", "-o", help="json")] = None,
    namespace: Namespace = None,
) -> None:
    """Print where a model version came from (upstream) and where it runs (downstream)."""
    parts = ref.split("/")
    if len(parts) != 3 or parts[0] not in ("model", "models", "modelversion") or not all(parts):
        output.fail(f"{ref!r}: use model/NAME/VERSION, e.g. model/iris/3 or model/iris/production")
    with client() as c:
        graph = c.lineage(parts[1], parts[2], namespace)
    if output_fmt == "json":
        output.out.print(orjson.dumps(graph, option=orjson.OPT_INDENT_2).decode())
        return
    nodes = {n["id"]: n for n in graph["nodes"]}
    incoming: dict[str, list[tuple[str, str]]] = {}
    outgoing: dict[str, list[tuple[str, str]]] = {}
    for e in graph["edges"]:
        incoming.setdefault(e["to"], []).append((e["from"], e["relation"]))
        outgoing.setdefault(e["from"], []).append((e["to"], e["relation"]))
    root = graph["root"]
    output.out.print(escape(_node_line(nodes[root])))
    output.out.print("upstream:")
    _walk(root, incoming, nodes, "  ", set(), "<-")
    output.out.print("downstream:")
    down = set(graph["downstream"])
    if not down:
        output.out.print("  (nothing serves or consumes it)")
    seen: set[str] = set()
    for e in graph["edges"]:
        if e["to"] in down and e["from"] not in down and e["to"] not in seen:
            seen.add(e["to"])
            output.out.print(escape(f"  -> [{e['relation']}] {_node_line(nodes[e['to']])}"))
            _walk(e["to"], outgoing, nodes, "     ", seen, "->", only=down)


def _walk(
    nid: str,
    adj: dict[str, list[tuple[str, str]]],
    nodes: dict[str, Any],
    indent: str,
    seen: set[str],
    arrow: str,
    only: set[str] | None = None,
) -> None:
    for other, rel in adj.get(nid, []):
        if only is not None and other not in only:
            continue
        if other in seen:
            output.out.print(escape(f"{indent}{arrow} [{rel}] {_node_line(nodes[other])} (above)"))
            continue
        seen.add(other)
        output.out.print(escape(f"{indent}{arrow} [{rel}] {_node_line(nodes[other])}"))
        _walk(other, adj, nodes, indent + "   ", seen, arrow, only)


@app.command()
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, delete nothing.")] = False,
    min_age: Annotated[
        str, typer.Option("--min-age", help="Keep artifacts younger than this (10m, 0s).")
    ] = "10m",
) -> None:
    """Remove artifacts that no resource references."""
    from shipyard.client import parse_duration

    with client() as c:
        r = c.gc_artifacts(dry_run=dry_run, min_age=parse_duration(min_age))
    verb = "would remove" if dry_run else "removed"
    for uri in r["removed"]:
        output.out.print(f"{verb} {uri}")
    output.out.print(
        f"{verb} {len(r['removed'])} artifacts ({r['freedBytes']} bytes), kept {r['kept']}"
    )
