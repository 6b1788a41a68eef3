"""The Kubernetes objects that stand for one Shipyard Pod, as plain ``v1``/``apps/v1`` dicts.

Pure functions, no client: the runtime (``runtime/kubernetes.py``) creates what these build,
and the tier 1 tests validate every one of them against the official schemas.

All of a control plane's Pods live in one Kubernetes namespace (the one the control plane
runs in, or ``--kube-namespace``), so a least-privilege namespaced Role is enough. A
Shipyard Pod ``NAME`` in Shipyard namespace ``NS`` becomes:

- a Kubernetes Pod ``NAME-<uid8>`` labelled ``shipyard.dev/{namespace,owner,kind}`` (copied
  from the Pod), ``shipyard.dev/pod-uid`` and ``app.kubernetes.io/managed-by=shipyard``;
- for a serving replica (``shipyard.dev/kind=InferenceService``): a Deployment of one replica
  with that Pod as its template (so Kubernetes reschedules it when a node goes), plus a
  ClusterIP Service on its ports, owned by the Deployment;
- for the master replica of a training job: a headless Service selecting it, owned by that
  Pod, so ``MASTER_ADDR`` (and ``PET_MASTER_ADDR``, ``PET_RDZV_ENDPOINT``) is a stable DNS
  name instead of the local ``127.0.0.1``;
- when the Pod's env names ConfigMaps or Secrets (which live in Shipyard's store), a Secret
  with their resolved values, referenced with ``secretKeyRef``/``secretRef``, owned by the
  Pod or Deployment.

Owner references between these objects make Kubernetes' garbage collector delete the Service
and Secret with the workload; deleting the Shipyard Pod deletes the workload.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

MANAGED_BY = ("app.kubernetes.io/managed-by", "shipyard")
SELECTOR = f"{MANAGED_BY[0]}={MANAGED_BY[1]}"
UID_LABEL = "shipyard.dev/pod-uid"
NAME_ANNOTATION = "shipyard.dev/pod-name"
NS_LABEL = "shipyard.dev/namespace"
OWNER_LABEL = "shipyard.dev/owner"
KIND_LABEL = "shipyard.dev/kind"
SHIPYARD_OWNER_ANNOTATION = "shipyard.dev/owner-references"
JOB_LABEL = "training.kubeflow.org/job-name"
ROLE_LABEL = "training.kubeflow.org/job-role"
SERVING_KIND = "InferenceService"
PORT_ANNOTATION = "serving.shipyard.dev/port"
MASTER_ENV = ("MASTER_ADDR", "PET_MASTER_ADDR", "PET_RDZV_ENDPOINT")
LOCAL_HOST = "127.0.0.1"

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def dns_label(*parts: str, suffix: str = "") -> str:
    """A DNS-1035 label (Services need one; Pods accept it): lowercase, at most 63
    characters, starting with a letter; ``suffix`` (a hash) keeps it unique when cut."""
    base = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-") or "x"
    if not base[0].isalpha():
        base = "s-" + base
    room = 63 - (len(suffix) + 1 if suffix else 0)
    base = base[:room].rstrip("-")
    return f"{base}-{suffix}" if suffix else base


def short_hash(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:8]


def object_name(pod: Obj) -> str:
    """The Kubernetes name of a Shipyard Pod's workload: its name and its uid's first 8."""
    md = pod["metadata"]
    return dns_label(md["name"], suffix=re.sub(r"[^a-z0-9]", "", md["uid"].lower())[:8])


def labels_of(pod: Obj) -> dict[str, str]:
    return dict((pod.get("metadata") or {}).get("labels") or {})


def is_serving(pod: Obj) -> bool:
    return labels_of(pod).get(KIND_LABEL) == SERVING_KIND


def is_training_master(pod: Obj) -> bool:
    labels = labels_of(pod)
    return JOB_LABEL in labels and labels.get(ROLE_LABEL) == "master"


def master_service_name(pod: Obj) -> str:
    """The headless Service of a training job (one per Shipyard namespace and job)."""
    labels = labels_of(pod)
    ns = pod["metadata"].get("namespace", "")
    job = labels.get(JOB_LABEL, "")
    return dns_label(job, "master", suffix=short_hash(ns, job))


def env_secret_name(pod: Obj) -> str:
    return dns_label(object_name(pod), "env")


@dataclass
class Objects:
    """What one Shipyard Pod becomes: the workload (Pod or Deployment) and its helpers."""

    workload: Obj
    service: Obj | None = None
    secret: Obj | None = None
    extra: list[Obj] = field(default_factory=list)

    def all(self) -> list[Obj]:
        return [o for o in (self.secret, self.workload, self.service) if o is not None]


def owner_reference(obj: Obj, *, controller: bool = True) -> Obj:
    """An ownerReference to a created object (it needs the uid the API server gave it)."""
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": False,  # no finalizers permission needed; GC still runs
    }


def _labels(pod: Obj) -> dict[str, str]:
    md = pod["metadata"]
    labels = {k: v for k, v in labels_of(pod).items() if _LABEL_VALUE.match(str(v))}
    labels.setdefault(NS_LABEL, md.get("namespace", ""))
    labels[MANAGED_BY[0]] = MANAGED_BY[1]
    labels[UID_LABEL] = md["uid"]
    return {k: str(v)[:63] for k, v in labels.items() if _LABEL_VALUE.match(str(v)[:63])}


def _annotations(pod: Obj) -> dict[str, str]:
    md = pod["metadata"]
    out = {str(k): str(v) for k, v in (md.get("annotations") or {}).items()}
    out[NAME_ANNOTATION] = f"{md.get('namespace', '')}/{md['name']}"
    refs = md.get("ownerReferences") or []
    if refs:
        out[SHIPYARD_OWNER_ANNOTATION] = ",".join(
            f"{r.get('kind')}/{r.get('name')}/{r.get('uid')}" for r in refs
        )
    return out


def _rewrite_master(value: str, service_host: str) -> str:
    """``127.0.0.1`` or ``127.0.0.1:PORT`` → the headless Service's DNS name."""
    if value == LOCAL_HOST:
        return service_host
    if value.startswith(LOCAL_HOST + ":"):
        return service_host + value[len(LOCAL_HOST) :]
    return value


