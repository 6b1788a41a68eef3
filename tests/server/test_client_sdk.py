"""The Python client against a real embedded platform: apply/get/list/delete/watch/logs/wait,
multi-document YAML, all-or-nothing validation of files, and an unreachable server."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard import errors
from shipyard.client import Client, read_sources
from shipyard.server.serve import free_port


def pod(name: str, code: str = "pass", *, inert: bool = False, **meta: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "command": [sys.executable, "-u", "-c", code]}
    if inert:  # asks for more CPU than any machine has: stays Pending, never runs
        container["resources"] = {"requests": {"cpu": "10000"}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **meta},
        "spec": {"restartPolicy": "Never", "containers": [container]},
    }


@pytest.fixture(scope="module")
def c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    client = Client.embedded(Path(tmp_path_factory.mktemp("client")))
    try:
        yield client
    finally:
        client.close()


def names(objs: list[dict[str, Any]]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objs)


def test_apply_get_list_delete(c: Client) -> None:
    created = c.apply(pod("crud", inert=True, labels={"app": "crud"}))
    assert created["metadata"]["uid"]
    assert c.get("pod", "crud")["metadata"]["uid"] == created["metadata"]["uid"]
    assert c.get("po", "crud", "default")["kind"] == "Pod"
    assert "crud" in names(c.list("pods"))
    assert names(c.list("pods", selector="app=crud")) == ["crud"]
    assert names(c.list("pods", phase="Pending", selector="app=crud")) == ["crud"]

    again = c.apply(pod("crud", inert=True, labels={"app": "crud", "v": "2"}))
    assert again["metadata"]["uid"] == created["metadata"]["uid"]
    assert again["metadata"]["labels"]["v"] == "2"

    c.delete("pod", "crud", wait=True, timeout=30)
    with pytest.raises(errors.NotFound):
        c.get("pod", "crud")


def test_list_pages_through_everything(c: Client) -> None:
    c.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "many"}})
    for i in range(12):
        c.apply(pod(f"m-{i:02d}", inert=True), namespace="many")
    got = c.list("pods", "many", page_size=5)
    assert names(got) == [f"m-{i:02d}" for i in range(12)]
    everywhere = c.list("pods", all_namespaces=True)
    assert {o["metadata"]["namespace"] for o in everywhere} >= {"many"}


def test_wait_phase_jsonpath_condition_and_logs(c: Client) -> None:
    c.apply(pod("runs", "print('out 1'); print('out 2')"))
    done = c.wait("pod", "runs", phase="Succeeded,Failed", timeout=30)
    assert done is not None and done["status"]["phase"] == "Succeeded"
    assert c.wait("pod", "runs", jsonpath="{.status.phase}=Succeeded", timeout=5)
    exit_code = "{.status.containerStatuses[0].state.terminated.exitCode}=0"
    assert c.wait("pod", "runs", jsonpath=exit_code, timeout=5)
    assert c.wait("pod", "runs", condition="Initialized", timeout=5)
    assert c.wait("pod", "runs", condition="Ready=False", timeout=5)
    assert "".join(c.logs("runs")) == "out 1\nout 2\n"
    assert "".join(c.logs("runs", tail=1)) == "out 2\n"


def test_wait_for_delete(c: Client) -> None:
    c.apply(pod("goner", inert=True))
    waiter: list[Any] = []
    t = threading.Thread(
        target=lambda: waiter.append(c.wait("pod", "goner", delete=True, timeout=30))
    )
    t.start()
    c.delete("pod", "goner")
    t.join(35)
    assert waiter == [None]
    assert c.wait("pod", "never-existed", delete=True, timeout=1) is None


def test_wait_timeout_names_the_last_seen_state(c: Client) -> None:
    c.apply(pod("stuck", inert=True))
    with pytest.raises(TimeoutError) as info:
        c.wait("pod", "stuck", phase="Running", timeout=0.5)
    msg = str(info.value)
    assert "pod/stuck" in msg and "Running" in msg
    assert "phase=Pending" in msg
    with pytest.raises(TimeoutError) as info:
        c.wait("pod", "not-there", condition="Ready", timeout=0.3)
    assert "not found" in str(info.value)


def test_watch_yields_events(c: Client) -> None:
    c.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "watched"}})
    c.apply(pod("w1", inert=True), namespace="watched")
    events = c.watch("pods", "watched", timeout=10)
    first = next(events)
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "w1")
    c.apply(pod("w2", inert=True), namespace="watched")
    for ev in events:
        if ev["object"]["metadata"]["name"] == "w2":
            assert ev["type"] == "ADDED"
            break
    del events  # closes the stream


def test_apply_multi_document_yaml_text(c: Client) -> None:
    text = """
