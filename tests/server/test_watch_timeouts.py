"""Watches and waits end on time even while heartbeats keep the stream busy."""

from __future__ import annotations

import httpx
import pytest

from shipyard.client import Client
from shipyard.server import watch as watch_module


@pytest.fixture
def fast_heartbeats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch_module, "HEARTBEAT", 0.1)


@pytest.mark.timeout(60)
def test_wait_for_a_condition_that_never_comes_times_out(
    client: Client, fast_heartbeats: None
) -> None:
    client.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "still"}, "data": {"a": "b"}}
    )
    with pytest.raises(TimeoutError) as exc:
        client.wait("configmap", "still", jsonpath="{.data.a}=never", timeout=1.0)
    assert "configmap/still" in str(exc.value)


@pytest.mark.timeout(60)
def test_server_ends_a_watch_after_timeout_seconds(client: Client, fast_heartbeats: None) -> None:
    with httpx.Client(base_url=client.url, timeout=30) as http:
        r = http.get(
            "/api/v1/namespaces/default/configmaps",
            params={"watch": "true", "timeoutSeconds": "0.5"},
        )
    assert r.status_code == 200
    assert r.text.count("data: ") == 0


def test_bad_timeout_seconds_is_a_400(client: Client) -> None:
    with httpx.Client(base_url=client.url) as http:
        r = http.get(
            "/api/v1/namespaces/default/configmaps",
            params={"watch": "true", "timeoutSeconds": "soon"},
        )
    assert r.status_code == 400
    assert r.json()["error"]["field"] == "timeoutSeconds"
