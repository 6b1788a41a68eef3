"""Runs one pipeline task inside its Pod: ``python -m shipyard.pipelines.executor_main INPUT``
(``python -m shipyard.pipelines.executor INPUT`` works too).

INPUT is the task's request (component source, resolved parameter values, input artifacts)
as a JSON object, or the path of a file holding it (as KFP passes ``--executor_input``, the
controller passes it inline unless it is large). The executor calls the function, stores
output artifacts in the content-addressed store and writes ``PREFIX.outputs.json``, where
PREFIX is the request's ``out``; output artifacts are written under the folder PREFIX, made
only when the component has some. A user error prints the traceback to the log, writes a
one-line reason to ``PREFIX.error.json`` and exits 1. A request file without ``out`` (an
older controller's) means ``outputs.json`` and ``error.json`` beside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import linecache
import os
import sys
import traceback
import typing
from pathlib import Path
from typing import Any

from shipyard.core.artifacts import ArtifactStore
from shipyard.pipelines import types as T

Obj = dict[str, Any]


class TaskError(Exception):
    """A failure with a one-line reason for the task's status."""


# The globals the next component's source runs in, built as this module is imported (a
# warm zygote preloads it); None once handed out.
_PRELOADED_NS: Obj | None = None


def _namespace() -> Obj:
    """The globals a component's source runs in. A container forked from a warm zygote runs
    one task: it takes the ones the zygote built as they are. A copy would write to the
    reference count of each of their objects, copying the zygote's pages that hold them
    into the container (~10 pages of the ~680 a pipeline step copied then). A later task in the
    same process, or the module run as __main__, gets new ones."""
    global _PRELOADED_NS
    ns, _PRELOADED_NS = _PRELOADED_NS, None
    return ns if ns is not None else _build_namespace()


def _build_namespace() -> Obj:
    from shipyard.pipelines import dsl

    ns: Obj = {"__name__": "__component__", "dsl": dsl, "typing": typing}
    ns.update({name: getattr(T, name) for name in dir(T) if not name.startswith("_")})
    ns.update({n: getattr(typing, n) for n in ("NamedTuple", "List", "Dict", "Optional", "Any")})
    return ns


def _ensure_packages(
    packages: list[str], env_root: Path, index_urls: list[str], trusted: list[str]
) -> None:
    """Install missing requirements into a cached per-component folder (once), from the
    package indexes given (kfp's pip_index_urls: the first replaces pip's default)."""
    # Imported here: with what it loads (email, zipfile, csv, ...) it made the warm pool's
    # zygote, which preloads this module, a sixth larger, and so every fork of it dearer.
    import importlib.metadata

    missing = []
    for req in packages:
        name = req.split(";")[0]
        for sep in ("==", ">=", "<=", "~=", "!=", ">", "<", "["):
            name = name.split(sep)[0]
        try:
            importlib.metadata.version(name.strip())
        except importlib.metadata.PackageNotFoundError:
            missing.append(req)
    if not missing:
        return
    where = [*sorted(missing), *index_urls, *trusted]
    target = env_root / hashlib.sha256("\n".join(where).encode()).hexdigest()[:16]
    if not (target / ".complete").exists():
        print(f"installing {', '.join(missing)} into {target}", file=sys.stderr, flush=True)
        import subprocess  # here, as importlib.metadata above

        cmd = [sys.executable, "-m", "pip", "install", "-q", "--target", str(target), *missing]
        for i, url in enumerate(index_urls):
            cmd += ["--index-url" if i == 0 else "--extra-index-url", url]
        for host in trusted:
            cmd += ["--trusted-host", host]
        if subprocess.run(cmd).returncode != 0:
            raise TaskError(f"could not install packages {missing}")
        (target / ".complete").write_text("")
    sys.path.insert(0, str(target))


def _artifact(cls_name: str, name: str, info: Obj, path: str) -> T.Artifact:
    cls = T.ARTIFACT_TYPES.get(cls_name, T.Artifact)
    return cls(name=name, uri=info.get("uri", ""), metadata=info.get("metadata"), path=path)


def _request(arg: str) -> tuple[Obj, str]:
    """The request and the prefix of the files the task writes."""
    if arg.lstrip().startswith("{"):
        req: Obj = json.loads(arg)
    else:
        req = json.loads(Path(arg).read_text())
    out = req.get("out")
    return req, str(out) if out else os.path.join(os.path.dirname(arg), "")


def run(arg: str | Path) -> int:
    req, prefix = _request(str(arg))
    # "PREFIX.outputs.json", or "DIR/outputs.json" for a request without "out".
    sep = "" if prefix.endswith(os.sep) else "."
    comp: Obj = req["component"]
    try:
        outputs = _call(req, comp, prefix)
    except TaskError as exc:
        _write(f"{prefix}{sep}error.json", {"message": str(exc)})
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BaseException as exc:
        traceback.print_exc()
        line = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
        _write(f"{prefix}{sep}error.json", {"message": line[-1] if line else repr(exc)})
        return 1
    _write(f"{prefix}{sep}outputs.json", outputs)
    return 0


