"""The InferenceService controller: revisions, replica Pods, traffic and status.

Each distinct predictor configuration is a **revision** (``NAME-predictor-00001``...),
recorded in ``status.revisions`` with the model server arguments it runs. Replicas are Pods
running ``python -m shipyard.serving.server`` on a port of their own, forked warm (annotation
``shipyard.dev/warm``). A replica takes traffic only once its V2 ready endpoint answers.

Traffic, as KServe does it: the newest revision takes 100% once ready, unless
``canaryTrafficPercent`` is set, which gives it that share and leaves the rest on the last
rolled-out revision; removing the field promotes, ``0`` pins traffic back. A revision whose
model fails to load is reported (``BlockedByFailedLoad``) and the previous one keeps serving.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import secrets
import socket
import sys
from pathlib import Path
from typing import Any

import httpx

from shipyard.core.controller import Controller
from shipyard.core.resource import Obj, owner_ref, set_condition
from shipyard.errors import AlreadyExists, Invalid, NotFound
from shipyard.pods.api import POD
from shipyard.serving import storage
from shipyard.serving.api import (
    BUILTIN_RUNTIMES,
    CLUSTER_SERVING_RUNTIME,
    INFERENCE_SERVICE,
    SERVING_RUNTIME,
    builtin_runtime_for,
)
from shipyard.serving.autoscaler import WINDOW_ANNOTATION, Autoscaler, parse_seconds
from shipyard.serving.gateway import Gateway
from shipyard.serving.prewarm import warm_annotation

log = logging.getLogger(__name__)

ISVC_LABEL = "serving.kserve.io/inferenceservice"
REV_LABEL = "serving.kserve.io/revision"
COMPONENT_LABEL = "component"  # as KServe labels its Pods: predictor | transformer
PORT_ANNOTATION = "serving.shipyard.dev/port"
WARM_ANNOTATION = "shipyard.dev/warm"
CONTAINER = "kserve-container"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _component(pod: Obj) -> str:
    return str((pod["metadata"].get("labels") or {}).get(COMPONENT_LABEL) or "predictor")


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _how_it_ended(pod: Obj) -> str:
    """'exited with code 3', 'was killed by signal 9 (OOMKilled: ...)': from the model
    server container's terminated state."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    cs = next((c for c in statuses if c.get("name") == CONTAINER), statuses[0] if statuses else {})
    term = (cs.get("state") or {}).get("terminated") or {}
    if term.get("signal"):
        how = f"was killed by signal {term['signal']}"
    elif term.get("exitCode") is not None:
        how = f"exited with code {term['exitCode']}"
    else:
        how = "exited"
    reason = term.get("reason")
    if reason and reason not in ("Error", "Completed"):
        detail = f": {term['message']}" if term.get("message") else ""
        how += f" ({reason}{detail})"
    return how


