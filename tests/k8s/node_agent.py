"""THE ONE STAND-IN of tier 2: a small test node agent in place of a kubelet.

No kubelet can run here (no container engine), so this agent does a kubelet's job for one
Node, through the real API server: it registers the Node (capacity including
``nvidia.com/gpu``, labels, a Ready condition kept fresh by heartbeats), watches the Pods
kube-scheduler binds to it, runs their containers' commands as local processes (with
Shipyard's own ``LocalRuntime``, which implements the kubelet's restart, init-container,
deadline and log semantics), writes their status back with ``pods/status``, serves
``/containerLogs`` over HTTPS for ``kubectl logs`` / ``read_namespaced_pod_log`` (the API
server proxies to it), and on deletion stops the processes and then removes the Pod, as a
kubelet does. Env from Secrets and ConfigMaps is resolved from the API server.

Everything else in tier 2 is real: etcd, kube-apiserver (token auth, RBAC),
kube-controller-manager (garbage collector, Deployments, ReplicaSets, service accounts),
kube-scheduler.

There is no cluster DNS either: where a container's env names a Service
(``NAME.NAMESPACE.svc``, such as a training job's ``MASTER_ADDR``), the agent puts
``127.0.0.1`` instead, which is where every Pod of this stand-in runs — what cluster DNS
would resolve it to here.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import logging
import re
import ssl
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from shipyard.core.resource import now_iso
from shipyard.runtime.base import Assignment
from shipyard.runtime.local import LocalRuntime

log = logging.getLogger(__name__)
Obj = dict[str, Any]
_SVC_HOST = re.compile(r"\b[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z0-9-]+\.svc(\.cluster\.local)?\b")


def _without_cluster_dns(pod: Obj) -> Obj:
    """The Pod with Service host names in env values replaced by 127.0.0.1."""
    import copy

    out = copy.deepcopy(pod)
    for c in (out["spec"].get("initContainers") or []) + out["spec"]["containers"]:
        for e in c.get("env") or []:
            if isinstance(e.get("value"), str):
                e["value"] = _SVC_HOST.sub("127.0.0.1", e["value"])
    return out


class NodeAgent:
    def __init__(
        self,
        api: client.ApiClient,
        name: str,
        data_dir: Path,
        *,
        labels: dict[str, str],
        capacity: dict[str, str],
        cert: Path,
        key: Path,
    ) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.name = name
        self.labels = labels
        self.capacity = capacity
        self.runtime = LocalRuntime(data_dir, backoff_base=0.05, backoff_cap=0.5)
        self.runtime.set_on_change(self._changed)
        self.pods: dict[tuple[str, str], Obj] = {}
        self._lock = threading.RLock()
        self._report_lock = threading.Lock()
        self._closed = threading.Event()
        self._server = _LogServer(self, cert, key)
        self.port = self._server.port
        self._threads = [
            threading.Thread(target=self._watch_loop, daemon=True, name=f"agent-{name}"),
            threading.Thread(target=self._heartbeat, daemon=True, name=f"beat-{name}"),
        ]

    # -- node ---------------------------------------------------------------------------------

    def _node_status(self) -> Obj:
        now = now_iso()
        return {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "shipyard test node agent (stand-in for a kubelet)",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.20.2",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "containerRuntimeVersion": "shipyard-test-agent://0",
                "kernelVersion": "",
                "osImage": "",
                "kubeProxyVersion": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }

    def start(self) -> NodeAgent:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": self.labels},
        }
        with contextlib.suppress(ApiException):
            self.core.create_node(node)
        self.core.patch_node_status(self.name, {"status": self._node_status()})
        for t in self._threads:
            t.start()
        return self

    def _heartbeat(self) -> None:
        while not self._closed.wait(5):
            with contextlib.suppress(Exception):
                self.core.patch_node_status(self.name, {"status": self._node_status()})

    # -- pods ---------------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        rv = ""
        while not self._closed.is_set():
            try:
                w = watch.Watch()
                for ev in w.stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=f"spec.nodeName={self.name}",
                    resource_version=rv or None,
                    timeout_seconds=30,
                ):
                    if self._closed.is_set():
                        return
                    raw = ev["raw_object"]
                    if ev["type"] == "ERROR":
                        rv = ""
                        break
                    rv = raw["metadata"].get("resourceVersion", rv)
                    self._handle(ev["type"], raw)
            except Exception as exc:
                if self._closed.is_set():
                    return
                log.warning("node agent watch: %s", exc)
                rv = ""
                time.sleep(0.5)

    def _handle(self, kind: str, pod: Obj) -> None:
        md = pod["metadata"]
        key = (md["namespace"], md["name"])
        if kind == "DELETED":
            with self._lock:
                old = self.pods.pop(key, None)
            if old is not None:
                self.runtime.stop(old, 0)
            return
        with self._lock:
            known = self.pods.get(key)
            if known is not None and known["metadata"]["uid"] != md["uid"]:
                known = None
            self.pods[key] = pod
        if md.get("deletionTimestamp"):
            self._delete(pod)
            return
        if known is None and not self.runtime.knows(pod):
            try:
                extra = self._resolve_env(pod)
            except ApiException as exc:
                self._report(
                    pod,
                    {
                        "phase": "Pending",
                        "reason": "CreateContainerConfigError",
                        "message": str(exc.reason),
                    },
                )
                return
            run = _without_cluster_dns(pod)
            self.runtime.start(run, Assignment(node=self.name, extra_env=extra))
            # The runtime calls back for later changes only: report what start() did.
            self._changed(md["namespace"], md["name"])

    def _delete(self, pod: Obj) -> None:
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        if not self.runtime.knows(pod) or self.runtime.stop(pod, grace):
            md = pod["metadata"]
            with contextlib.suppress(ApiException):
                self.core.delete_namespaced_pod(
                    md["name"],
                    md["namespace"],
                    # With a body, the API server reads the options from it, not the query.
                    body={"gracePeriodSeconds": 0, "preconditions": {"uid": md["uid"]}},
                )

    def _changed(self, namespace: str, name: str) -> None:
        with self._lock:
            pod = self.pods.get((namespace, name))
        if pod is None:
            return
        if pod["metadata"].get("deletionTimestamp"):
            self._delete(pod)
            return
        # One report at a time, each of the status as it is then: reports from start() and
        # from the runtime's call back must not land out of order.
        with self._report_lock:
            status = self.runtime.status(pod)
            if status is not None:
                self._report(pod, status)
        # A finished Pod's processes keep their record until the Pod is deleted.

    def _report(self, pod: Obj, status: Obj) -> None:
        status = {k: v for k, v in status.items() if k != "assignedGPUs"}
        ready = status.get("phase") == "Running" and all(
            c.get("ready") for c in status.get("containerStatuses") or []
        )
        now = now_iso()
        status["conditions"] = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": str(ready), "lastTransitionTime": now},
            {"type": "Ready", "status": str(ready), "lastTransitionTime": now},
        ]
        status["hostIP"] = status["podIP"] = "127.0.0.1"
        md = pod["metadata"]
        with contextlib.suppress(ApiException):
            self.core.patch_namespaced_pod_status(md["name"], md["namespace"], {"status": status})

    def _resolve_env(self, pod: Obj) -> dict[str, str]:
        ns = pod["metadata"]["namespace"]
        out: dict[str, str] = {}
        for c in (pod["spec"].get("initContainers") or []) + pod["spec"]["containers"]:
            for ef in c.get("envFrom") or []:
                if "secretRef" in ef:
                    data = self.core.read_namespaced_secret(ef["secretRef"]["name"], ns).data
                    out.update({k: base64.b64decode(v).decode() for k, v in (data or {}).items()})
                if "configMapRef" in ef:
                    cm = self.core.read_namespaced_config_map(ef["configMapRef"]["name"], ns)
                    out.update(cm.data or {})
            for e in c.get("env") or []:
                src = e.get("valueFrom") or {}
                if "secretKeyRef" in src:
                    ref = src["secretKeyRef"]
                    data = self.core.read_namespaced_secret(ref["name"], ns).data or {}
                    out[e["name"]] = base64.b64decode(data[ref["key"]]).decode()
                elif "configMapKeyRef" in src:
                    ref = src["configMapKeyRef"]
                    cm = self.core.read_namespaced_config_map(ref["name"], ns)
                    out[e["name"]] = (cm.data or {})[ref["key"]]
        return out

    def stop(self) -> None:
        self._closed.set()
        self._server.stop()
        self.runtime.shutdown(grace=1.0)
        with contextlib.suppress(Exception):
            self.core.delete_node(self.name)


class _LogServer:
    """``GET /containerLogs/{ns}/{pod}/{container}`` over HTTPS (the kubelet API subset the
    API server proxies for pod logs)."""

    def __init__(self, agent: NodeAgent, cert: Path, key: Path) -> None:
        outer = agent

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                parts = url.path.strip("/").split("/")
                if len(parts) != 4 or parts[0] != "containerLogs":
                    self.send_error(404)
                    return
                _, ns, name, container = parts
                q = parse_qs(url.query)
                with outer._lock:
                    pod = outer.pods.get((ns, name))
                if pod is None:
                    self.send_error(404, f"pod {ns}/{name} not on this node")
                    return
                follow = q.get("follow", ["false"])[0] == "true"
                tail = int(q["tailLines"][0]) if "tailLines" in q else None
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    for chunk in outer.runtime.logs(pod, container, follow=follow, tail=tail):
                        self.wfile.write(chunk)
                        self.wfile.flush()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
