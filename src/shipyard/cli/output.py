"""Rendering for the CLI: tables, YAML/JSON, describe, one-line errors."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NoReturn

import yaml
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _width() -> int | None:
    """Piped output (scripts, grep) is not wrapped at 80 columns: each row stays one line.
    A terminal, or $COLUMNS, sets the width as usual."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return None
    return 4096


out = Console(soft_wrap=True, highlight=False, width=_width())
err = Console(stderr=True, highlight=False, soft_wrap=True)

Obj = dict[str, Any]


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as block literals, as people write them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(obj: Any, *, many: bool = False) -> str:
    if many:
        return yaml.dump_all(obj, Dumper=_Dumper, sort_keys=False)
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False)


def fail(message: str, code: int = 1) -> NoReturn:
    # The message is text, not markup: a '[/...]' in a path or value must print as it is.
    err.print(f"[red]error:[/red] {escape(message)}", markup=True, highlight=False)
    sys.exit(code)


def print_table(tbl: Obj, *, wide: bool = False) -> None:
    cols = [c for c in tbl["columnDefinitions"] if wide or c.get("priority", 0) == 0]
    idx = [i for i, c in enumerate(tbl["columnDefinitions"]) if wide or c.get("priority", 0) == 0]
    if not tbl["rows"]:
        err.print("No resources found.")
        return
    t = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    for c in cols:
        t.add_column(c["name"], overflow="fold")
    for row in tbl["rows"]:
        t.add_row(*(escape(str(row["cells"][i])) for i in idx))
    out.print(t)


def dump(objs: list[Obj] | Obj, fmt: str) -> None:
    if fmt == "json":
        out.print_json(json.dumps(objs))
        return
    if isinstance(objs, list):
        text = to_yaml(objs, many=True) if len(objs) != 1 else to_yaml(objs[0])
    else:
        text = to_yaml(objs)
    out.print(text, end="", markup=False)


def describe(obj: Obj) -> None:
    md = obj["metadata"]
    status = obj.get("status") or {}
    rows = [
        ("Name", md.get("name")),
        ("Namespace", md.get("namespace")),
        ("Kind", f"{obj.get('kind')} ({obj.get('apiVersion')})"),
        ("Labels", ", ".join(f"{k}={v}" for k, v in (md.get("labels") or {}).items()) or "<none>"),
        (
            "Annotations",
            ", ".join(f"{k}={v}" for k, v in (md.get("annotations") or {}).items()) or "<none>",
        ),
        ("Created", md.get("creationTimestamp")),
        ("UID", md.get("uid")),
        (
            "Owner",
            ", ".join(f"{r['kind']}/{r['name']}" for r in md.get("ownerReferences") or []) or None,
        ),
        ("Deleting since", md.get("deletionTimestamp")),
        ("Phase", status.get("phase")),
        ("Reason", status.get("reason")),
        ("Message", status.get("message")),
    ]
    for label, value in rows:
        if value:
            out.print(
                f"[bold]{label + ':':<16}[/bold]{escape(str(value))}", markup=True, highlight=False
            )
    for key in ("initContainerStatuses", "containerStatuses"):
        if status.get(key):
            t = Table(
                title="Init containers" if key.startswith("init") else "Containers",
                box=box.SIMPLE_HEAD,
                title_justify="left",
            )
            for col in ("NAME", "STATE", "REASON", "EXIT", "RESTARTS", "STARTED", "FINISHED"):
                t.add_column(col)
            for cs in status[key]:
                state_name, state = next(iter((cs.get("state") or {"waiting": {}}).items()))
                t.add_row(
                    *(
                        escape(str(v))
                        for v in (
                            cs["name"],
                            state_name,
                            state.get("reason", ""),
                            state.get("exitCode", ""),
                            cs.get("restartCount", 0),
                            state.get("startedAt", ""),
                            state.get("finishedAt", ""),
                        )
                    )
                )
            out.print(t)
    if status.get("conditions"):
        t = Table(title="Conditions", box=box.SIMPLE_HEAD, title_justify="left")
        for col in ("TYPE", "STATUS", "REASON", "MESSAGE", "LAST TRANSITION"):
            t.add_column(col, overflow="fold")
        for c in status["conditions"]:
            t.add_row(
                *(
                    escape(str(c.get(k) or ""))
                    for k in ("type", "status", "reason", "message", "lastTransitionTime")
                )
            )
        out.print(t)
    if obj.get("spec"):
        out.print("[bold]Spec:[/bold]", markup=True)
        out.print(_indent(to_yaml(obj["spec"])), markup=False)
    rest = {
        k: v
        for k, v in status.items()
        if k
        not in (
            "conditions",
            "phase",
            "reason",
            "message",
            "containerStatuses",
            "initContainerStatuses",
        )
    }
    if rest:
        out.print("[bold]Status:[/bold]", markup=True)
        out.print(_indent(to_yaml(rest)), markup=False)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.rstrip().splitlines())
