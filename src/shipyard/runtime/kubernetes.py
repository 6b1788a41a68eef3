"""The Kubernetes runtime: Shipyard Pods run as real Kubernetes objects on a cluster.

Through the official ``kubernetes`` client (the only module that imports it). What each
Shipyard Pod becomes is built in ``runtime/kube_objects.py``: a Pod (a Deployment + Service
for serving replicas; a headless Service for a training job's master so ``MASTER_ADDR`` is a
stable DNS name), labelled ``shipyard.dev/{namespace,owner,kind}``, with owner references so
Kubernetes' garbage collector removes helpers with their workload.

- Start-up checks (:meth:`KubernetesRuntime.preflight`): the kubeconfig loads, the API server
  answers, the namespace exists and RBAC allows every verb the runtime uses. Each failure is
  one :class:`KubernetesUnavailable` naming its cause, raised before the platform starts.
- One thread lists the managed Pods, then watches from that list's resourceVersion; a
  ``410 Gone`` (expired resourceVersion) means list again, other errors are logged and the
  watch resumes after a short, capped backoff. Every change calls the controller back.
- Status is the Kubernetes Pod's own ``PodStatus`` (the same shape Shipyard uses), with the
  scheduler's reason (``Unschedulable``: "0/3 nodes are available: ...") lifted into
  ``status.reason``/``message`` while the Pod is Pending.
- Quotas and gang admission stay in Shipyard's scheduler; placement is kube-scheduler's:
  ``assignment.gpus`` is ignored (the device plugin picks GPUs on the node).
- Deleting a Shipyard Pod deletes its workload (background propagation takes the rest);
  :meth:`stop` reports done once the watch has seen the Pod go.
- :meth:`shutdown` leaves workloads running by default (a restarted control plane adopts
  them from their labels); ``delete_on_shutdown=True`` removes those this instance started.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from shipyard.errors import BadRequest, ShipyardError
from shipyard.runtime import kube_objects as ko
from shipyard.runtime.base import Assignment, Obj, OnChange

log = logging.getLogger(__name__)

SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

# (verb, group, resource): everything the runtime does; deploy/role.yaml grants exactly these.
REQUIRED_ACCESS: tuple[tuple[str, str, str], ...] = (
    *((v, "", "pods") for v in ("get", "list", "watch", "create", "delete")),
    ("get", "", "pods/log"),
    *((v, "", "services") for v in ("get", "create", "delete")),
    *((v, "", "secrets") for v in ("get", "create", "patch", "delete")),
    *((v, "apps", "deployments") for v in ("get", "create", "delete")),
)


class KubernetesUnavailable(ShipyardError):
    """The cluster cannot be used: unreachable, bad kubeconfig, RBAC, missing namespace."""

    status = 503
    code = "KubernetesUnavailable"


def _reason(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)


def connect(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An API client: in-cluster credentials inside a Pod, else the kubeconfig
    (``kubeconfig``, ``$KUBECONFIG`` or ``~/.kube/config``)."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            cfg = client.Configuration()
            incluster: Any = config.load_incluster_config
            incluster(client_configuration=cfg)
            return client.ApiClient(cfg)
        except ConfigException as exc:
            raise KubernetesUnavailable(f"in-cluster Kubernetes credentials: {exc}") from None
    path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    if not Path(path).is_file():
        raise KubernetesUnavailable(
            f"no kubeconfig at {path}: pass --kubeconfig, set KUBECONFIG, or run inside a cluster"
        )
    try:
        new_client: Any = config.new_client_from_config
        api: client.ApiClient = new_client(config_file=path, context=context)
        return api
    except Exception as exc:  # ConfigException, yaml errors, missing keys: the file's fault
        raise KubernetesUnavailable(f"bad kubeconfig {path}: {exc}") from None


def _contexts(config_file: str | None) -> tuple[list[Obj], Obj]:
    listing: Any = config.list_kube_config_contexts
    contexts, active = listing(config_file=config_file)
    return list(contexts or []), dict(active or {})


def default_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace of the control plane's own Pod, else the kubeconfig context's."""
    if SA_NAMESPACE_FILE.is_file():
        return SA_NAMESPACE_FILE.read_text().strip()
    with contextlib.suppress(Exception):
        _, active = _contexts(config_file=kubeconfig)
        if context:
            contexts, _ = _contexts(config_file=kubeconfig)
            active = next((c for c in contexts if c["name"] == context), active)
        ns = (active or {}).get("context", {}).get("namespace")
        if ns:
            return str(ns)
    return "default"