class InferenceServiceController(Controller):
    kind = INFERENCE_SERVICE.key
    owns = (POD.key,)
    workers = 2

    def __init__(self, platform: Any, gateway: Gateway) -> None:
        self.platform = platform
        self.store = platform.store
        self.gateway = gateway
        self.autoscaler = Autoscaler(gateway)
        self._ready: set[str] = set()  # uids of Pods whose ready endpoint answered
        self._http = httpx.Client(timeout=0.5)

    # -- reconcile ----------------------------------------------------------------------------

    def reconcile(self, namespace: str, name: str) -> float | None:
        isvc = self.store.try_get(self.kind, namespace, name)
        if isvc is None or isvc["metadata"].get("deletionTimestamp"):
            self.gateway.remove(namespace, name)
            self.autoscaler.forget(namespace, name)
            return None
        status = copy.deepcopy(isvc.get("status") or {})
        revisions: dict[str, Obj] = status.setdefault("revisions", {})
        try:
            server = self._server_config(isvc)
        except Invalid as exc:
            self._invalid(isvc, status, exc.message)
            return None
        except NotFound as exc:  # a models:/ URI naming no version (yet): look again
            self._invalid(isvc, status, exc.message)
            return 2.0
        try:
            tserver = self._transformer_config(isvc)
        except Invalid as exc:
            self._invalid(isvc, status, exc.message)
            return None
        latest = self._revision_for(name, revisions, server)
        all_pods = self._pods(namespace, name)
        pods = [p for p in all_pods if _component(p) == "predictor"]
        endpoints = self._observe(isvc, revisions, pods)
        pred = status.setdefault("components", {}).setdefault("predictor", {})
        traffic = self._traffic(isvc, revisions, latest, pred)
        desired = self._desired(isvc, revisions, latest, traffic)
        pending = self._scale(isvc, revisions, pods, desired)
        route = ([(r, p) for r, p in traffic.items()], endpoints)
        timeout = float(isvc["spec"]["predictor"].get("timeout") or 60)
        # The predictor is always reachable as NAME-predictor (what a transformer calls).
        self.gateway.set_route(namespace, f"{name}-predictor", *route, timeout, owner=name)
        tpods = [p for p in all_pods if _component(p) == "transformer"]
        tready = None
        if tserver is None:
            status.pop("transformerRevisions", None)
            status["components"].pop("transformer", None)
            for pod in tpods:
                self._delete(pod)
        else:
            tready, tpending, route = self._transformer(isvc, status, tserver, tpods)
            pending = pending or tpending
            timeout = float(isvc["spec"]["transformer"].get("timeout") or timeout)
        self.gateway.set_route(namespace, name, *route, timeout, owner=name)
        self._write_status(isvc, status, latest, traffic, tready)
        if pending:
            return 0.05
        return 0.5 if any(traffic.values()) else 2.0

    def _transformer(
        self, isvc: Obj, status: Obj, server: Obj, pods: list[Obj]
    ) -> tuple[bool, bool, tuple[list[tuple[str, int]], dict[str, list[tuple[str, str]]]]]:
        """Reconcile the transformer's revisions and replicas, as the predictor's:
        (serving, pending, its route)."""
        comp = isvc["spec"]["transformer"]
        revisions: dict[str, Obj] = status.setdefault("transformerRevisions", {})
        latest = self._revision_for(isvc["metadata"]["name"], revisions, server, "transformer")
        endpoints = self._observe(isvc, revisions, pods)
        tstatus = status["components"].setdefault("transformer", {})
        traffic = self._traffic(isvc, revisions, latest, tstatus, comp)
        desired = self._desired(isvc, revisions, latest, traffic, comp)
        pending = self._scale(isvc, revisions, pods, desired)
        keep = {latest, tstatus.get("latestRolledoutRevision")}
        for rev in [r for r in revisions if r not in keep and r not in traffic]:
            del revisions[rev]
        ready = [r for r, rec in revisions.items() if rec.get("ready") and not rec.get("failed")]
        tstatus["latestCreatedRevision"] = latest
        if ready:
            tstatus["latestReadyRevision"] = max(ready)
        tstatus["traffic"] = [
            {"revisionName": r, "percent": p, "latestRevision": r == latest}
            for r, p in traffic.items()
        ]
        serving = any(revisions.get(r, {}).get("ready") for r, p in traffic.items() if p > 0)
        failed = revisions[latest].get("failed")
        set_condition(
            status,
            "TransformerReady",
            serving,
            "" if serving else ("RevisionFailed" if failed else "NoReadyRevision"),
            f"revision {latest}: {failed}" if failed else "",
        )
        return serving, pending, ([(r, p) for r, p in traffic.items()], endpoints)

    # -- configuration ------------------------------------------------------------------------

    def _server_config(self, isvc: Obj) -> Obj:
        """What the model server of the current spec runs (hashable, stored per revision)."""
        md = isvc["metadata"]
        pred = isvc["spec"]["predictor"]
        model = pred.get("model") or {}
        fmt = str((model.get("modelFormat") or {}).get("name") or "").lower()
        runtime = model.get("runtime") or builtin_runtime_for(fmt)
        if runtime is None or runtime not in BUILTIN_RUNTIMES:
            runtime = self._custom_runtime(md.get("namespace", ""), runtime, fmt)
        base = (md.get("annotations") or {}).get("shipyard.dev/source-dir")
        uri = str(model.get("storageUri") or "")
        cache = Path(self.platform.settings.data_dir) / "serving" / "cache"
        path = storage.resolve(
            uri,
            base=Path(base) if base else None,
            cache=cache,
            platform=self.platform,
            namespace=md.get("namespace") or "default",
        )
        cfg: Obj = {
            "format": fmt,
            "runtime": runtime,
            "path": str(path),
            "protocol": model.get("protocolVersion") or "v1",
            "resources": model.get("resources"),
            "env": model.get("env"),
        }
        batcher = pred.get("batcher")
        if batcher is not None:
            cfg["batcher"] = {
                "maxBatchSize": batcher.get("maxBatchSize") or 32,
                "maxLatency": batcher.get("maxLatency") if "maxLatency" in batcher else 5,
            }
        logger = pred.get("logger")
        if logger is not None:
            cfg["logger"] = {"mode": logger.get("mode") or "all", "url": logger.get("url")}
        return cfg

    def _custom_runtime(self, namespace: str, runtime: str | None, fmt: str) -> str:
        """A user ServingRuntime naming a supported format that a built-in runtime serves."""
        candidates = []
        for info, ns in ((SERVING_RUNTIME, namespace), (CLUSTER_SERVING_RUNTIME, None)):
            for rt in self.store.list(info.key, ns).items:
                if runtime and rt["metadata"]["name"] != runtime:
                    continue
                spec = rt.get("spec") or {}
                if spec.get("disabled"):
                    continue
                for f in spec.get("supportedModelFormats") or []:
                    if f.get("name", "").lower() == fmt and (runtime or f.get("autoSelect")):
                        candidates.append((int(f.get("priority") or 0), rt["metadata"]["name"]))
        if not candidates or builtin_runtime_for(fmt) is None:
            where = f"runtime {runtime!r}" if runtime else f"model format {fmt!r}"
            raise Invalid(
                f"no serving runtime for {where}: use a modelFormat of "
                + ", ".join(sorted({f for r in BUILTIN_RUNTIMES.values() for f in r["formats"]}))
            )
        return str(sorted(candidates)[-1][1])

    def _transformer_config(self, isvc: Obj) -> Obj | None:
        """What the transformer's replicas run: KServe's transformer container (its command,
        with KServe's arguments appended when a replica is created)."""
        spec = isvc["spec"].get("transformer")
        if not spec:
            return None
        containers = spec.get("containers") or []
        if not containers or not containers[0].get("command"):
            raise Invalid(
                "spec.transformer.containers[0].command is required locally "
                "(e.g. [python, transformer.py])",
                field="spec.transformer.containers",
            )
        c = containers[0]
        keep = ("image", "command", "args", "env", "resources", "workingDir")
        ns = isvc["metadata"].get("namespace") or "default"
        base = self.platform.url or (
            f"http://{self.platform.settings.host}:{self.platform.settings.port}"
        )
        host = base.removeprefix("http://").removeprefix("https://")
        return {
            "component": "transformer",
            "container": {k: c[k] for k in keep if c.get(k) is not None},
            "predictorHost": f"{host}/serving/{ns}/{isvc['metadata']['name']}-predictor",
        }

    @staticmethod
    def _revision_for(
        name: str, revisions: dict[str, Obj], server: Obj, component: str = "predictor"
    ) -> str:
        digest = hashlib.sha256(json.dumps(server, sort_keys=True).encode()).hexdigest()[:12]
        for rev, rec in revisions.items():
            if rec.get("hash") == digest:
                return rev
        n = 1 + max((int(r.rsplit("-", 1)[1]) for r in revisions), default=0)
        rev = f"{name}-{component}-{n:05d}"
        revisions[rev] = {"hash": digest, "server": server}
        return rev

    # -- observation --------------------------------------------------------------------------

    def _pods(self, namespace: str, name: str) -> list[Obj]:
        items: list[Obj] = self.store.list(
            POD.key, namespace, selector=f"{ISVC_LABEL}={name}"
        ).items
        return items

    def _observe(
        self, isvc: Obj, revisions: dict[str, Obj], pods: list[Obj]
    ) -> dict[str, list[tuple[str, str]]]:
        """Probe replicas; record ready / failed revisions; ready endpoints per revision."""
        endpoints: dict[str, list[tuple[str, str]]] = {r: [] for r in revisions}
        for pod in pods:
            md = pod["metadata"]
            rev = (md.get("labels") or {}).get(REV_LABEL, "")
            uid = md["uid"]
            phase = _phase(pod)
            if md.get("deletionTimestamp") or phase != "Running":
                self._ready.discard(uid)
                if phase == "Failed" and rev in revisions and not md.get("deletionTimestamp"):
                    rec = revisions[rev]
                    if not rec.get("ready"):
                        rec["failed"] = self._failure(pod)
                    self._delete(pod)
                continue
            port = int((md.get("annotations") or {}).get(PORT_ANNOTATION, "0"))
            host, hport = self.platform.runtime.endpoint(pod, port)
            url = f"http://{host}:{hport}"
            if uid not in self._ready and self._probe(url):
                self._ready.add(uid)
            if uid in self._ready and rev in endpoints:
                endpoints[rev].append((md["name"], url))
                revisions[rev]["ready"] = True
                revisions[rev].pop("failed", None)
        return endpoints

    def _probe(self, url: str) -> bool:
        try:
            return self._http.get(url + "/v2/health/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def _failure(self, pod: Obj) -> str:
        lines: list[str] = []
        with contextlib.suppress(Exception):
            text = b"".join(self.platform.runtime.logs(pod, CONTAINER, tail=20)).decode(
                errors="replace"
            )
            lines = [ln for ln in text.splitlines() if ln.strip()]
        hits = [ln for ln in lines if "failed to load" in ln]
        if hits:
            return hits[-1].removeprefix("model server: ")[:500]
        # It ended some other way (a crash, a signal): say how, and what it said last.
        msg = f"the model server {_how_it_ended(pod)}"
        if lines:
            msg += f"; its last log line: {lines[-1].removeprefix('model server: ')}"
        return msg[:500]

    # -- traffic and scale --------------------------------------------------------------------

    def _traffic(
        self, isvc: Obj, revisions: dict[str, Obj], latest: str, pred: Obj, comp: Obj | None = None
    ) -> dict[str, int]:
        rolled = pred.get("latestRolledoutRevision")
        if rolled not in revisions:
            rolled = None
        rec = revisions[latest]
        canary = (comp or isvc["spec"]["predictor"]).get("canaryTrafficPercent")
        if rolled is None or rolled == latest:
            if rec.get("ready"):
                pred["latestRolledoutRevision"] = latest
            return {latest: 100}
        if rec.get("failed") or not rec.get("ready"):
            return {rolled: 100}
        if canary is None:
            pred["previousRolledoutRevision"] = rolled
            pred["latestRolledoutRevision"] = latest
            return {latest: 100}
        return {rolled: 100 - int(canary), latest: int(canary)}

    def _desired(
        self,
        isvc: Obj,
        revisions: dict[str, Obj],
        latest: str,
        traffic: dict[str, int],
        comp: Obj | None = None,
    ) -> dict[str, int]:
        md = isvc["metadata"]
        comp = comp or isvc["spec"]["predictor"]
        window = parse_seconds((md.get("annotations") or {}).get(WINDOW_ANNOTATION), 30.0)
        ns, name = md.get("namespace", ""), md["name"]
        out = {}
        for rev, rec in revisions.items():
            if rec.get("failed"):
                out[rev] = 0
            elif traffic.get(rev, 0) > 0 or (rev == latest and rev in traffic):
                out[rev] = self.autoscaler.desired(ns, name, rev, comp, window)
                if not rec.get("ready"):
                    out[rev] = max(out[rev], 1)
            elif rev == latest and not rec.get("ready"):
                out[rev] = 1
            else:
                out[rev] = 0
            rec["desiredReplicas"] = out[rev]
        return out

    def _scale(
        self, isvc: Obj, revisions: dict[str, Obj], pods: list[Obj], desired: dict[str, int]
    ) -> bool:
        """Create or delete replica Pods; True while some replica is not ready yet."""
        pending = False
        by_rev: dict[str, list[Obj]] = {}
        for pod in pods:
            md = pod["metadata"]
            if md.get("deletionTimestamp") or _phase(pod) in ("Failed", "Succeeded"):
                continue
            by_rev.setdefault((md.get("labels") or {}).get(REV_LABEL, ""), []).append(pod)
        for rev, live in by_rev.items():
            if rev not in revisions:
                for pod in live:
                    self._delete(pod)
        for rev, want in desired.items():
            live = by_rev.get(rev, [])
            for _ in range(want - len(live)):
                self._create(isvc, rev, revisions[rev]["server"])
                pending = True
            if len(live) > want:
                live.sort(
                    key=lambda p: (p["metadata"]["uid"] in self._ready, p["metadata"]["name"])
                )
                for pod in live[: len(live) - want]:
                    self._delete(pod)
            if any(p["metadata"]["uid"] not in self._ready for p in live):
                pending = True
        return pending

    def _create(self, isvc: Obj, rev: str, server: Obj) -> None:
        md = isvc["metadata"]
        ns, name = md.get("namespace", ""), md["name"]
        port = _free_port()
        if server.get("component") == "transformer":
            self._create_pod(isvc, rev, port, self._transformer_container(isvc, server, port))
            return
        args = ["--model", f"{name}:{server['format']}:{server['path']}", "--http-port", str(port)]
        if server.get("batcher"):
            b = server["batcher"]
            args += [
                "--max-batch-size",
                str(b["maxBatchSize"]),
                "--max-latency-ms",
                str(b["maxLatency"]),
            ]
        if server.get("logger"):
            sink = self._log_sink(ns, name, server["logger"].get("url"))
            args += ["--log-sink", str(sink), "--log-mode", server["logger"]["mode"]]
        container: Obj = {
            "name": CONTAINER,
            "image": "shipyard/model-server",
            "command": [sys.executable, "-m", "shipyard.serving.server", *args],
            "ports": [{"containerPort": port, "name": "http"}],
        }
        if server.get("resources"):
            container["resources"] = server["resources"]
        if server.get("env"):
            container["env"] = server["env"]
        self._create_pod(isvc, rev, port, container, warm_annotation(server["runtime"]))

    @staticmethod
    def _transformer_container(isvc: Obj, server: Obj, port: int) -> Obj:
        """The user's transformer container with KServe's arguments appended."""
        c = copy.deepcopy(server["container"])
        c["name"] = CONTAINER
        c.setdefault("image", "shipyard/transformer")
        c["args"] = [
            *(c.get("args") or []),
            "--model_name",
            isvc["metadata"]["name"],
            "--predictor_host",
            server["predictorHost"],
            "--http_port",
            str(port),
        ]
        c["ports"] = [{"containerPort": port, "name": "http"}]
        return dict(c)

    def _create_pod(
        self,
        isvc: Obj,
        rev: str,
        port: int,
        container: Obj,
        warm: str = "numpy,shipyard.serving.server,shipyard.serving.transformer",
    ) -> None:
        md = isvc["metadata"]
        ns, name = md.get("namespace", ""), md["name"]
        annotations = {PORT_ANNOTATION: str(port), WARM_ANNOTATION: warm}
        src = (md.get("annotations") or {}).get("shipyard.dev/source-dir")
        if src:
            annotations["shipyard.dev/source-dir"] = src
        component = "transformer" if "-transformer-" in rev else "predictor"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{rev}-{secrets.token_hex(3)}",
                "namespace": ns,
                "labels": {
                    "shipyard.dev/namespace": ns,
                    "shipyard.dev/owner": name,
                    "shipyard.dev/kind": "InferenceService",
                    ISVC_LABEL: name,
                    REV_LABEL: rev,
                    COMPONENT_LABEL: component,
                },
                "annotations": annotations,
                "ownerReferences": [owner_ref(isvc)],
            },
            "spec": {"restartPolicy": "Never", "containers": [container]},
        }
        with contextlib.suppress(AlreadyExists):
            self.platform.service.create(pod)

    def _log_sink(self, namespace: str, name: str, url: str | None) -> Path:
        if url and url.startswith("file://"):
            return Path(url[len("file://") :])
        return (
            Path(self.platform.settings.data_dir) / "serving" / "logs" / namespace / f"{name}.jsonl"
        )

    def _delete(self, pod: Obj) -> None:
        md = pod["metadata"]
        self._ready.discard(md["uid"])
        with contextlib.suppress(NotFound):
            self.platform.service.delete(POD, md.get("namespace", ""), md["name"])

    # -- status -------------------------------------------------------------------------------

    def _write_status(
        self,
        isvc: Obj,
        status: Obj,
        latest: str,
        traffic: dict[str, int],
        transformer_ready: bool | None = None,
    ) -> None:
        md = isvc["metadata"]
        ns, name = md.get("namespace", ""), md["name"]
        revisions = status["revisions"]
        pred = status["components"]["predictor"]
        keep = {latest, pred.get("latestRolledoutRevision"), pred.get("previousRolledoutRevision")}
        for rev in [r for r in revisions if r not in keep and r not in traffic]:
            del revisions[rev]
        url = f"{self.platform.url or ''}/serving/{ns}/{name}"
        status["url"] = url
        status["address"] = {"url": url}
        pred["url"] = url
        pred["latestCreatedRevision"] = latest
        ready_revs = [
            r for r, rec in revisions.items() if rec.get("ready") and not rec.get("failed")
        ]
        if ready_revs:
            pred["latestReadyRevision"] = max(ready_revs)
        pred["traffic"] = [
            {"revisionName": r, "percent": p, "latestRevision": r == latest}
            for r, p in traffic.items()
        ]
        rec = revisions[latest]
        serving = any(revisions.get(r, {}).get("ready") for r, p in traffic.items() if p > 0)
        if rec.get("failed"):
            transition, active, reason = "BlockedByFailedLoad", "FailedToLoad", "ModelLoadFailed"
            status["modelStatus"] = {
                "transitionStatus": transition,
                "states": {
                    "activeModelState": "Loaded" if serving else active,
                    "targetModelState": active,
                },
                "lastFailureInfo": {"reason": reason, "message": rec["failed"]},
            }
            set_condition(
                status,
                "LatestDeploymentReady",
                False,
                "RevisionFailed",
                f"revision {latest}: {rec['failed']}",
            )
        else:
            done = rec.get("ready")
            status["modelStatus"] = {
                "transitionStatus": "UpToDate" if done else "InProgress",
                "states": {
                    "activeModelState": "Loaded" if serving else "Pending",
                    "targetModelState": "Loaded" if done else "Pending",
                },
            }
            set_condition(status, "LatestDeploymentReady", bool(done), "" if done else "Loading")
        set_condition(status, "PredictorReady", serving, "" if serving else "NoReadyRevision")
        set_condition(status, "IngressReady", True)
        if transformer_ready is None:
            status["conditions"] = [
                c for c in status.get("conditions") or [] if c.get("type") != "TransformerReady"
            ]
        elif not transformer_ready:
            serving = False
        set_condition(status, "Ready", serving, "" if serving else "NoReadyRevision")
        if status != (isvc.get("status") or {}):
            with contextlib.suppress(NotFound):
                self.store.update_status(self.kind, ns, name, status)

    def _invalid(self, isvc: Obj, status: Obj, message: str) -> None:
        md = isvc["metadata"]
        status["modelStatus"] = {
            "transitionStatus": "InvalidSpec",
            "lastFailureInfo": {"reason": "InvalidSpec", "message": message},
        }
        set_condition(status, "Ready", False, "InvalidSpec", message)
        if status != (isvc.get("status") or {}):
            with contextlib.suppress(NotFound):
                self.store.update_status(self.kind, md.get("namespace", ""), md["name"], status)
