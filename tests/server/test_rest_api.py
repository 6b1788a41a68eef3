"""The generic REST surface over HTTP: CRUD, apply, selectors, pagination, tables, discovery,
health, metrics and the OpenAPI document, against a real embedded platform on 127.0.0.1."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.client import Client

PODS = "/api/v1/namespaces/{ns}/pods"
APPLY = {"content-type": "application/apply-patch+json"}
MERGE = {"content-type": "application/merge-patch+json"}


def inert_pod(name: str, labels: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    """A Pod that never runs: it requests more CPU than any machine has, so it stays Pending."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}, **meta},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "command": ["python", "-c", "pass"],
                    "resources": {"requests": {"cpu": "10000"}},
                }
            ],
        },
    }


def make_ns(http: httpx.Client, name: str) -> None:
    r = http.post(
        "/api/v1/namespaces",
        json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    assert r.status_code == 201, r.text


def wait_gone(http: httpx.Client, path: str, timeout: float = 20.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    r = http.get(path)
    while r.status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.05)
        r = http.get(path)
    return r


@pytest.fixture(scope="module")
def platform_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    c = Client.embedded(Path(tmp_path_factory.mktemp("rest")))
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def http(platform_client: Client) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform_client.url, timeout=30) as h:
        yield h


def test_create_get_list_delete(http: httpx.Client) -> None:
    make_ns(http, "crud")
    r = http.post(PODS.format(ns="crud"), json=inert_pod("a", {"app": "x"}))
    assert r.status_code == 201
    created = r.json()
    md = created["metadata"]
    assert md["namespace"] == "crud"
    assert md["uid"] and md["resourceVersion"] and md["creationTimestamp"]
    assert created["spec"]["containers"][0]["name"] == "main"

    got = http.get(PODS.format(ns="crud") + "/a").json()
    assert got["metadata"]["uid"] == md["uid"]

    listed = http.get(PODS.format(ns="crud")).json()
    assert listed["kind"] == "PodList"
    assert [o["metadata"]["name"] for o in listed["items"]] == ["a"]
    assert int(listed["metadata"]["resourceVersion"]) >= int(md["resourceVersion"])

    r = http.post(PODS.format(ns="crud"), json=inert_pod("a"))
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "AlreadyExists"

    r = http.delete(PODS.format(ns="crud") + "/a")
    assert r.status_code == 200
    assert r.json()["metadata"]["name"] == "a"
    # The Pod has a runtime finalizer: it is gone once the controller has released it.
    r = wait_gone(http, PODS.format(ns="crud") + "/a")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "NotFound"


