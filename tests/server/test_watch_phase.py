"""A watch with a phase filter sends only the events of objects in those phases, and wait()
for a phase still sees the object reach it."""

from __future__ import annotations

import threading
import time

import httpx
import orjson
import pytest

from shipyard.client import Client

PATH = "/api/v1/namespaces/default/configmaps"


def _configmap(client: Client, name: str) -> None:
    client.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}}
    )


def _phase(client: Client, name: str, phase: str) -> None:
    client.platform.store.update_status("ConfigMap", "default", name, {"phase": phase})


def _events(client: Client, **params: str) -> list[dict[str, object]]:
    with httpx.Client(base_url=client.url, timeout=30) as http:
        r = http.get(PATH, params={"watch": "true", "timeoutSeconds": "0.5", **params})
    assert r.status_code == 200
    return [orjson.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]


@pytest.mark.timeout(60)
def test_watch_replays_only_events_in_the_phases(client: Client) -> None:
    _configmap(client, "phased")
    rv = client.get("configmap", "phased")["metadata"]["resourceVersion"]
    for phase in ("Running", "Running", "Done"):
        _phase(client, "phased", phase)
    got = _events(client, resourceVersion=rv, phase="Done,Failed")
    assert [(e["type"], e["object"]["status"]["phase"]) for e in got] == [("MODIFIED", "Done")]
    everything = _events(client, resourceVersion=rv)
    assert len(everything) == 3
    by_field = _events(client, resourceVersion=rv, fieldSelector="status.phase=Running")
    assert [e["object"]["status"]["phase"] for e in by_field] == ["Running", "Running"]


@pytest.mark.timeout(60)
def test_watch_without_resource_version_lists_only_objects_in_the_phases(client: Client) -> None:
    _configmap(client, "first")
    _configmap(client, "second")
    _phase(client, "first", "Done")
    _phase(client, "second", "Running")
    got = _events(client, phase="Done")
    assert [e["object"]["metadata"]["name"] for e in got] == ["first"]


@pytest.mark.timeout(60)
def test_wait_for_a_phase_sees_it_through_a_filtered_watch(client: Client) -> None:
    _configmap(client, "slow")
    _phase(client, "slow", "Running")

    def later() -> None:
        for _ in range(5):
            time.sleep(0.05)
            _phase(client, "slow", "Running")
        _phase(client, "slow", "Done")

    t = threading.Thread(target=later)
    t.start()
    obj = client.wait("configmap", "slow", phase="Done,Failed", timeout=30)
    t.join()
    assert obj is not None and obj["status"]["phase"] == "Done"


@pytest.mark.timeout(60)
def test_wait_for_a_phase_that_never_comes_names_the_current_one(client: Client) -> None:
    _configmap(client, "stuck")
    _phase(client, "stuck", "Running")
    threading.Timer(0.2, _phase, (client, "stuck", "Waiting")).start()
    with pytest.raises(TimeoutError) as exc:
        client.wait("configmap", "stuck", phase="Done", timeout=1.0)
    assert "phase=Waiting" in str(exc.value)
