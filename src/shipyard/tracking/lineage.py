"""The lineage graph of a model version: artifacts ↔ executions ↔ model versions ↔ services.

Upstream: the version's artifact, the run that produced it (params, code digest), the
execution behind the run (Trial, training job, Pod of a pipeline task) and its parent
(Experiment, PipelineRun), the datasets the run consumed (with digests), and, recursively,
the runs that produced those datasets. Downstream: the InferenceServices serving the version
and the runs that consumed its artifact.

Nodes are ``{id, type, name, ...}``, edges ``{from, to, relation}`` (from is upstream).
"""

from __future__ import annotations

from typing import Any

from shipyard.core.resource import Obj
from shipyard.registry.admission import serving_services
from shipyard.registry.uris import resolve
from shipyard.tracking.api import TRACKING_RUN

MAX_DEPTH = 8


class _Graph:
    def __init__(self) -> None:
        self.nodes: dict[str, Obj] = {}
        self.edges: list[Obj] = []

    def node(self, nid: str, **attrs: Any) -> str:
        if nid not in self.nodes:
            self.nodes[nid] = {"id": nid, **{k: v for k, v in attrs.items() if v is not None}}
        return nid

    def edge(self, src: str, dst: str, relation: str) -> None:
        e = {"from": src, "to": dst, "relation": relation}
        if e not in self.edges:
            self.edges.append(e)


def _ref_uri(model: str, version: str) -> str:
    v = version.lstrip("v") if version.lstrip("v").isdigit() else version
    if v.isdigit() or v == "latest":
        return f"models:/{model}/{v}"
    return f"models:/{model}@{v.lstrip('@')}"


def model_lineage(platform: Any, namespace: str, model: str, version: str) -> Obj:
    """The graph around ``model`` at ``version`` (a number, ``latest`` or an alias)."""
    mv = resolve(platform.store, _ref_uri(model, version), namespace)
    runs = platform.store.list(TRACKING_RUN.key, namespace).items
    produced: dict[str, list[Obj]] = {}
    consumed: dict[str, list[Obj]] = {}
    for run in runs:
        for a in (run.get("status") or {}).get("artifacts") or []:
            index = produced if a["direction"] == "output" else consumed
            index.setdefault(a["uri"], []).append(run)
    g = _Graph()
    spec = mv["spec"]
    root = g.node(
        f"modelversion:{namespace}/{mv['metadata']['name']}",
        type="ModelVersion",
        name=mv["metadata"]["name"],
        model=spec["modelName"],
        version=spec["version"],
        format=spec.get("format"),
        aliases=(mv.get("status") or {}).get("aliases"),
        archived=bool(spec.get("archived")),
        metrics=spec.get("metrics"),
        params=spec.get("params"),
    )
    art = _artifact_node(g, spec["artifactUri"], "model")
    g.edge(art, root, "registered as")
    source_run = (spec.get("source") or {}).get("run")
    producers = [r for r in runs if r["metadata"]["name"] == source_run] or produced.get(
        spec["artifactUri"], []
    )
    seen: set[str] = set()
    for run in producers:
        rid = _run_upstream(g, platform, namespace, run, produced, seen, 0)
        g.edge(rid, art, "produced")
    upstream = set(g.nodes) - {root}
    for isvc in serving_services(platform, mv):
        sid = g.node(
            f"inferenceservice:{namespace}/{isvc['metadata']['name']}",
            type="InferenceService",
            name=isvc["metadata"]["name"],
            storageUri=((isvc["spec"].get("predictor") or {}).get("model") or {}).get("storageUri"),
            url=(isvc.get("status") or {}).get("url"),
        )
        g.edge(root, sid, "served by")
    for run in consumed.get(spec["artifactUri"], []):
        rid = _run_node(g, namespace, run)
        g.edge(art, rid, "consumed by")
    downstream = set(g.nodes) - upstream - {root}
    return {
        "root": root,
        "nodes": list(g.nodes.values()),
        "edges": g.edges,
        "upstream": sorted(upstream),
        "downstream": sorted(downstream),
    }