def _call(req: Obj, comp: Obj, prefix: str) -> Obj:
    if comp.get("packages"):
        _ensure_packages(
            comp["packages"],
            Path(req["envs"]),
            comp.get("pipIndexUrls") or [],
            comp.get("pipTrustedHosts") or [],
        )
    ns = _namespace()
    filename = f"<component {comp['function']}>"
    lines = comp["source"].splitlines(keepends=True)
    linecache.cache[filename] = (len(comp["source"]), None, lines, filename)
    exec(compile(comp["source"], filename, "exec"), ns)
    fn = ns[comp["function"]]
    kwargs: Obj = {}
    for name, value in (req.get("parameters") or {}).items():
        if comp["inputs"].get(name, {}).get("path"):  # InputPath(int): a file with the value
            path = Path(prefix) / "inputs" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(T.value_to_text(value))
            value = str(path)
        kwargs[name] = value
    if req.get("finalStatus"):
        fs = req["finalStatus"]
        name = fs["input"]
        kwargs[name] = T.PipelineTaskFinalStatus(
            state=fs["state"],
            pipeline_job_resource_name=fs["run"],
            pipeline_task_name=fs["task"],
            error_code=fs.get("errorCode"),
            error_message=fs.get("errorMessage"),
        )
    out_ports = {n: p for n, p in comp["outputs"].items() if p.get("artifact")}
    # Only a task with artifacts needs the store (opening it makes its folder).
    store = ArtifactStore(req["store"]) if req.get("artifacts") or out_ports else None
    for name, art in (req.get("artifacts") or {}).items():
        assert store is not None
        port = comp["inputs"][name]
        if isinstance(art, list):
            kwargs[name] = [
                _artifact(a.get("type", port["type"]), name, a, str(store.path(a["uri"])))
                for a in art
            ]
        elif port.get("path"):  # InputPath: the function gets the path
            kwargs[name] = str(store.path(art["uri"]))
        else:
            kwargs[name] = _artifact(port["type"], name, art, str(store.path(art["uri"])))
    out_arts: dict[str, T.Artifact] = {}
    files: dict[str, Path] = {}  # OutputPath parameters: the file each value is read from
    for name, port in comp["outputs"].items():
        if not port.get("artifact") and not port.get("path"):
            continue
        path = Path(prefix) / "outputs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if port.get("artifact"):
            out_arts[name] = _artifact(port["type"], name, {}, str(path))
        else:
            files[name] = path
        kwargs[name] = str(path) if port.get("path") else out_arts[name]
    result = fn(**kwargs)
    sys.stdout.flush()
    arts: Obj = {}
    if store is not None:
        arts = {n: _store_output(store, n, a) for n, a in out_arts.items()}
    return {"parameters": _parameters(comp, result, files), "artifacts": arts}


def _parameters(comp: Obj, result: Any, files: dict[str, Path] | None = None) -> Obj:
    outs = comp["outputs"]
    ports = {n: p for n, p in outs.items() if not p.get("artifact") and not p.get("path")}
    values: Obj = {}
    if list(ports) == ["Output"]:
        values = {"Output": result}
    else:
        for name in ports:
            if not hasattr(result, name):
                raise TaskError(f"output {name!r} is missing from the returned {type(result)}")
            values[name] = getattr(result, name)
    for name, path in (files or {}).items():
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise TaskError(
                f"output {name!r} was not written: write its value to the file at the path "
                f"{name!r} holds"
            ) from None
        try:
            values[name] = T.value_from_text(text, outs[name]["type"])
        except ValueError as exc:
            kind = outs[name]["type"]
            raise TaskError(
                f"output {name!r}: its file does not hold {'an' if kind == 'int' else 'a'} "
                f"{kind}: {exc}"
            ) from None
    out: Obj = {}
    for name, value in values.items():
        try:
            value = T.check_value(value, outs[name]["type"])
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TaskError(f"output {name!r} cannot be serialised: {exc}") from None
        out[name] = value
    return out


def _store_output(store: ArtifactStore, name: str, art: T.Artifact) -> Obj:
    path = Path(art.path)
    try:
        meta = json.loads(json.dumps(art.metadata, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TaskError(f"output {name!r}: metadata cannot be serialised: {exc}") from None
    if path.exists():
        stored = store.put_dir(path) if path.is_dir() else store.put_file(path)
    elif meta:
        stored = store.put_bytes(json.dumps(meta, sort_keys=True).encode())
    else:
        raise TaskError(
            f"output artifact {name!r} was not written: write a file or folder at {name}.path"
        )
    return {
        "uri": stored.uri,
        "digest": stored.digest,
        "type": type(art).__name__,
        "metadata": meta,
        "size": stored.size,
    }


def _write(path: str, data: Obj) -> None:
    # The controller reads it only once the Pod has exited with the code that follows a
    # complete write, so it may be written in place; in a warm container, the empty file the
    # warm pool made ahead is written and renamed instead (creating a file cost up to 0.7 ms
    # on a VM's disk, a rename a tenth of that). Plain os.write: a text file object costs a
    # forked task a third of a millisecond more.
    text = json.dumps(data).encode()
    ready = _ready_file()
    if ready is not None:
        try:
            _write_all(os.open(ready, os.O_WRONLY), text)
            try:
                os.rename(ready, path)
            except FileNotFoundError:
                # The run's first task: its folder is not made yet. Made here, the file is
                # still renamed into it (one file fewer made, and none left to delete).
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.rename(ready, path)
            return
        except OSError:  # gone, or on another file system: written the plain way
            pass
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except FileNotFoundError:  # the run's folder went away since the controller made it
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    _write_all(fd, text)


def _write_all(fd: int, data: bytes) -> None:
    """Write ``data`` to ``fd`` and close it."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _ready_file() -> str | None:
    """The empty file the warm pool made for this task's container, if it runs in one
    (runtime/warm.py, ready_file); looked up, not imported, so that a task run any other
    way does not load the warm pool's module."""
    warm = sys.modules.get("shipyard.runtime.warm")
    ready_file = getattr(warm, "ready_file", None)
    return ready_file() if ready_file is not None else None


def main() -> None:
    if len(sys.argv) != 2:
        print("usage: python -m shipyard.pipelines.executor JSON-OR-FILE", file=sys.stderr)
        sys.exit(2)
    code = run(sys.argv[1])
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
else:
    _PRELOADED_NS = _build_namespace()