def _container(
    c: Obj,
    *,
    image: str,
    platform_env: list[Obj],
    refs: set[str],
    secret: str | None,
    master_host: str | None,
) -> Obj:
    out = copy.deepcopy(c)
    out["image"] = out.get("image") or image
    resources = out.get("resources") or {}
    for group in ("requests", "limits"):
        if resources.get(group):  # quantities are strings on the wire ("2", not 2)
            resources[group] = {k: str(v) for k, v in resources[group].items()}
    env: list[Obj] = []
    names = {e["name"] for e in out.get("env") or []}
    env += [e for e in platform_env if e["name"] not in names]
    for e in out.get("env") or []:
        e = dict(e)
        source = e.get("valueFrom") or {}
        if (
            secret
            and e["name"] in refs
            and ("configMapKeyRef" in source or "secretKeyRef" in source)
        ):
            e["valueFrom"] = {"secretKeyRef": {"name": secret, "key": e["name"]}}
        elif master_host and e["name"] in MASTER_ENV and "value" in e:
            e["value"] = _rewrite_master(str(e["value"]), master_host)
        env.append(e)
    if env:
        out["env"] = env
    if out.get("envFrom"):
        kept = [ef for ef in out["envFrom"] if "configMapRef" not in ef and "secretRef" not in ef]
        if secret and len(kept) != len(out["envFrom"]):
            kept.append({"secretRef": {"name": secret}})
        out["envFrom"] = kept
        if not kept:
            del out["envFrom"]
    return out


def pod_spec(
    pod: Obj,
    *,
    image: str,
    platform_env: list[Obj],
    refs: set[str],
    secret: str | None,
    namespace: str,
) -> Obj:
    """The Kubernetes PodSpec: the Shipyard spec as it is (resources including
    ``nvidia.com/gpu``, nodeSelector, affinity, tolerations, volumes, serviceAccountName,
    imagePullSecrets...), with images defaulted, env completed and no ``nodeName``:
    placement is kube-scheduler's."""
    spec = copy.deepcopy(pod.get("spec") or {})
    spec.pop("nodeName", None)
    master_host = None
    if JOB_LABEL in labels_of(pod):
        master_host = f"{master_service_name(pod)}.{namespace}.svc"
    for group in ("initContainers", "containers"):
        if spec.get(group):
            spec[group] = [
                _container(
                    c,
                    image=image,
                    platform_env=platform_env,
                    refs=refs,
                    secret=secret,
                    master_host=master_host,
                )
                for c in spec[group]
            ]
    return spec