def _artifact_node(g: _Graph, uri: str, name: str | None) -> str:
    digest = "sha256:" + uri.rsplit("/", 1)[-1] if uri.startswith("artifact://") else None
    return g.node(f"artifact:{uri}", type="Artifact", name=name, uri=uri, digest=digest)


def _run_node(g: _Graph, namespace: str, run: Obj) -> str:
    status, spec = run.get("status") or {}, run["spec"]
    rid = g.node(
        f"run:{namespace}/{run['metadata']['name']}",
        type="TrackingRun",
        name=run["metadata"]["name"],
        params=status.get("params") or {},
        metrics={k: v[-1]["value"] for k, v in (status.get("metrics") or {}).items() if v},
        code=status.get("code"),
        task=spec.get("task"),
    )
    ex = spec["execution"]
    eid = g.node(f"{ex['kind'].lower()}:{namespace}/{ex['name']}", type=ex["kind"], name=ex["name"])
    g.edge(eid, rid, "tracked as")
    parent = spec.get("parent")
    if parent:
        pid = g.node(
            f"{parent['kind'].lower()}:{namespace}/{parent['name']}",
            type=parent["kind"],
            name=parent["name"],
        )
        g.edge(pid, eid, "ran")
    return rid


def _run_upstream(
    g: _Graph,
    platform: Any,
    namespace: str,
    run: Obj,
    produced: dict[str, list[Obj]],
    seen: set[str],
    depth: int,
) -> str:
    rid = _run_node(g, namespace, run)
    if rid in seen or depth >= MAX_DEPTH:
        return rid
    seen.add(rid)
    parent = run["spec"].get("parent") or {}
    if parent.get("kind") == "PipelineRun" and run["spec"].get("task"):
        _pipeline_inputs(g, platform, namespace, parent["name"], run["spec"]["task"], rid, 0)
    for a in (run.get("status") or {}).get("artifacts") or []:
        if a["direction"] != "input":
            continue
        aid = _artifact_node(g, a["uri"], a.get("name"))
        g.edge(aid, rid, "consumed by")
        for producer in produced.get(a["uri"], []):
            if producer["metadata"]["name"] == run["metadata"]["name"]:
                continue
            pid = _run_upstream(g, platform, namespace, producer, produced, seen, depth + 1)
            g.edge(pid, aid, "produced")
    return rid


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")


def _pipeline_inputs(
    g: _Graph, platform: Any, namespace: str, run_name: str, task: str, into: str, depth: int
) -> None:
    """A pipeline task's input artifacts (from its PipelineRun's status) and, upstream, the
    tasks that produced them, with their own inputs."""
    infos = [i for i in platform.registry if i.kind == "PipelineRun"]
    prun = platform.store.try_get(infos[0].key, namespace, run_name) if infos else None
    tasks = ((prun or {}).get("status") or {}).get("tasks") or {}
    tid = task if task in tasks else next((t for t in tasks if _slug(t) == task), None)
    if tid is None or depth >= MAX_DEPTH:
        return
    inputs = (tasks[tid].get("inputs") or {}).get("artifacts") or {}
    for name, art in sorted(inputs.items()):
        if not isinstance(art, dict) or not art.get("uri"):
            continue
        aid = _artifact_node(g, art["uri"], name)
        g.edge(aid, into, "consumed by")
        producer = art.get("producer") or {}
        if producer.get("task"):
            ptask = producer["task"]
            prun_name = producer.get("run") or run_name
            pid = g.node(
                f"pipelinetask:{namespace}/{prun_name}/{ptask}",
                type="PipelineTask",
                name=f"{prun_name}/{ptask}",
                params=((tasks.get(ptask) or {}).get("inputs") or {}).get("parameters"),
            )
            g.edge(pid, aid, "produced")
            g.edge(
                g.node(f"pipelinerun:{namespace}/{prun_name}", type="PipelineRun", name=prun_name),
                pid,
                "ran",
            )
            _pipeline_inputs(g, platform, namespace, prun_name, ptask, pid, depth + 1)
