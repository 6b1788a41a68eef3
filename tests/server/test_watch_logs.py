"""Watches (server-sent events) and Pod logs over HTTP, against a real embedded platform."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard import errors
from shipyard.client import Client

Event = dict[str, Any]


def pod(
    name: str, code: str = "pass", labels: dict[str, str] | None = None, *, inert: bool = False
) -> dict[str, Any]:
    resources = {"requests": {"cpu": "10000"}} if inert else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "command": [sys.executable, "-u", "-c", code],
                    "resources": resources,
                }
            ],
        },
    }


def ns(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


@pytest.fixture(scope="module")
def platform_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    c = Client.embedded(Path(tmp_path_factory.mktemp("watch")))
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def http(platform_client: Client) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform_client.url, timeout=30) as h:
        yield h


def sse(
    http: httpx.Client,
    path: str,
    params: dict[str, str],
    until: Callable[[list[Event]], bool],
    *,
    wait: float = 15.0,
    on_open: Callable[[], None] | None = None,
) -> list[Event]:
    """Read watch events from ``path`` until ``until(events)`` holds. A stream that falls
    silent for ``wait`` seconds first fails the test (ReadTimeout), never hangs it."""
    events: list[Event] = []
    timeout = httpx.Timeout(10.0, read=wait)
    with http.stream("GET", path, params={"watch": "true", **params}, timeout=timeout) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        if on_open is not None:
            on_open()
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if until(events):
                    break
    return events


def seen(events: list[Event], etype: str, name: str) -> bool:
    return any(e["type"] == etype and e["object"]["metadata"]["name"] == name for e in events)


def test_watch_from_resource_version_replays_in_order(http: httpx.Client) -> None:
    http.post("/api/v1/namespaces", json=ns("w-replay"))
    base = "/api/v1/namespaces/w-replay/pods"
    start = http.get(base).json()["metadata"]["resourceVersion"]
    http.post(base, json=pod("a", inert=True))
    http.post(base, json=pod("b", inert=True))
    http.patch(
        base + "/a",
        json={"metadata": {"labels": {"touched": "yes"}}},
        headers={"content-type": "application/merge-patch+json"},
    )
    http.delete(base + "/b")

    events = sse(http, base, {"resourceVersion": start}, lambda ev: seen(ev, "DELETED", "b"))
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs), "events out of order or repeated"
    assert all(rv > int(start) for rv in rvs)
    names = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    assert names.index(("ADDED", "a")) < names.index(("ADDED", "b"))
    first_of = {n: t for t, n in reversed(names)}
    assert first_of == {"a": "ADDED", "b": "ADDED"}
    assert any(
        e["type"] == "MODIFIED" and e["object"]["metadata"].get("labels", {}).get("touched")
        for e in events
    )
    assert names[-1] == ("DELETED", "b")


def test_watch_without_resource_version_starts_with_existing(http: httpx.Client) -> None:
    http.post("/api/v1/namespaces", json=ns("w-fresh"))
    base = "/api/v1/namespaces/w-fresh/pods"
    for name in ("x1", "x2"):
        http.post(base, json=pod(name, inert=True))

    def create_later() -> None:
        http.post(base, json=pod("x3", inert=True))

    events = sse(http, base, {}, lambda ev: seen(ev, "ADDED", "x3"), on_open=create_later)
    head = [(e["type"], e["object"]["metadata"]["name"]) for e in events[:2]]
    assert sorted(head) == [("ADDED", "x1"), ("ADDED", "x2")]
    assert events[-1]["type"] == "ADDED"
    # Nothing from other namespaces.
    assert {e["object"]["metadata"]["namespace"] for e in events} == {"w-fresh"}


def test_a_burst_of_live_changes_arrives_whole_and_in_order(
    http: httpx.Client, platform_client: Client
) -> None:
    """Changes that arrive together go out in one write: none is lost, split or reordered."""
    http.post("/api/v1/namespaces", json=ns("w-burst"))
    base = "/api/v1/namespaces/w-burst/configmaps"
    names = [f"cm-{i:02d}" for i in range(40)]

    def burst() -> None:
        def create_all() -> None:
            with httpx.Client(base_url=platform_client.url, timeout=30) as h:
                for n in names:
                    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}}
                    assert h.post(base, json=body).status_code == 201

        threading.Thread(target=create_all, daemon=True).start()

    events = sse(http, base, {}, lambda ev: seen(ev, "ADDED", names[-1]), on_open=burst)
    assert [e["object"]["metadata"]["name"] for e in events] == names
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs)


def test_watch_label_selector_filters(http: httpx.Client) -> None:
    http.post("/api/v1/namespaces", json=ns("w-sel"))
    base = "/api/v1/namespaces/w-sel/pods"
    start = http.get(base).json()["metadata"]["resourceVersion"]
    http.post(base, json=pod("other", labels={"app": "other"}, inert=True))
    http.post(base, json=pod("mine", labels={"app": "mine"}, inert=True))

    events = sse(
        http,
        base,
        {"resourceVersion": start, "labelSelector": "app=mine"},
        lambda ev: seen(ev, "ADDED", "mine"),
    )
    assert {e["object"]["metadata"]["name"] for e in events} == {"mine"}


def test_watch_too_old_resource_version_is_410(tmp_path: Path) -> None:
    with Client.embedded(tmp_path / "sy", event_retention=3) as c:
        for i in range(6):
            c.apply(pod(f"old-{i}", inert=True))
        c.platform.store.compact()
        with httpx.Client(base_url=c.url, timeout=30) as http:
            events = sse(
                http,
                "/api/v1/namespaces/default/pods",
                {"resourceVersion": "1"},
                lambda ev: bool(ev),
            )
        assert events[0]["type"] == "ERROR"
        assert events[0]["object"]["code"] == 410
        assert "too old" in events[0]["object"]["message"]
        with pytest.raises(errors.Gone):
            list(c.watch("pods", resource_version=1, timeout=5))


def test_watch_bad_resource_version_is_400(http: httpx.Client) -> None:
    r = http.get(
        "/api/v1/namespaces/default/pods", params={"watch": "true", "resourceVersion": "x"}
    )
    assert r.status_code == 400
    assert r.json()["error"]["field"] == "resourceVersion"


def test_pod_log_plain(platform_client: Client, http: httpx.Client) -> None:
    platform_client.apply(pod("log-plain", "print('line one'); print('line two')"))
    platform_client.wait("pod", "log-plain", phase="Succeeded", timeout=30)
    r = http.get("/api/v1/namespaces/default/pods/log-plain/log")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == "line one\nline two\n"
    tail = http.get("/api/v1/namespaces/default/pods/log-plain/log", params={"tailLines": "1"})
    assert tail.text == "line two\n"


def test_pod_log_unknown_container_is_400_naming_the_containers(
    platform_client: Client, http: httpx.Client
) -> None:
    platform_client.apply(pod("log-cont", inert=True))
    r = http.get("/api/v1/namespaces/default/pods/log-cont/log", params={"container": "nope"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["field"] == "container"
    assert "'nope'" in err["message"] and "main" in err["message"]
    r = http.get("/api/v1/namespaces/default/pods/log-cont/log", params={"tailLines": "many"})
    assert r.status_code == 400
    assert r.json()["error"]["field"] == "tailLines"


def test_pod_log_follow_streams_until_the_pod_ends(
    platform_client: Client, http: httpx.Client, tmp_path: Path
) -> None:
    """The Pod prints nothing until the test lets it go; meanwhile the server keeps
    answering other requests, and the followed stream ends when the Pod does."""
    gate = tmp_path / "go"
    code = (
        "import os, time\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.02)\n"
        "print('released'); print('bye')\n"
    )
    platform_client.apply(pod("log-follow", code))
    platform_client.wait("pod", "log-follow", phase="Running", timeout=30)
    got: list[str] = []
    done = threading.Event()

    def follow() -> None:
        try:
            got.extend(platform_client.logs("log-follow", follow=True))
        finally:
            done.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    # While the followed Pod is silent, the API still answers (the stream must not hold
    # the server's event loop).
    assert not done.wait(0.3)
    assert http.get("/healthz", timeout=5).text == "ok"
    assert platform_client.get("pod", "log-follow")["status"]["phase"] == "Running"
    gate.touch()
    assert done.wait(30), "the followed log did not end with the Pod"
    assert "".join(got) == "released\nbye\n"


def test_client_logs_follow_of_finished_pod(platform_client: Client) -> None:
    platform_client.apply(pod("log-done", "print('only')"))
    platform_client.wait("pod", "log-done", phase="Succeeded", timeout=30)
    assert "".join(platform_client.logs("log-done", follow=True)) == "only\n"