def test_replace_with_stale_resource_version_conflicts(http: httpx.Client) -> None:
    make_ns(http, "replace")
    path = PODS.format(ns="replace") + "/p"
    first = http.post(PODS.format(ns="replace"), json=inert_pod("p", {"v": "1"})).json()

    # The controller writes status meanwhile (which moves resourceVersion too): a client
    # re-reads and retries on 409, as with Kubernetes.
    for _ in range(50):
        newer = http.get(path).json()
        newer["metadata"]["labels"] = {"v": "2"}
        r = http.put(path, json=newer)
        if r.status_code != 409:
            break
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["labels"] == {"v": "2"}
    assert int(r.json()["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])

    stale = copy.deepcopy(first)
    stale["metadata"]["labels"] = {"v": "3"}
    r = http.put(path, json=stale)
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "Conflict"
    assert first["metadata"]["resourceVersion"] in err["message"]
    assert http.get(path).json()["metadata"]["labels"] == {"v": "2"}


def test_merge_patch(http: httpx.Client) -> None:
    make_ns(http, "patch")
    path = PODS.format(ns="patch") + "/p"
    http.post(PODS.format(ns="patch"), json=inert_pod("p", {"keep": "1", "drop": "1"}))
    r = http.patch(path, json={"metadata": {"labels": {"drop": None, "new": "2"}}}, headers=MERGE)
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["labels"] == {"keep": "1", "new": "2"}
    assert http.get(path).json()["metadata"]["labels"] == {"keep": "1", "new": "2"}


def test_apply_patch_reports_created_configured_unchanged(http: httpx.Client) -> None:
    make_ns(http, "apply")
    path = PODS.format(ns="apply") + "/p"
    body = inert_pod("p", {"v": "1"})

    r = http.patch(path, json=body, headers=APPLY)
    assert (r.status_code, r.headers["x-shipyard-action"]) == (201, "created")
    uid = r.json()["metadata"]["uid"]

    r = http.patch(path, json=body, headers=APPLY)
    assert (r.status_code, r.headers["x-shipyard-action"]) == (200, "unchanged")

    body["metadata"]["labels"] = {"v": "2"}
    r = http.patch(path, json=body, headers=APPLY)
    assert (r.status_code, r.headers["x-shipyard-action"]) == (200, "configured")
    assert r.json()["metadata"]["labels"] == {"v": "2"}
    assert r.json()["metadata"]["uid"] == uid

    # dryRun validates without writing.
    body["metadata"]["labels"] = {"v": "3"}
    r = http.patch(path, json=body, headers=APPLY, params={"dryRun": "All"})
    assert r.status_code == 200
    assert http.get(path).json()["metadata"]["labels"] == {"v": "2"}


def test_cluster_scoped_namespace_paths(http: httpx.Client) -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cluster-ns"}}
    r = http.post("/api/v1/namespaces", json=ns)
    assert r.status_code == 201
    assert "namespace" not in r.json()["metadata"]
    got = http.get("/api/v1/namespaces/cluster-ns").json()
    assert got["kind"] == "Namespace"
    names = [o["metadata"]["name"] for o in http.get("/api/v1/namespaces").json()["items"]]
    assert {"default", "cluster-ns"} <= set(names)

    r = http.patch(
        "/api/v1/namespaces/cluster-ns", json={"metadata": {"labels": {"team": "a"}}}, headers=MERGE
    )
    assert r.status_code == 200
    assert r.json()["metadata"]["labels"] == {"team": "a"}
    selected = http.get("/api/v1/namespaces", params={"labelSelector": "team=a"}).json()
    assert [o["metadata"]["name"] for o in selected["items"]] == ["cluster-ns"]

    assert http.delete("/api/v1/namespaces/cluster-ns").status_code == 200


def test_label_and_field_selectors(http: httpx.Client) -> None:
    make_ns(http, "sel")
    for name, labels in (
        ("web-1", {"app": "web", "tier": "front"}),
        ("web-2", {"app": "web", "tier": "back"}),
        ("db-1", {"app": "db"}),
    ):
        assert http.post(PODS.format(ns="sel"), json=inert_pod(name, labels)).status_code == 201

    def names(**params: str) -> list[str]:
        r = http.get(PODS.format(ns="sel"), params=params)
        assert r.status_code == 200, r.text
        return sorted(o["metadata"]["name"] for o in r.json()["items"])

    assert names(labelSelector="app=web") == ["web-1", "web-2"]
    assert names(labelSelector="app=web,tier!=back") == ["web-1"]
    assert names(labelSelector="app in (db,cache)") == ["db-1"]
    assert names(labelSelector="!tier") == ["db-1"]
    assert names(labelSelector="tier") == ["web-1", "web-2"]
    assert names(fieldSelector="metadata.name=web-2") == ["web-2"]
    assert names(fieldSelector="status.phase=Pending") == ["db-1", "web-1", "web-2"]
    assert names(fieldSelector="status.phase=Running") == []
    assert names(fieldSelector="status.phase=Pending,metadata.name=db-1") == ["db-1"]


def test_pagination_returns_each_object_exactly_once(http: httpx.Client) -> None:
    make_ns(http, "paged")
    expected = {f"p-{i:03d}" for i in range(120)}
    for name in sorted(expected):
        assert http.post(PODS.format(ns="paged"), json=inert_pod(name)).status_code == 201

    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        params = {"limit": "25", **({"continue": token} if token else {})}
        body = http.get(PODS.format(ns="paged"), params=params).json()
        assert len(body["items"]) <= 25
        seen += [o["metadata"]["name"] for o in body["items"]]
        pages += 1
        token = body["metadata"]["continue"]
        if not token:
            break
        # Writes between pages do not disturb the walk.
        http.post(PODS.format(ns="paged"), json=inert_pod(f"z-late-{pages}"))
    assert pages >= 5
    assert len(seen) == len(set(seen)), "a page repeated an object"
    assert expected <= set(seen)


def test_order_newest_lists_newest_first_through_pages_and_tables(
    http: httpx.Client, platform_client: Client
) -> None:
    make_ns(http, "fresh")
    made = [f"n-{(i * 5) % 7}" for i in range(7)]
    for name in made:
        assert http.post(PODS.format(ns="fresh"), json=inert_pod(name)).status_code == 201
    seen: list[str] = []
    token: str | None = None
    while True:
        params = {"limit": "3", "order": "newest", **({"continue": token} if token else {})}
        body = http.get(PODS.format(ns="fresh"), params=params).json()
        seen += [o["metadata"]["name"] for o in body["items"]]
        token = body["metadata"]["continue"]
        if not token:
            break
    assert seen == made[::-1]
    tbl = http.get(PODS.format(ns="fresh"), params={"as": "Table", "order": "newest"}).json()
    assert [r["cells"][0] for r in tbl["rows"]] == made[::-1]
    pods = platform_client.list("pods", "fresh", newest_first=True, page_size=2)
    assert [p["metadata"]["name"] for p in pods] == made[::-1]

    bad = http.get(PODS.format(ns="fresh"), params={"order": "oldest"})
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "order"
    assert "newest" in bad.json()["error"]["message"]
    name_token = http.get(PODS.format(ns="fresh"), params={"limit": "2"}).json()["metadata"]
    mixed = http.get(
        PODS.format(ns="fresh"),
        params={"limit": "2", "order": "newest", "continue": name_token["continue"]},
    )
    assert mixed.status_code == 400 and mixed.json()["error"]["field"] == "continue"


def test_list_as_table(http: httpx.Client) -> None:
    make_ns(http, "tbl")
    http.post(PODS.format(ns="tbl"), json=inert_pod("t1"))
    tbl = http.get(PODS.format(ns="tbl"), params={"as": "Table"}).json()
    assert tbl["kind"] == "Table"
    headers = [c["name"] for c in tbl["columnDefinitions"]]
    assert headers[0] == "NAME" and "STATUS" in headers and headers[-1] == "AGE"
    assert [r["cells"][0] for r in tbl["rows"]] == ["t1"]
    status = tbl["rows"][0]["cells"][headers.index("STATUS")]
    assert status == "Pending"

    # Across namespaces the table gains a NAMESPACE column.
    everywhere = http.get("/api/v1/pods", params={"as": "Table"}).json()
    assert everywhere["columnDefinitions"][0]["name"] == "NAMESPACE"
    assert ["tbl", "t1"] in [r["cells"][:2] for r in everywhere["rows"]]


def test_discovery_lists_the_kinds(http: httpx.Client) -> None:
    body = http.get("/apis").json()
    by_kind = {r["kind"]: r for r in body["resources"]}
    assert {"Pod", "Namespace", "ResourceQuota"} <= set(by_kind)
    assert by_kind["Pod"]["name"] == "pods"
    assert "po" in by_kind["Pod"]["shortNames"]
    assert by_kind["Namespace"]["namespaced"] is False
    assert "quota" in by_kind["ResourceQuota"]["shortNames"]


def test_healthz(http: httpx.Client) -> None:
    r = http.get("/healthz")
    assert r.status_code == 200
    assert r.text == "ok"


def test_metrics(http: httpx.Client) -> None:
    make_ns(http, "metrics")
    http.post(PODS.format(ns="metrics"), json=inert_pod("m"))
    http.get(PODS.format(ns="metrics"))
    text = http.get("/metrics").text
    assert "shipyard_reconcile_total{" in text
    assert 'shipyard_pods{phase="Pending"}' in text
    assert "shipyard_api_request_duration_seconds_bucket{" in text
    # API latency is labelled by route template, not by raw path (bounded cardinality).
    assert 'route="/api/{version}/namespaces/{namespace}/{plural}"' in text


def test_openapi_document(http: httpx.Client) -> None:
    doc = http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for p in (
        "/api/{version}/namespaces/{namespace}/{plural}",
        "/api/{version}/namespaces/{namespace}/{plural}/{name}",
        "/api/{version}/namespaces/{namespace}/{plural}/{name}/log",
        "/apis/{group}/{version}/namespaces/{namespace}/{plural}",
        "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}",
        "/apis/{group}/{version}/{plural}",
        "/apis",
    ):
        assert p in paths, p
    ns_item = paths["/api/{version}/namespaces/{namespace}/{plural}/{name}"]
    assert {"get", "put", "patch", "delete"} <= set(ns_item)
    ids = [op["operationId"] for item in paths.values() for op in item.values()]
    assert len(ids) == len(set(ids)), "duplicate operationIds in the OpenAPI document"


def test_create_answers_and_is_timed_like_every_route(http: httpx.Client) -> None:
    # Creates take a shorter path through the server than other requests; what a client
    # sees and what /metrics counts must not tell them apart.
    make_ns(http, "fast")
    path = PODS.format(ns="fast")
    assert http.post(path, json=inert_pod("one")).status_code == 201
    again = http.post(path, json=inert_pod("one"))
    assert again.status_code == 409 and again.json()["error"]["code"] == "AlreadyExists"
    bad = http.post(path, json={**inert_pod("two"), "spec": {"containers": "nope"}})
    assert bad.status_code == 422 and bad.json()["error"]["field"]
    assert http.post(path, content=b"{not json").status_code == 400
    unknown = http.post("/api/v1/namespaces/fast/widgets", json=inert_pod("three"))
    assert unknown.status_code == 404
    dry = http.post(path, params={"dryRun": "All"}, json=inert_pod("dry"))
    assert dry.status_code == 201 and http.get(path + "/dry").status_code == 404
    text = http.get("/metrics").text
    route = 'route="/api/{version}/namespaces/{namespace}/{plural}"'
    for code in ("201", "409", "422", "400", "404"):
        assert any(
            line.startswith("shipyard_api_request_duration_seconds_count{")
            and 'method="POST"' in line
            and route in line
            and f'status="{code}"' in line
            for line in text.splitlines()
        ), code