class KubernetesRuntime:
    """Runs Shipyard Pods as Kubernetes objects in one namespace. Thread-safe."""

    name = "kubernetes"

    def __init__(
        self,
        namespace: str | None = None,
        *,
        api_client: client.ApiClient | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
        image: str = "shipyard:latest",
        base_env: dict[str, str] | None = None,
        url: str | None = None,
        delete_on_shutdown: bool = False,
        request_timeout: float = 10.0,
    ) -> None:
        self.api = api_client or connect(kubeconfig, context)
        self.namespace = namespace or default_namespace(kubeconfig, context)
        # Typed as Any: the client's models are bypassed, bodies are plain v1 dicts.
        self.core: Any = client.CoreV1Api(self.api)
        self.apps: Any = client.AppsV1Api(self.api)
        self.authz: Any = client.AuthorizationV1Api(self.api)
        self.image = image
        # Given to every container: SHIPYARD_URL (set by the server once it listens, or
        # configured), SHIPYARD_ARTIFACTS.
        self.base_env: dict[str, str] = dict(base_env or {})
        # SHIPYARD_URL as Pods on the cluster reach the API (the Service's name): wins over
        # the address the server bound, which the server writes into base_env.
        self.url = url
        self.delete_on_shutdown = delete_on_shutdown
        self.timeout = request_timeout
        self._lock = threading.RLock()
        self._pods: dict[str, Obj] = {}  # Shipyard uid -> the Kubernetes Pod it runs as
        self._serving_pods: dict[str, dict[str, Obj]] = {}  # uid -> k8s name -> Pod
        self._known: dict[str, Obj] = {}  # Shipyard uid -> Shipyard Pod
        self._errors: dict[str, str] = {}
        self._stopping: set[str] = set()
        self._on_change: OnChange = lambda ns, name: None
        self._closed = threading.Event()
        self._synced = threading.Event()
        self._resource_version = ""
        self.relists = 0
        self._thread: threading.Thread | None = None

    # -- start-up -------------------------------------------------------------------------------

    def preflight(self) -> None:
        """Fail now, with one clear message, if the cluster cannot be used."""
        host = self.api.configuration.host
        try:
            client.VersionApi(self.api).get_code(_request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status in (401, 403):
                raise KubernetesUnavailable(
                    f"the Kubernetes API server at {host} refused our credentials "
                    f"({exc.status} {_reason(exc)}): check the kubeconfig's user or token"
                ) from None
            raise KubernetesUnavailable(
                f"the Kubernetes API server at {host} answered {exc.status} {_reason(exc)}"
            ) from None
        except Exception as exc:
            raise KubernetesUnavailable(
                f"no Kubernetes cluster reachable at {host}: {type(exc).__name__}: {exc}"
            ) from None
        missing = [
            f"{verb} {res}{'.' + grp if grp else ''}"
            for verb, grp, res in REQUIRED_ACCESS
            if not self._allowed(verb, grp, res)
        ]
        if missing:
            raise KubernetesUnavailable(
                f"RBAC forbids the Shipyard runtime in namespace {self.namespace!r}: "
                f"{', '.join(missing)} (apply deploy/rbac.yaml, or bind a Role granting them)"
            )
        self._check_namespace()

    def _allowed(self, verb: str, group: str, resource: str) -> bool:
        sub = resource.split("/", 1)
        attrs = {
            "namespace": self.namespace,
            "verb": verb,
            "group": group,
            "resource": sub[0],
        }
        if len(sub) == 2:
            attrs["subresource"] = sub[1]
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs},
        }
        try:
            got = self.authz.create_self_subject_access_review(
                review, _request_timeout=self.timeout
            )
        except ApiException as exc:
            raise KubernetesUnavailable(
                f"cannot check RBAC at {self.api.configuration.host}: {exc.status} {_reason(exc)}"
            ) from None
        return bool(got.status.allowed)

    def _check_namespace(self) -> None:
        probe = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "shipyard-preflight", "namespace": self.namespace},
            "spec": {"containers": [{"name": "c", "image": self.image}]},
        }
        try:
            self.core.create_namespaced_pod(
                self.namespace, probe, dry_run="All", _request_timeout=self.timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                raise KubernetesUnavailable(
                    f"Kubernetes namespace {self.namespace!r} does not exist: create it "
                    "(kubectl create namespace ...) or pass --kube-namespace"
                ) from None
            if exc.status == 409:
                return  # a Pod of that name exists: the namespace does
            raise KubernetesUnavailable(
                f"cannot create Pods in Kubernetes namespace {self.namespace!r}: "
                f"{exc.status} {_reason(exc)}"
            ) from None

    def begin(self) -> KubernetesRuntime:
        """Start the watch (after the first list, so adopt() sees what already runs)."""
        if self._thread is None:
            self._relist()
            self._thread = threading.Thread(target=self._watch_loop, name="kube-watch", daemon=True)
            self._thread.start()
        return self

    # -- watch ----------------------------------------------------------------------------------

    def _relist(self) -> None:
        listed = self.core.list_namespaced_pod(
            self.namespace,
            label_selector=ko.SELECTOR,
            _preload_content=False,
            _request_timeout=self.timeout,
        )
        body = json.loads(listed.data)
        pods: list[Obj] = body.get("items") or []
        with self._lock:
            before = set(self._pods) | set(self._serving_pods)
            self._pods.clear()
            self._serving_pods.clear()
            for p in pods:
                self._apply("MODIFIED", p, notify=False)
            self._resource_version = str(body["metadata"].get("resourceVersion") or "")
            after = set(self._pods) | set(self._serving_pods)
            self.relists += 1
        self._synced.set()
        for uid in before | after:
            self._notify_uid(uid)

    def _watch_loop(self) -> None:
        backoff = 0.2
        while not self._closed.is_set():
            try:
                self._watch_once()
                backoff = 0.2
            except ApiException as exc:
                if exc.status == 410:
                    log.info("kubernetes watch expired (410 Gone): listing again")
                    self._safe_relist()
                    continue
                log.warning("kubernetes watch failed: %s %s", exc.status, _reason(exc))
                backoff = self._pause(backoff)
                self._safe_relist()
            except Exception as exc:
                if self._closed.is_set():
                    return
                log.warning("kubernetes watch interrupted: %s: %s", type(exc).__name__, exc)
                backoff = self._pause(backoff)
                self._safe_relist()

    def _pause(self, backoff: float) -> float:
        self._closed.wait(backoff)
        return min(backoff * 2, 10.0)

    def _safe_relist(self) -> None:
        if self._closed.is_set():
            return
        try:
            self._relist()
        except Exception as exc:
            log.warning("kubernetes list failed: %s: %s", type(exc).__name__, exc)

    def _watch_once(self) -> None:
        w: Any = watch.Watch()  # type: ignore[no-untyped-call]
        stream = w.stream(
            self.core.list_namespaced_pod,
            self.namespace,
            label_selector=ko.SELECTOR,
            resource_version=self._resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=30,
            _request_timeout=60,
        )
        try:
            for event in stream:
                if self._closed.is_set():
                    return
                kind = event["type"]
                raw: Obj = event.get("raw_object") or {}
                if kind == "ERROR":
                    code = int(raw.get("code") or 500)
                    raise ApiException(status=code, reason=str(raw.get("message") or ""))
                rv = (raw.get("metadata") or {}).get("resourceVersion")
                if rv:
                    self._resource_version = str(rv)
                if kind == "BOOKMARK":
                    continue
                with self._lock:
                    self._apply(kind, raw, notify=True)
        finally:
            w.stop()

    def _apply(self, kind: str, pod: Obj, *, notify: bool) -> None:
        md = pod.get("metadata") or {}
        uid = (md.get("labels") or {}).get(ko.UID_LABEL)
        if not uid:
            return
        owners = md.get("ownerReferences") or []
        if any(o.get("kind") == "ReplicaSet" for o in owners):
            replicas = self._serving_pods.setdefault(uid, {})
            if kind == "DELETED":
                replicas.pop(md["name"], None)
                if not replicas:
                    self._serving_pods.pop(uid, None)
            else:
                replicas[md["name"]] = pod
        elif kind == "DELETED":
            self._pods.pop(uid, None)
        else:
            self._pods[uid] = pod
        if notify:
            self._notify_uid(uid)

    def _notify_uid(self, uid: str) -> None:
        known = self._known.get(uid)
        if known is None:
            return
        md = known["metadata"]
        try:
            self._on_change(md.get("namespace", ""), md["name"])
        except Exception:
            log.exception("runtime on_change callback failed")

    # -- protocol -------------------------------------------------------------------------------

    def set_on_change(self, callback: OnChange) -> None:
        self._on_change = callback

    def knows(self, pod: Obj) -> bool:
        """Started or adopted here, or its workload is in the namespace (an earlier control
        plane started it: it is this runtime's to report on and to delete)."""
        uid = pod["metadata"]["uid"]
        with self._lock:
            if uid in self._known:
                return True
            if uid in self._pods or uid in self._serving_pods:
                self._known[uid] = pod
                return True
        return False

    def start(self, pod: Obj, assignment: Assignment) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            if uid in self._known:
                return
            self._known[uid] = pod
        objs = ko.build(
            pod,
            namespace=self.namespace,
            image=self.image,
            base_env={**self.base_env, **({"SHIPYARD_URL": self.url} if self.url else {})},
            extra_env=assignment.extra_env,
        )
        try:
            self._create(objs)
        except ApiException as exc:
            with self._lock:
                self._errors[uid] = (
                    f"Kubernetes refused {objs.workload['kind']} "
                    f"{objs.workload['metadata']['name']}: {exc.status} {_reason(exc)}"
                )
        except ValueError as exc:  # the client's own model validation, before any request
            with self._lock:
                self._errors[uid] = (
                    f"invalid {objs.workload['kind']} {objs.workload['metadata']['name']}: "
                    + str(exc).replace("\n", " ")
                )
        self._notify_uid(uid)

    def _create(self, objs: ko.Objects) -> None:
        ns = self.namespace
        if objs.secret is not None:
            self._idempotent(self.core.create_namespaced_secret, objs.secret)
        kind = objs.workload["kind"]
        if kind == "Deployment":
            owner = self._idempotent(
                self.apps.create_namespaced_deployment,
                objs.workload,
                read=self.apps.read_namespaced_deployment,
            )
        else:
            owner = self._idempotent(
                self.core.create_namespaced_pod, objs.workload, read=self.core.read_namespaced_pod
            )
        if objs.service is not None:
            self._idempotent(self.core.create_namespaced_service, ko.owned_by(objs.service, owner))
        if objs.secret is not None:
            ref = {"metadata": {"ownerReferences": [ko.owner_reference(owner)]}}
            self.core.patch_namespaced_secret(
                objs.secret["metadata"]["name"], ns, ref, _request_timeout=self.timeout
            )

    def _idempotent(self, create: Any, body: Obj, read: Any = None) -> Obj:
        """Create ``body``; if it exists already (a retry, an adopted Pod), read it."""
        try:
            got = create(self.namespace, body, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status != 409:
                raise
            if read is None:
                return body
            got = read(body["metadata"]["name"], self.namespace, _request_timeout=self.timeout)
        sanitize: Any = self.api.sanitize_for_serialization
        out: Obj = sanitize(got)
        out.setdefault("apiVersion", body["apiVersion"])
        out.setdefault("kind", body["kind"])
        return out

    def adopt(self, pod: Obj, extra_env: dict[str, str] | None = None) -> bool:
        """Take over a Pod an earlier control plane started: True if its workload exists."""
        self._synced.wait(self.timeout)
        uid = pod["metadata"]["uid"]
        with self._lock:
            if uid in self._known:
                return True
            present = uid in self._pods or uid in self._serving_pods
        if not present and ko.is_serving(pod):
            present = self._exists(self.apps.read_namespaced_deployment, ko.object_name(pod))
        elif not present:
            present = self._exists(self.core.read_namespaced_pod, ko.object_name(pod))
        if present:
            with self._lock:
                self._known[uid] = pod
            self._notify_uid(uid)
        return present

    def _exists(self, read: Any, name: str) -> bool:
        try:
            read(name, self.namespace, _request_timeout=self.timeout)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    def _current(self, uid: str) -> Obj | None:
        """The Kubernetes Pod a Shipyard Pod runs as now (for serving: the newest replica
        that is not being deleted)."""
        if uid in self._pods:
            return self._pods[uid]
        replicas = list((self._serving_pods.get(uid) or {}).values())
        live = [p for p in replicas if not p["metadata"].get("deletionTimestamp")] or replicas
        if not live:
            return None
        return max(live, key=lambda p: str(p["metadata"].get("creationTimestamp") or ""))

    def status(self, pod: Obj) -> Obj | None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            if uid not in self._known:
                return None
            error = self._errors.get(uid)
            if error:
                return {"phase": "Failed", "reason": "KubernetesRejected", "message": error}
            current = self._current(uid)
            if current is None:
                if uid in self._stopping:
                    return {"phase": "Failed", "reason": "Terminated", "message": "deleted"}
                return {
                    "phase": "Pending",
                    "reason": "Creating",
                    "message": "Kubernetes object created",
                }
            return pod_status(current, serving=ko.is_serving(pod), policy=_policy(pod))

    def stop(self, pod: Obj, grace_seconds: float | None = None) -> bool:
        uid = pod["metadata"]["uid"]
        name = ko.object_name(pod)
        with self._lock:
            first = uid not in self._stopping
            self._stopping.add(uid)
        if first:
            opts: dict[str, Any] = {"propagation_policy": "Background"}
            if grace_seconds is not None:
                opts["grace_period_seconds"] = max(0, int(grace_seconds))
            delete = (
                self.apps.delete_namespaced_deployment
                if ko.is_serving(pod)
                else self.core.delete_namespaced_pod
            )
            try:
                delete(name, self.namespace, _request_timeout=self.timeout, **opts)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        with self._lock:
            return uid not in self._pods and uid not in self._serving_pods

    def forget(self, pod: Obj) -> None:
        """Drop a stopped Pod. A finished Pod that was not deleted stays known: its
        Kubernetes Pod holds its logs, and deleting the Shipyard Pod must delete it."""
        uid = pod["metadata"]["uid"]
        with self._lock:
            exists = uid in self._pods or uid in self._serving_pods
            if exists and uid not in self._stopping and uid not in self._errors:
                return
            self._known.pop(uid, None)
            self._errors.pop(uid, None)
            self._stopping.discard(uid)

    def endpoint(self, pod: Obj, port: int) -> tuple[str, int]:
        """The Pod's IP (the control plane runs in the cluster, so Pod IPs are routable)."""
        with self._lock:
            current = self._current(pod["metadata"]["uid"])
        ip = ((current or {}).get("status") or {}).get("podIP")
        if not ip:
            return (f"{ko.object_name(pod)}.{self.namespace}.svc", port)
        return (str(ip), port)

    def logs(
        self,
        pod: Obj,
        container: str | None = None,
        *,
        follow: bool = False,
        tail: int | None = None,
    ) -> Iterator[bytes]:
        spec = pod.get("spec") or {}
        names = [c["name"] for c in (spec.get("initContainers") or []) + spec.get("containers", [])]
        if container is None:
            container = names[len(spec.get("initContainers") or [])] if names else ""
        if container not in names:
            raise BadRequest(
                f"container {container!r} is not in pod {pod['metadata']['name']!r}; "
                f"choose one of: {', '.join(names)}",
                field="container",
            )
        uid = pod["metadata"]["uid"]
        while follow and not self._closed.is_set():
            with self._lock:
                current = self._current(uid)
                # Started here but not in the watch's view yet (just after start): wait for
                # it, as for a container still being created, unless its start failed.
                pending = uid in self._known and uid not in self._errors
            if _container_started(current, container) if current else not pending:
                break
            time.sleep(0.1)
        with self._lock:
            current = self._current(uid)
        if current is not None:
            target = str(current["metadata"]["name"])
        elif ko.is_serving(pod):
            return  # no replica yet, or none left
        else:
            target = ko.object_name(pod)
        opts: dict[str, Any] = {"container": container, "_preload_content": False}
        if follow:
            opts["follow"] = True
        if tail is not None:
            opts["tail_lines"] = tail
        try:
            resp = self.core.read_namespaced_pod_log(target, self.namespace, **opts)
        except ApiException as exc:
            if exc.status in (400, 404):
                return  # not started, or gone
            raise
        try:
            yield from resp.stream(65536)
        finally:
            resp.release_conn()

    def shutdown(self) -> None:
        self._closed.set()
        if self.delete_on_shutdown:
            with self._lock:
                pods = list(self._known.values())
            for pod in pods:
                with contextlib.suppress(Exception):
                    self.stop(pod, 0)


def _policy(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("restartPolicy") or "Always")


def _container_started(pod: Obj, container: str) -> bool:
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or []:
            if cs.get("name") == container:
                state = cs.get("state") or {}
                return "running" in state or "terminated" in state
    return status.get("phase") in ("Succeeded", "Failed")


def pod_status(k8s_pod: Obj, *, serving: bool = False, policy: str = "Always") -> Obj:
    """Shipyard's view of a Kubernetes Pod: its PodStatus, with the scheduler's reason lifted
    to ``reason``/``message`` while it is unscheduled, and — for a serving replica, which a
    Deployment restarts although the Shipyard Pod said ``Never`` — the first crash reported
    as ``Failed``, as the serving controller expects."""
    status: Obj = copy.deepcopy(k8s_pod.get("status") or {})
    status.setdefault("phase", "Pending")
    if status["phase"] == "Pending" and not status.get("reason"):
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                status["reason"] = cond.get("reason") or "Unschedulable"
                status["message"] = cond.get("message") or ""
    if serving and policy != "Always":
        for cs in status.get("containerStatuses") or []:
            last = (cs.get("lastState") or {}).get("terminated")
            term = (cs.get("state") or {}).get("terminated") or last
            restarted = int(cs.get("restartCount") or 0) > 0
            if term and (restarted or term.get("exitCode") not in (0, None)):
                status["phase"] = "Failed"
                cs["state"] = {"terminated": term}
    if k8s_pod.get("metadata", {}).get("deletionTimestamp") and status["phase"] == "Running":
        status.setdefault("reason", "Terminating")
    return status


def from_settings(settings: Any) -> KubernetesRuntime:
    """The runtime ``shipyard up --runtime kubernetes`` uses: connected, checked (one clear
    error if the cluster cannot be used) and watching."""
    base_env: dict[str, str] = {}
    if os.environ.get("SHIPYARD_ARTIFACTS"):
        base_env["SHIPYARD_ARTIFACTS"] = os.environ["SHIPYARD_ARTIFACTS"]
    runtime = KubernetesRuntime(
        settings.kube_namespace,
        kubeconfig=settings.kubeconfig,
        image=settings.kube_image,
        base_env=base_env,
        url=settings.kube_url,
    )
    runtime.preflight()
    return runtime.begin()
