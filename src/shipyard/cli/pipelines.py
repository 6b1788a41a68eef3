"""Pipeline commands: ``run``, ``compile``, ``cancel-run``, ``retry-run``; ``describe run``
and ``logs run/NAME --task T`` through the CLI's extension points."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from shipyard.cli import output
from shipyard.cli.main import DESCRIBERS, LOG_SOURCES, Namespace, app, client

Obj = dict[str, Any]
_STYLE = {
    "Succeeded": "green",
    "Cached": "cyan",
    "Failed": "red",
    "Running": "yellow",
    "Skipped": "dim",
    "Cancelled": "magenta",
    "Pending": "dim",
}


def _parse_params(items: list[str] | None) -> Obj:
    out: Obj = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            output.fail(f"parameter {item!r}: use -p KEY=VALUE")
        try:
            out[key] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            out[key] = raw
        if isinstance(out[key], str | int | float | bool | list | dict) is False:
            out[key] = raw
    return out


@app.command("compile")
def compile_cmd(
    file: Annotated[Path, typer.Argument(help="Python file defining a @dsl.pipeline.")],
    out: Annotated[Path | None, typer.Option("--output", "-o", help="Write YAML here.")] = None,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Which pipeline, if several.")
    ] = None,
) -> None:
    """Compile a pipeline to a Pipeline resource (YAML, byte-identical for the same source)."""
    from shipyard.pipelines.compiler import load, to_yaml

    text = to_yaml(load(file, pipeline))
    if out is None:
        output.out.print(text, end="", markup=False)
    else:
        out.write_text(text)
        output.out.print(f"wrote {out}")


@app.command("run")
def run_cmd(
    file: Annotated[Path, typer.Argument(help="Pipeline: .py with @dsl.pipeline, or YAML.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE (repeatable).")
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Show live task progress.")] = False,
    name: Annotated[str | None, typer.Option("--name", help="Run name.")] = None,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Which pipeline, if several.")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every task.")] = False,
    namespace: Namespace = None,
    timeout: Annotated[float, typer.Option(help="With --watch: give up after (s).")] = 3600,
) -> None:
    """Compile, submit and (with --watch) follow a pipeline run."""
    with client() as c:
        handle = c.run_pipeline(
            file,
            _parse_params(param),
            name=name,
            namespace=namespace,
            pipeline=pipeline,
            cache=not no_cache,
            source_dir=str(file.resolve().parent),
        )
        output.out.print(f"pipelinerun/{handle.name} created")
        if not watch:
            return
        status = _watch(c, handle, timeout)
    phase = status.get("phase")
    if phase != "Succeeded":
        output.fail(f"run {handle.name} {phase}: {status.get('message', '')}")


def _watch(c: Any, handle: Any, timeout: float) -> Obj:
    from rich.live import Live

    deadline = time.monotonic() + timeout
    status: Obj = {}
    with Live(_tree(handle.name, status), console=output.out, refresh_per_second=8) as live:
        while time.monotonic() < deadline:
            status = handle.status
            live.update(_tree(handle.name, status))
            if status.get("phase") in ("Succeeded", "Failed", "Cancelled"):
                break
            try:
                for _ in c.watch("pipelineruns", handle.namespace, name=handle.name, timeout=0.5):
                    break
            except Exception:
                time.sleep(0.2)
    if not output.out.is_terminal:
        output.out.line()  # Live ends its last render with a newline only on a terminal
    return status


def _tree(name: str, status: Obj) -> Any:
    from rich.tree import Tree

    phase = status.get("phase", "Pending")
    dur = status.get("durationSeconds")
    label = f"[bold]{name}[/bold] [{_STYLE.get(phase, 'white')}]{phase}[/]"
    if dur is not None:
        label += f" ({dur:.2f}s)"
    tree = Tree(label)
    for tid, t in (status.get("tasks") or {}).items():
        state = t.get("state", "Pending")
        line = f"[{_STYLE.get(state, 'white')}]{state:<9}[/] {tid}"
        if t.get("durationSeconds") is not None:
            line += f"  {t['durationSeconds']:.3f}s"
        if t.get("attempts", 0) > 1:
            line += f"  attempts={t['attempts']}"
        if t.get("outputs"):
            shown = json.dumps(t["outputs"], default=str)
            line += f"  outputs={shown[:80]}"
        if t.get("artifacts"):
            line += "  artifacts=" + ",".join(sorted(t["artifacts"]))
        if t.get("message"):
            line += f"  [dim]{t['message'][:120]}[/dim]"
        tree.add(line)
    if status.get("message"):
        tree.add(f"[dim]{status['message']}[/dim]")
    return tree


def describe_run(c: Any, obj: Obj) -> None:
    md = obj["metadata"]
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    output.out.print(f"Name:        {md['name']}")
    output.out.print(f"Namespace:   {md.get('namespace', '')}")
    pipeline = (spec.get("pipelineRef") or {}).get("name") or "(inline)"
    output.out.print(f"Pipeline:    {pipeline}")
    params = status.get("parameters") or spec.get("parameters") or {}
    output.out.print(f"Parameters:  {json.dumps(params, default=str)}")
    if status.get("outputs"):
        output.out.print(f"Outputs:     {json.dumps(status['outputs'], default=str)}")
    output.out.print(_tree(md["name"], status))


def log_sources(c: Any, name: str, namespace: str | None, task: str | None) -> list[Any]:
    obj = c.get("pipelineruns", name, namespace)
    tasks = (obj.get("status") or {}).get("tasks") or {}
    chosen = {tid: t for tid, t in tasks.items() if t.get("pod")}
    if task:
        named = {tid: t for tid, t in tasks.items() if tid == task or t.get("task") == task}
        chosen = {tid: t for tid, t in named.items() if t.get("pod")}
        if named and not chosen:
            output.fail(_ran_no_pod(name, task, next(iter(named.values()))))
        if not chosen:
            known = ", ".join(sorted(tasks)) or "none"
            output.fail(f"run {name} has no task {task!r} (tasks: {known})")
    return [(tid, t["pod"], "main") for tid, t in chosen.items()]


def _ran_no_pod(run: str, task: str, t: Obj) -> str:
    """Why a task of a run has no log: it ran no Pod (cached, skipped, not started)."""
    state = t.get("state") or "Pending"
    said = f"task {task!r} of run {run} ran no Pod: it is {state}"
    src = t.get("cachedFrom") or {}
    if state == "Cached" and src.get("run") and src.get("task"):
        return (
            f"{said}, with the outputs of run {src['run']}'s task {src['task']} "
            f"(shipyard logs run/{src['run']} --task {src['task']})"
        )
    return f"{said} ({t['message']})" if t.get("message") else said


@app.command("cancel-run")
def cancel_run(name: str, namespace: Namespace = None) -> None:
    """Cancel a pipeline run: running tasks are stopped, no new ones start."""
    with client() as c:
        c.pipeline_run(name, namespace).cancel()
    output.out.print(f"pipelinerun/{name} cancelling")


@app.command("retry-run")
def retry_run(name: str, namespace: Namespace = None) -> None:
    """Re-run a failed or cancelled run from its failed tasks, keeping successful ones."""
    with client() as c:
        c.pipeline_run(name, namespace).retry()
    output.out.print(f"pipelinerun/{name} retrying")


DESCRIBERS["PipelineRun"] = describe_run
LOG_SOURCES["PipelineRun"] = log_sources