def platform_env(pod: Obj, base: dict[str, str]) -> list[Obj]:
    """What the local runtime also gives every container (SHIPYARD_URL, the Pod's Shipyard
    name, namespace and uid) plus ``base`` (such as SHIPYARD_ARTIFACTS)."""
    md = pod["metadata"]
    env = dict(base)
    env.update(
        SHIPYARD_POD_NAME=md["name"],
        SHIPYARD_POD_NAMESPACE=md.get("namespace", ""),
        SHIPYARD_POD_UID=md["uid"],
    )
    return [{"name": k, "value": v} for k, v in sorted(env.items())]


def _ports(pod: Obj) -> list[Obj]:
    ports: list[Obj] = []
    seen: set[int] = set()
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            n = int(p["containerPort"])
            if n not in seen:
                seen.add(n)
                ports.append({"name": f"p{n}", "port": n, "targetPort": n, "protocol": "TCP"})
    annotated = ((pod.get("metadata") or {}).get("annotations") or {}).get(PORT_ANNOTATION)
    if annotated and str(annotated).isdigit() and int(annotated) not in seen and int(annotated):
        n = int(annotated)
        ports.append({"name": f"p{n}", "port": n, "targetPort": n, "protocol": "TCP"})
    return ports


def build(
    pod: Obj,
    *,
    namespace: str,
    image: str,
    base_env: dict[str, str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> Objects:
    """Every object a Shipyard Pod becomes (without the owner references that need the
    API server's uids: :func:`owned_by` adds those once the owner exists)."""
    name = object_name(pod)
    labels = _labels(pod)
    annotations = _annotations(pod)
    refs = set(extra_env or {})
    secret_obj: Obj | None = None
    secret_name: str | None = None
    if extra_env:
        secret_name = env_secret_name(pod)
        secret_obj = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret_name, "namespace": namespace, "labels": dict(labels)},
            "type": "Opaque",
            "stringData": dict(extra_env),
        }
    spec = pod_spec(
        pod,
        image=image,
        platform_env=platform_env(pod, base_env or {}),
        refs=refs,
        secret=secret_name,
        namespace=namespace,
    )
    meta = {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations}
    if is_serving(pod):
        spec["restartPolicy"] = "Always"  # the only policy a Deployment allows
        workload: Obj = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {UID_LABEL: labels[UID_LABEL]}},
                "template": {
                    "metadata": {"labels": labels, "annotations": annotations},
                    "spec": spec,
                },
            },
        }
        service: Obj | None = None
        ports = _ports(pod)
        if ports:
            service = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
                "spec": {"selector": {UID_LABEL: labels[UID_LABEL]}, "ports": ports},
            }
        return Objects(workload, service, secret_obj)
    workload = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
    service = None
    if is_training_master(pod):
        service = master_service(pod, namespace=namespace)
    return Objects(workload, service, secret_obj)


def master_service(pod: Obj, *, namespace: str) -> Obj:
    """The headless Service naming a training job's master replica."""
    labels = labels_of(pod)
    port = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        for e in c.get("env") or []:
            if (
                e.get("name") in ("MASTER_PORT", "PET_MASTER_PORT")
                and str(e.get("value")).isdigit()
            ):
                port = int(e["value"])
                break
        if port:
            break
    ports = [{"name": "master", "port": port or 23456, "targetPort": port or 23456}]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": master_service_name(pod),
            "namespace": namespace,
            "labels": {
                MANAGED_BY[0]: MANAGED_BY[1],
                NS_LABEL: pod["metadata"].get("namespace", ""),
                JOB_LABEL: labels[JOB_LABEL][:63],
            },
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {
                NS_LABEL: pod["metadata"].get("namespace", ""),
                JOB_LABEL: labels[JOB_LABEL][:63],
                ROLE_LABEL: "master",
            },
            "ports": ports,
        },
    }


def owned_by(obj: Obj, owner: Obj) -> Obj:
    """``obj`` with an ownerReference to ``owner`` (a created object, with its uid)."""
    out = copy.deepcopy(obj)
    out["metadata"]["ownerReferences"] = [owner_reference(owner)]
    return out
