"""ConfigMaps and Secrets reach Pods through env valueFrom and envFrom."""

from __future__ import annotations

import base64

import pytest

from shipyard import errors
from shipyard.client import Client


def _pod(name: str, env: list[dict], env_from: list[dict] | None = None) -> dict:
    container = {
        "name": "main",
        "command": ["sh", "-c", "echo A=$A B=$B CFG_X=$CFG_X"],
        "env": env,
    }
    if env_from:
        container["envFrom"] = env_from
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [container]},
    }


def test_env_from_configmap_and_secret(client: Client) -> None:
    client.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg"},
            "data": {"a": "from-configmap", "X": "1"},
        }
    )
    client.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "data": {"b": base64.b64encode(b"s3cret").decode()},
        }
    )
    client.apply(
        _pod(
            "reader",
            [
                {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "a"}}},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "b"}}},
            ],
            [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
        )
    )
    client.wait("pod", "reader", phase="Succeeded,Failed", timeout=20)
    assert "".join(client.logs("reader")).strip() == "A=from-configmap B=s3cret CFG_X=1"


def test_missing_reference_waits_then_starts_when_created(client: Client) -> None:
    client.apply(
        _pod(
            "waiter",
            [
                {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "a"}}},
            ],
        )
    )
    pod = client.wait(
        "pod", "waiter", jsonpath="{.status.reason}=CreateContainerConfigError", timeout=20
    )
    assert pod is not None and "configmap 'later' not found" in pod["status"]["message"]
    client.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "later"},
            "data": {"a": "now"},
        }
    )
    client.wait("pod", "waiter", phase="Succeeded", timeout=20)
    assert "A=now" in "".join(client.logs("waiter"))


def test_optional_reference_may_be_missing_and_leaves_the_variable_unset(client: Client) -> None:
    pod = _pod(
        "optional",
        [
            {
                "name": "A",
                "valueFrom": {"secretKeyRef": {"name": "nope", "key": "a", "optional": True}},
            },
        ],
    )
    pod["spec"]["containers"][0]["command"] = ["sh", "-c", "echo A=${A-unset}"]
    client.apply(pod)
    client.wait("pod", "optional", phase="Succeeded", timeout=20)
    assert "".join(client.logs("optional")).strip() == "A=unset"  # as the kubelet leaves it


def test_secret_data_must_be_base64(client: Client) -> None:
    with pytest.raises(errors.Invalid) as exc:
        client.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "bad"},
                "data": {"k": "not base64!"},
            }
        )
    assert exc.value.field == "data.k"
