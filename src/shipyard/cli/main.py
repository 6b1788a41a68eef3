"""``shipyard``: run the platform and work with its resources, kubectl-style."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from shipyard import __version__
from shipyard.cli import output
from shipyard.errors import ShipyardError

app = typer.Typer(
    help="Shipyard: Kubeflow's capabilities in one pip install.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Namespace = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Namespace (default: default).")
]


def client() -> Any:
    from shipyard.client import Client

    return Client()


# Extension points for components (filled by the modules imported in _load_components):
# LOG_SOURCES[kind] -> fn(client, name, namespace, part) returning [(prefix, pod, container)],
#   so `shipyard logs trainjob/NAME --replica worker-1` or `logs run/NAME --task T` work;
# DESCRIBERS[kind] -> fn(client, obj) printing a kind-specific view for `describe`.
LogSource = Any
LOG_SOURCES: dict[str, LogSource] = {}
DESCRIBERS: dict[str, Any] = {}


def split_ref(kind: str, name: str | None) -> tuple[str, str | None]:
    """``pod/NAME`` or ``pod NAME``."""
    if "/" in kind and name is None:
        k, _, n = kind.partition("/")
        return k, n
    return kind, name


@app.command()
def version() -> None:
    """Print the version."""
    output.out.print(f"shipyard {__version__}")


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help="State folder (default ~/.shipyard or $SHIPYARD_DATA_DIR)."
        ),
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="Store URL: sqlite:///PATH or postgresql://USER@HOST/DB.")
    ] = None,
    apply: Annotated[
        list[Path] | None,
        typer.Option("--apply", "-f", help="Apply these files or folders once up."),
    ] = None,
    runtime: Annotated[
        str | None, typer.Option(help="Where Pods run: local (default) or kubernetes.")
    ] = None,
    artifacts: Annotated[
        str | None,
        typer.Option(help="Artifact store: a folder or s3://BUCKET/PREFIX (fsspec URL)."),
    ] = None,
    kube_namespace: Annotated[
        str | None, typer.Option(help="Kubernetes namespace for Pods (--runtime kubernetes).")
    ] = None,
    kubeconfig: Annotated[
        str | None, typer.Option(help="kubeconfig file (default: in-cluster or $KUBECONFIG).")
    ] = None,
) -> None:
    """Run API, controllers and the runtime (local processes by default) until Ctrl-C."""
    import time

    from shipyard.core.config import load
    from shipyard.server.serve import run_foreground

    started = time.perf_counter()
    if artifacts:
        os.environ["SHIPYARD_ARTIFACTS"] = artifacts
    settings = load(
        host=host,
        port=port,
        data_dir=data_dir,
        store_url=store,
        runtime=runtime,
        kube_namespace=kube_namespace,
        kubeconfig=kubeconfig,
    )

    def ready(platform: Any, url: str) -> None:
        from shipyard.serving.prewarm import prewarm

        prewarm(platform)  # model servers' imports start now, in their own process
        store_kind = "postgresql" if not platform.store.is_sqlite else "sqlite"
        output.out.print(
            f"Shipyard {__version__} is up at [bold]{url}[/bold] "
            f"(store: {store_kind}, data: {settings.data_dir}, "
            f"ready in {time.perf_counter() - started:.2f}s). Ctrl-C stops it and its Pods.",
            markup=True,
        )
        if apply:
            from shipyard.client import Client, read_sources

            try:
                with Client(url) as c:
                    for r in c.apply_documents(read_sources(apply)):
                        output.out.print(f"{r.ref} {r.action}")
            except Exception as exc:  # report, keep serving
                msg = exc.message if isinstance(exc, ShipyardError) else str(exc)
                where = ", ".join(str(p) for p in apply)
                output.err.print(f"[red]error:[/red] applying {where}: {msg}", markup=True)

    with contextlib.suppress(KeyboardInterrupt):
        run_foreground(settings, on_ready=ready)
    output.out.print("Shipyard stopped.")


@app.command()
def apply(
    filename: Annotated[
        list[str],
        typer.Option("--filename", "-f", help="File, folder or - for stdin (repeatable)."),
    ],
    namespace: Namespace = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate on the server, write nothing.")
    ] = False,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-R", help="Also read the subfolders of folders.")
    ] = False,
) -> None:
    """Create or update resources from YAML/JSON files (multi-document)."""
    from shipyard.client import read_sources

    with client() as c:
        docs = read_sources(filename, recursive=recursive)
        results = c.apply_documents(docs, namespace, dry_run=dry_run)
    for r in results:
        output.out.print(f"{r.ref} {r.action}{' (dry run)' if dry_run else ''}")


@app.command()
def get(
    kind: Annotated[
        str, typer.Argument(help="Resource type: pods, po, namespaces, ... or TYPE/NAME.")
    ],
    name: Annotated[str | None, typer.Argument()] = None,
    namespace: Namespace = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A")] = False,
    selector: Annotated[
        str | None, typer.Option("--selector", "-l", help="Label selector.")
    ] = None,
    output_fmt: Annotated[
        str | None, typer.Option("--output", "-o", help="wide, yaml or json.")
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Keep printing changes.")] = False,
) -> None:
    """List resources as a table, or print them as YAML/JSON."""
    kind, name = split_ref(kind, name)
    if output_fmt not in (None, "wide", "yaml", "json", "name"):
        output.fail(f"unknown output format {output_fmt!r}: use wide, yaml, json or name")
    with client() as c:
        if output_fmt in ("yaml", "json"):
            if name:
                output.dump(c.get(kind, name, namespace), output_fmt)
            else:
                items = c.list(kind, namespace, all_namespaces=all_namespaces, selector=selector)
                output.dump(items if output_fmt == "yaml" else {"items": items}, output_fmt)
            return
        if output_fmt == "name":
            for o in c.list(kind, namespace, all_namespaces=all_namespaces, selector=selector):
                output.out.print(f"{o['kind'].lower()}/{o['metadata']['name']}")
            return
        tbl = c.list_page(
            kind, namespace, all_namespaces=all_namespaces, selector=selector, name=name, table=True
        )
        if name and not tbl["rows"]:
            c.get(kind, name, namespace)  # raises NotFound with the message
        output.print_table(tbl, wide=output_fmt == "wide")
        if watch:
            for ev in c.watch(
                kind,
                namespace,
                all_namespaces=all_namespaces,
                selector=selector,
                name=name,
                resource_version=tbl["metadata"]["resourceVersion"],
            ):
                o = ev["object"]
                phase = (o.get("status") or {}).get("phase", "")
                output.out.print(
                    f"{ev['type']:<9} {o['kind'].lower()}/{o['metadata']['name']} {phase}"
                )


@app.command()
def describe(
    kind: Annotated[str, typer.Argument(help="Resource type, or TYPE/NAME.")],
    name: Annotated[str | None, typer.Argument()] = None,
    namespace: Namespace = None,
) -> None:
    """Show one resource in detail: metadata, containers, conditions, spec and status."""
    kind, name = split_ref(kind, name)
    if not name:
        output.fail("describe needs a name: shipyard describe TYPE NAME")
    with client() as c:
        obj = c.get(kind, name or "", namespace)
        custom = DESCRIBERS.get(obj["kind"])
        if custom is not None:
            custom(c, obj)
        else:
            output.describe(obj)


@app.command()
def delete(
    kind: Annotated[str | None, typer.Argument(help="Resource type, or TYPE/NAME.")] = None,
    names: Annotated[list[str] | None, typer.Argument()] = None,
    namespace: Namespace = None,
    filename: Annotated[
        list[str] | None, typer.Option("--filename", "-f", help="Delete what these files define.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until it is gone.")] = True,
    timeout: Annotated[str, typer.Option(help="How long to wait.")] = "60s",
    recursive: Annotated[
        bool, typer.Option("--recursive", "-R", help="Also read the subfolders of folders.")
    ] = False,
) -> None:
    """Delete resources (and, cascading, what they own)."""
    from shipyard.client import parse_duration, read_sources

    targets: list[tuple[str, str, str | None]] = []
    with client() as c:
        if filename:
            for obj, _ in read_sources(filename, recursive=recursive):
                t = c._type_of(obj)
                targets.append(
                    (
                        f"{t.plural}.{t.group}" if t.group else t.plural,
                        obj["metadata"]["name"],
                        obj["metadata"].get("namespace") or namespace,
                    )
                )
        elif kind:
            k, n = split_ref(kind, None)
            all_names = ([n] if n else []) + list(names or [])
            if not all_names:
                output.fail("delete needs a name: shipyard delete TYPE NAME (or -f FILE)")
            targets += [(k, x, namespace) for x in all_names]
        else:
            output.fail("delete needs TYPE NAME or -f FILE")
        for k, n, ns in targets:
            obj = c.delete(k, n, ns, wait=wait, timeout=parse_duration(timeout))
            output.out.print(f"{obj['kind'].lower()}/{n} deleted")


@app.command()
def logs(
    ref: Annotated[str, typer.Argument(help="Pod name, pod/NAME, or KIND/NAME of a workload.")],
    namespace: Namespace = None,
    container: Annotated[str | None, typer.Option("--container", "-c")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
    tail: Annotated[int | None, typer.Option("--tail")] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="Pipeline run: this task only.")
    ] = None,
    replica: Annotated[
        str | None, typer.Option("--replica", help="Job: this replica only (e.g. worker-1).")
    ] = None,
) -> None:
    """Print a Pod's log (``-f`` to follow until it stops); for workloads, their Pods' logs
    prefixed by replica or task."""
    kind, name = split_ref(ref, None) if "/" in ref else ("pod", ref)
    with client() as c:
        if kind in ("pod", "pods", "po"):
            sources = [("", name or "", container)]
        else:
            t = c.resource(kind)
            source = LOG_SOURCES.get(t.kind)
            if source is None:
                output.fail(f"logs of {t.plural} are not available; use pod/NAME")
            sources = source(c, name or "", namespace, task or replica)
        for prefix, pod, cont in sources:
            for chunk in c.logs(pod, namespace, container=cont, follow=follow, tail=tail):
                if prefix:
                    chunk = "".join(f"[{prefix}] {line}\n" for line in chunk.splitlines())
                sys.stdout.write(chunk)
                sys.stdout.flush()


@app.command()
def wait(
    ref: Annotated[str, typer.Argument(help="TYPE/NAME, e.g. pod/hello.")],
    name: Annotated[str | None, typer.Argument()] = None,
    for_: Annotated[
        str,
        typer.Option(
            "--for",
            help="condition=NAME[=VALUE], jsonpath={.status.phase}=VALUE, phase=VALUE or delete.",
        ),
    ] = "condition=Ready",
    namespace: Namespace = None,
    timeout: Annotated[str, typer.Option(help="Give up after this long (30s, 5m).")] = "30s",
) -> None:
    """Block until a resource meets a condition (exit 1 on timeout)."""
    from shipyard.client import parse_duration

    kind, name = split_ref(ref, name)
    if not name:
        output.fail("wait needs TYPE/NAME")
    how, _, value = for_.partition("=")
    kwargs: dict[str, Any] = {}
    if how == "condition" and value:
        kwargs["condition"] = value
    elif how == "jsonpath" and value:
        kwargs["jsonpath"] = value.replace("'", "")
    elif how == "phase" and value:
        kwargs["phase"] = value
    elif how == "delete":
        kwargs["delete"] = True
    else:
        output.fail(
            f"--for {for_!r}: use condition=NAME, jsonpath={{.path}}=VALUE, phase=VALUE or delete"
        )
    with client() as c:
        try:
            c.wait(kind, name or "", namespace=namespace, timeout=parse_duration(timeout), **kwargs)
        except TimeoutError as exc:
            output.fail(str(exc))
    output.out.print(f"{kind}/{name} condition met")


def _load_components() -> None:
    """Import the CLI modules of components; each registers its commands on ``app``."""
    # (components add one import line each here)
    import shipyard.cli.pipelines
    import shipyard.cli.registry
    import shipyard.cli.serving
    import shipyard.cli.training
    import shipyard.cli.tuning  # noqa: F401


def main() -> None:
    """Entry point: one-line errors, never a traceback."""
    import httpx

    try:
        _load_components()
    except Exception as exc:  # a broken component must not take the core commands down
        output.err.print(
            f"warning: some component commands are unavailable: {type(exc).__name__}: {exc}",
            markup=False,
        )
    try:
        app()
    except ShipyardError as exc:
        output.fail(exc.message)
    except httpx.HTTPError as exc:
        output.fail(f"talking to {os.environ.get('SHIPYARD_URL', 'the server')}: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)
    except (OSError, ValueError) as exc:
        output.fail(str(exc))


if __name__ == "__main__":
    main()