apiVersion: v1
kind: Namespace
metadata: {name: multi}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: q, namespace: multi}
spec: {hard: {pods: "10"}}
---
apiVersion: v1
kind: Pod
metadata: {name: mp, namespace: multi}
spec:
  containers: [{name: main, command: ["true"], resources: {requests: {cpu: "10000"}}}]
"""
    out = c.apply(text)
    assert [o["kind"] for o in out] == ["Namespace", "ResourceQuota", "Pod"]
    assert c.get("quota", "q", "multi")["spec"]["hard"] == {"pods": "10"}
    assert c.get("pod", "mp", "multi")["metadata"]["namespace"] == "multi"
    # Applying the same text again changes nothing.
    results = c.apply_documents([(d, "again") for d in _docs(text)])
    assert {r.action for r in results} == {"unchanged"}


def _docs(text: str) -> list[dict[str, Any]]:
    from shipyard.core.service import parse_documents

    return parse_documents(text)


def test_apply_file_is_all_or_nothing_on_validation(c: Client, tmp_path: Path) -> None:
    f = tmp_path / "three.yaml"
    f.write_text(
        """apiVersion: v1
kind: Pod
metadata: {name: aon-1}
spec: {containers: [{name: main, command: ["true"]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: aon-2}
spec: {containers: [{name: main, command: ["true"]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: aon-3}
spec: {containers: [{name: main, command: ["true"], bogus: 1}]}
"""
    )
    with pytest.raises(errors.Invalid) as info:
        c.apply(f)
    msg = info.value.message
    assert str(f) in msg and "document 3" in msg
    assert "spec.containers[0].bogus" in msg
    for name in ("aon-1", "aon-2", "aon-3"):
        with pytest.raises(errors.NotFound):
            c.get("pod", name)


def test_namespace_and_its_objects_in_one_file(c: Client, tmp_path: Path) -> None:
    f = tmp_path / "team.yaml"
    f.write_text(
        """apiVersion: v1
kind: Pod
metadata: {name: member, namespace: team-z}
spec: {containers: [{name: main, command: ["true"], resources: {requests: {cpu: "10000"}}}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-z}
"""
    )
    results = c.apply_documents(read_sources([f]))
    assert [(r.ref, r.action) for r in results] == [
        ("namespace/team-z", "created"),
        ("pod/member", "created"),
    ]
    got = c.get("pod", "member", "team-z")
    assert got["metadata"]["annotations"]["shipyard.dev/source-dir"] == str(tmp_path.resolve())


def test_invalid_object_in_a_new_namespace_writes_nothing(c: Client, tmp_path: Path) -> None:
    """The namespace is only planned, yet its objects are still validated first."""
    f = tmp_path / "team-bad.yaml"
    f.write_text(
        """apiVersion: v1
kind: Namespace
metadata: {name: team-bad}
---
apiVersion: v1
kind: Pod
metadata: {name: broken, namespace: team-bad}
spec: {containers: [{name: main, command: ["true"], nope: true}]}
"""
    )
    with pytest.raises(errors.Invalid) as info:
        c.apply_documents(read_sources([f]))
    assert "document 2" in info.value.message
    assert info.value.field == "spec.containers[0].nope"
    with pytest.raises(errors.NotFound):
        c.get("namespace", "team-bad")


def test_object_in_a_missing_namespace_writes_nothing(c: Client) -> None:
    docs = [
        (pod("fine", inert=True), "doc 1"),
        (pod("lost", inert=True, namespace="nowhere"), "doc 2"),
    ]
    with pytest.raises(errors.NotFound) as info:
        c.apply_documents(docs)
    assert "doc 2" in info.value.message and "nowhere" in info.value.message
    with pytest.raises(errors.NotFound):
        c.get("pod", "fine")


def test_unknown_kind_names_known_kinds(c: Client) -> None:
    with pytest.raises(errors.NotFound) as info:
        c.apply({"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}})
    assert "Widget" in info.value.message and "Pod" in info.value.message
    with pytest.raises(errors.NotFound) as info:
        c.list("widgets")
    assert "pods" in info.value.message


def test_closed_port_is_unavailable_with_a_helpful_message() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url) as dead:
        with pytest.raises(errors.Unavailable) as info:
            dead.get("pod", "x")
        assert url in info.value.message
        assert "shipyard up" in info.value.message and "SHIPYARD_URL" in info.value.message
        with pytest.raises(errors.Unavailable):
            dead.apply(pod("x"))
