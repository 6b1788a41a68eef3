"""The Python client: ``Client(url)`` over HTTP, ``Client.embedded(data_dir)`` in-process.

An embedded client runs a whole platform in this process and serves it on a free loopback
port, so Pods it starts can reach it exactly as they reach ``shipyard up``.

    from shipyard import Client
    c = Client.embedded("/tmp/sy")
    c.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hi"},
             "spec": {"restartPolicy": "Never",
                      "containers": [{"name": "main", "command": ["echo", "hi"]}]}})
    c.wait("pod", "hi", phase="Succeeded")
    print("".join(c.logs("hi")))
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from shipyard import errors
from shipyard.core.service import parse_documents
from shipyard.pipelines.sdk import PipelinesMixin
from shipyard.registry.sdk import RegistryMixin
from shipyard.serving.sdk import ServingMixin
from shipyard.training.sdk import TrainingMixin
from shipyard.tuning.sdk import TuningMixin

Obj = dict[str, Any]
DEFAULT_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    namespaced: bool
    aliases: tuple[tuple[str, str], ...]

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def names(self) -> set[str]:
        return {self.kind.lower(), self.plural, self.singular, *self.short_names}


@dataclass
class ApplyResult:
    object: Obj
    action: str  # created | configured | unchanged
    source: str = ""

    @property
    def ref(self) -> str:
        return f"{self.object['kind'].lower()}/{self.object['metadata']['name']}"


def read_sources(paths: Iterable[str | Path], *, recursive: bool = False) -> list[tuple[Obj, str]]:
    """Objects from files, folders (``*.yaml``, ``*.yml``, ``*.json``, sorted) or ``-``
    (stdin), each with where it came from: ``file.yaml, document 2``.

    A folder gives its own files only, as ``kubectl apply -f DIR`` does; ``recursive``
    (``-R``) descends into subfolders too."""
    import sys

    out: list[tuple[Obj, str]] = []
    for p in paths:
        if str(p) == "-":
            text = sys.stdin.read()
            docs = parse_documents(text, "stdin")
            out += [(d, f"stdin, document {i}") for i, d in enumerate(docs, 1)]
            continue
        path = Path(p)
        if not path.exists():
            raise errors.BadRequest(f"{path}: no such file or directory")
        files: list[Path] = (
            sorted(
                f
                for f in (path.rglob("*") if recursive else path.glob("*"))
                if f.suffix in (".yaml", ".yml", ".json") and f.is_file()
            )
            if path.is_dir()
            else [path]
        )
        for f in files:
            docs = parse_documents(f.read_text(), str(f))
            for i, d in enumerate(docs, 1):
                d = dict(d)
                md = d.get("metadata")
                if isinstance(md, dict):
                    ann = dict(md.get("annotations") or {})
                    ann.setdefault("shipyard.dev/source-dir", str(f.resolve().parent))
                    d["metadata"] = {**md, "annotations": ann}
                out.append((d, f"{f}, document {i}" if len(docs) > 1 else str(f)))
    return out


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")


def parse_duration(text: str | float) -> float:
    if isinstance(text, int | float):
        return float(text)
    m = _DURATION.match(text.strip())
    if not m:
        raise errors.BadRequest(f"invalid duration {text!r}: use e.g. 30s, 5m, 1h")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


class CoreClient:
    """The generic operations over every kind; components add theirs as mixins below."""

    def __init__(self, url: str | None = None, *, timeout: float = 30.0) -> None:
        self.url = (url or os.environ.get("SHIPYARD_URL") or DEFAULT_URL).rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        self._types: list[ResourceType] | None = None
        self._server: Any = None

    @classmethod
    def embedded(cls, data_dir: str | Path | None = None, **settings: Any) -> Any:
        """Run a platform in this process (SQLite and artifacts under ``data_dir``)."""
        from shipyard.core.config import load
        from shipyard.server.serve import BackgroundServer

        s = load(data_dir=data_dir, host="127.0.0.1", port=0, **settings)
        server = BackgroundServer(s)
        client = cls(server.url)
        client._server = server
        return client

    @property
    def platform(self) -> Any:
        if self._server is None:
            raise errors.BadRequest("only an embedded client has a platform in this process")
        return self._server.platform

    def close(self) -> None:
        self._http.close()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.ConnectError:
            raise errors.Unavailable(
                f"cannot reach Shipyard at {self.url}: start it with 'shipyard up' "
                "or point SHIPYARD_URL at a running server"
            ) from None
        except httpx.TimeoutException:
            raise errors.Unavailable(f"Shipyard at {self.url} did not answer in time") from None
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {"error": {"message": resp.text[:500]}}
            raise errors.from_dict(resp.status_code, body)
        return resp

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        return orjson.loads(self._request(method, path, **kw).content)

    # -- discovery ----------------------------------------------------------------------------

    def types(self) -> list[ResourceType]:
        if self._types is None:
            body = self._json("GET", "/apis")
            self._types = [
                ResourceType(
                    group=r["group"],
                    version=r["version"],
                    kind=r["kind"],
                    plural=r["name"],
                    singular=r["singularName"],
                    short_names=tuple(r["shortNames"]),
                    namespaced=r["namespaced"],
                    aliases=tuple((a["group"], a["version"]) for a in r.get("aliases", [])),
                )
                for r in body["resources"]
            ]
        return self._types

    def resource(self, name: str) -> ResourceType:
        """A resource type by any name kubectl accepts (kind, plural, singular, short name,
        ``plural.group``)."""
        lowered = name.lower()
        base, _, group = lowered.partition(".")
        found = [t for t in self.types() if base in t.names() and (not group or t.group == group)]
        if len(found) > 1:
            native = [t for t in found if t.group in ("", "shipyard.dev")]
            found = native if len(native) == 1 else found
        if len(found) != 1:
            if found:
                raise errors.BadRequest(
                    f"{name!r} is ambiguous: " + ", ".join(f"{t.plural}.{t.group}" for t in found)
                )
            known = ", ".join(sorted(t.plural for t in self.types()))
            raise errors.NotFound(f"the server has no resource type {name!r}; known: {known}")
        return found[0]

    def _type_of(self, obj: Obj) -> ResourceType:
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        group, _, version = str(api_version).rpartition("/")
        for t in self.types():
            if t.kind == kind and (group, version) in ((t.group, t.version), *t.aliases):
                return t
        known = ", ".join(
            sorted({f"{t.group}/{t.version} {t.kind}".lstrip("/") for t in self.types()})
        )
        raise errors.NotFound(
            f"unknown kind {kind!r} in apiVersion {api_version!r}; known kinds: {known}",
            field="kind",
        )

    @staticmethod
    def _path(
        t: ResourceType,
        namespace: str | None,
        name: str | None = None,
        group_version: tuple[str, str] | None = None,
    ) -> str:
        prefix = t.prefix
        if group_version and group_version != (t.group, t.version):
            g, v = group_version
            prefix = f"/apis/{g}/{v}" if g else f"/api/{v}"
        path = prefix + (f"/namespaces/{namespace}" if t.namespaced and namespace else "")
        path += f"/{t.plural}"
        return path + (f"/{name}" if name else "")

    def _ns(self, t: ResourceType, namespace: str | None) -> str | None:
        return (namespace or "default") if t.namespaced else None

    # -- operations ---------------------------------------------------------------------------

    def apply_documents(
        self, docs: list[tuple[Obj, str]], namespace: str | None = None, *, dry_run: bool = False
    ) -> list[ApplyResult]:
        """Apply objects all-or-nothing as far as validation goes: every document is checked
        by the server (dry run) before any is written. Namespaces go first."""
        docs = sorted(docs, key=lambda d: 0 if d[0].get("kind") == "Namespace" else 1)
        planned_ns = {
            d.get("metadata", {}).get("name") for d, _ in docs if d.get("kind") == "Namespace"
        }
        for obj, source in docs:
            self._apply_one(obj, namespace, source, dry_run=True, planned_ns=planned_ns)
        if dry_run:
            return [ApplyResult(o, "validated", s) for o, s in docs]
        return [self._apply_one(obj, namespace, source) for obj, source in docs]

    def _apply_one(
        self,
        obj: Obj,
        namespace: str | None,
        source: str = "",
        *,
        dry_run: bool = False,
        planned_ns: set[str] | None = None,
    ) -> ApplyResult:
        try:
            t = self._type_of(obj)
            md: Obj = obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}
            ns = self._ns(t, md.get("namespace") or namespace)
            name = md.get("name")
            if not name:
                raise errors.Invalid("metadata.name is required", field="metadata.name")
            group, _, version = str(obj["apiVersion"]).rpartition("/")
            path = self._path(t, ns, str(name), (group, version))
            params = {"dryRun": "All"} if dry_run else {}
            try:
                resp = self._request(
                    "PATCH",
                    path,
                    content=orjson.dumps(obj),
                    params=params,
                    headers={"content-type": "application/apply-patch+json"},
                )
            except errors.NotFound as exc:
                # The namespace is created earlier in this same apply: the server validated
                # the object before it found the namespace missing.
                planned = dry_run and ns and planned_ns and ns in planned_ns
                if planned and exc.field == "metadata.namespace":
                    return ApplyResult(obj, "validated", source)
                raise
        except errors.ShipyardError as exc:
            if source:
                exc.message = f"{source}: {exc.message}"
                exc.args = (exc.message,)
            raise
        return ApplyResult(
            orjson.loads(resp.content), resp.headers.get("x-shipyard-action", "configured"), source
        )

    def apply(self, source: Obj | list[Obj] | str | Path, namespace: str | None = None) -> Any:
        """Create or update. A dict gives back the stored object; a list, YAML text or a
        path gives back a list of them."""
        if isinstance(source, dict):
            return self._apply_one(source, namespace).object
        if isinstance(source, list):
            docs = [(d, f"item {i}") for i, d in enumerate(source, 1)]
        elif isinstance(source, Path) or (
            isinstance(source, str) and "\n" not in source and Path(source).exists()
        ):
            docs = read_sources([source])
        else:
            docs = [(d, f"document {i}") for i, d in enumerate(parse_documents(str(source)), 1)]
        return [r.object for r in self.apply_documents(docs, namespace)]

    def create(self, obj: Obj, namespace: str | None = None) -> Obj:
        t = self._type_of(obj)
        ns = self._ns(t, (obj.get("metadata") or {}).get("namespace") or namespace)
        result: Obj = self._json("POST", self._path(t, ns), content=orjson.dumps(obj))
        return result

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj:
        t = self.resource(kind)
        result: Obj = self._json("GET", self._path(t, self._ns(t, namespace), name))
        return result

    def list_page(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        all_namespaces: bool = False,
        selector: str | None = None,
        phase: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        name: str | None = None,
        table: bool = False,
        newest_first: bool = False,
    ) -> Obj:
        t = self.resource(kind)
        ns = None if all_namespaces else self._ns(t, namespace)
        params: dict[str, str] = {}
        if selector:
            params["labelSelector"] = selector
        fields = [f"status.phase={phase}"] if phase else []
        if name:
            fields.append(f"metadata.name={name}")
        if fields:
            params["fieldSelector"] = ",".join(fields)
        if limit:
            params["limit"] = str(limit)
        if continue_:
            params["continue"] = continue_
        if table:
            params["as"] = "Table"
        if newest_first:
            params["order"] = "newest"
        result: Obj = self._json("GET", self._path(t, ns), params=params)
        return result

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        all_namespaces: bool = False,
        selector: str | None = None,
        phase: str | None = None,
        page_size: int = 500,
        newest_first: bool = False,
    ) -> list[Obj]:
        """Every object, in (namespace, name) order or, with ``newest_first``, newest first."""
        items: list[Obj] = []
        token: str | None = None
        while True:
            page = self.list_page(
                kind,
                namespace,
                all_namespaces=all_namespaces,
                selector=selector,
                phase=phase,
                limit=page_size,
                continue_=token,
                newest_first=newest_first,
            )
            items += page["items"]
            token = page["metadata"].get("continue")
            if not token:
                return items

    def delete(
        self,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        wait: bool = False,
        timeout: float = 60.0,
    ) -> Obj:
        t = self.resource(kind)
        obj: Obj = self._json("DELETE", self._path(t, self._ns(t, namespace), name))
        if wait:
            self.wait(kind, name, namespace=namespace, delete=True, timeout=timeout)
        return obj

    def patch(self, kind: str, name: str, patch: Obj, namespace: str | None = None) -> Obj:
        t = self.resource(kind)
        result: Obj = self._json(
            "PATCH",
            self._path(t, self._ns(t, namespace), name),
            content=orjson.dumps(patch),
            headers={"content-type": "application/merge-patch+json"},
        )
        return result

    def watch(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        all_namespaces: bool = False,
        selector: str | None = None,
        name: str | None = None,
        resource_version: str | int | None = None,
        timeout: float | None = None,
        phase: str | None = None,
    ) -> Iterator[Obj]:
        """Events ``{"type", "object"}`` as they happen, for ``timeout`` seconds in all
        (None: until the server ends the stream). ``phase`` (several with commas) asks the
        server for only the events of objects in those phases."""
        t = self.resource(kind)
        ns = None if all_namespaces else self._ns(t, namespace)
        params: dict[str, str] = {"watch": "true"}
        if selector:
            params["labelSelector"] = selector
        if phase:
            params["phase"] = phase
        if name:
            params["fieldSelector"] = f"metadata.name={name}"
        if resource_version is not None:
            params["resourceVersion"] = str(resource_version)
        deadline = None
        if timeout is not None:
            # The server ends the stream then (Kubernetes' timeoutSeconds); heartbeats keep
            # the connection busy, so a read timeout alone would never fire.
            params["timeoutSeconds"] = f"{max(timeout, 0.001):.3f}"
            deadline = time.monotonic() + timeout
        to = httpx.Timeout(10.0, read=None if timeout is None else timeout + 10.0)
        try:
            with self._http.stream("GET", self._path(t, ns), params=params, timeout=to) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise errors.from_dict(resp.status_code, resp.json())
                for line in resp.iter_lines():
                    if deadline is not None and time.monotonic() > deadline:
                        return
                    if line.startswith("data: "):
                        event = orjson.loads(line[6:])
                        if event.get("type") == "ERROR":
                            obj = event.get("object") or {}
                            raise errors.Gone(str(obj.get("message", "watch expired")))
                        yield event
        except httpx.ReadTimeout:
            return
        except httpx.ConnectError:
            raise errors.Unavailable(f"cannot reach Shipyard at {self.url}") from None

    def logs(
        self,
        name: str,
        namespace: str | None = None,
        *,
        container: str | None = None,
        follow: bool = False,
        tail: int | None = None,
    ) -> Iterator[str]:
        t = self.resource("pod")
        params: dict[str, str] = {}
        if container:
            params["container"] = container
        if follow:
            params["follow"] = "true"
        if tail is not None:
            params["tailLines"] = str(tail)
        path = self._path(t, self._ns(t, namespace), name) + "/log"
        with self._http.stream(
            "GET", path, params=params, timeout=httpx.Timeout(10.0, read=None)
        ) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise errors.from_dict(resp.status_code, resp.json())
            yield from resp.iter_text()

    def wait(
        self,
        kind: str,
        name: str,
        *,
        namespace: str | None = None,
        condition: str | None = None,
        phase: str | None = None,
        jsonpath: str | None = None,
        delete: bool = False,
        timeout: float | str = 60.0,
        seen: Obj | None = None,
    ) -> Obj | None:
        """Block until the object satisfies what is asked, then return it.

        ``condition="Ready"`` (or ``"Ready=False"``), ``phase="Succeeded"`` (several with
        commas), ``jsonpath="{.status.phase}=Running"``, or ``delete=True``. Raises
        TimeoutError naming what was last seen. ``seen`` is the object as the caller just
        got it (from ``create``): the wait starts from it rather than with a GET.
        """
        check = _predicate(condition=condition, phase=phase, jsonpath=jsonpath, delete=delete)
        deadline = time.monotonic() + parse_duration(timeout)
        last: Obj | None = None
        while True:
            try:
                last, seen = (seen, None) if seen else (self.get(kind, name, namespace), None)
            except errors.NotFound:
                if delete:
                    return None
                last = None
            if last is not None and check(last):
                return last
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            rv = last["metadata"]["resourceVersion"] if last else None
            # Waiting for a phase only, the server sends only the changes into it: a large
            # object (a run of 1,000 tasks) is not sent and parsed on every write.
            only = phase if phase and not (condition or jsonpath or delete) else None
            try:
                for event in self.watch(
                    kind, namespace, name=name, resource_version=rv, timeout=remaining, phase=only
                ):
                    obj: Obj = event["object"]
                    if event["type"] == "DELETED":
                        if delete:
                            return None
                        last = None
                        continue
                    last = obj
                    if check(obj):
                        return obj
                    if time.monotonic() > deadline:
                        break
            except errors.Gone:
                continue
            if time.monotonic() >= deadline:
                break
        if phase and not (condition or jsonpath or delete):
            with contextlib.suppress(errors.NotFound):  # the watch skipped the changes
                last = self.get(kind, name, namespace)
        state = _describe_state(last)
        what = "deletion" if delete else condition or phase or jsonpath
        raise TimeoutError(f"timed out waiting for {kind}/{name} ({what}); last seen: {state}")


# Component SDKs: each component folder may define a mixin in its ``sdk.py`` (methods such as
# ``run_pipeline``, ``train``, ``tune``) built on CoreClient's operations. Add it to the bases.
class Client(PipelinesMixin, TrainingMixin, TuningMixin, ServingMixin, RegistryMixin, CoreClient):
    """``Client(url)`` talks to a running server; ``Client.embedded(dir)`` runs one here."""


def _lookup(obj: Any, path: str) -> Any:
    parts = [p for p in path.strip("{}").lstrip(".").split(".") if p]
    for part in parts:
        m = re.match(r"^([^\[]+)\[(\d+)\]$", part)
        if m:
            obj = (obj or {}).get(m.group(1)) if isinstance(obj, dict) else None
            idx = int(m.group(2))
            obj = obj[idx] if isinstance(obj, list) and idx < len(obj) else None
        else:
            obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _predicate(
    *, condition: str | None, phase: str | None, jsonpath: str | None, delete: bool
) -> Any:
    if delete:
        return lambda obj: False
    if condition:
        ctype, _, want = condition.partition("=")
        want = want or "True"
        return lambda obj: any(
            c.get("type", "").lower() == ctype.lower() and str(c.get("status")) == want
            for c in (obj.get("status") or {}).get("conditions") or []
        )
    if phase:
        phases = set(phase.split(","))
        return lambda obj: (obj.get("status") or {}).get("phase") in phases
    if jsonpath:
        expr, _, want = jsonpath.partition("=")
        if want:
            return lambda obj: str(_lookup(obj, expr)) == want
        return lambda obj: _lookup(obj, expr) not in (None, "", [], {})
    raise errors.BadRequest("wait needs a condition, phase, jsonpath or delete")


def _describe_state(obj: Obj | None) -> str:
    if obj is None:
        return "not found"
    status = obj.get("status") or {}
    conds = ", ".join(f"{c.get('type')}={c.get('status')}" for c in status.get("conditions") or [])
    phase = status.get("phase")
    return ", ".join(x for x in (f"phase={phase}" if phase else "", conds) if x) or "no status"
