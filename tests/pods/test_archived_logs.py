"""Logs outlive their Pods: after a delete, the log endpoint serves the newest log of that
Pod name (Kubeflow's training operator loses them: kubeflow/training-operator#877)."""

from __future__ import annotations

import pytest

from shipyard import errors
from shipyard.client import Client


def _pod(name: str, text: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "main", "command": ["sh", "-c", f"echo {text}"]},
                {"name": "side", "command": ["sh", "-c", "echo side-car"]},
            ],
        },
    }


def test_logs_of_a_deleted_pod_are_still_served(client: Client) -> None:
    client.apply(_pod("gone", "first-life"))
    client.wait("pod", "gone", phase="Succeeded", timeout=30)
    client.delete("pod", "gone", wait=True, timeout=30)
    with pytest.raises(errors.NotFound):
        client.get("pod", "gone")
    assert "".join(client.logs("gone", container="main")) == "first-life\n"
    assert "".join(client.logs("gone", container="side")) == "side-car\n"


def test_the_newest_pod_of_a_name_wins(client: Client) -> None:
    for text in ("old", "new"):
        client.apply(_pod("again", text))
        client.wait("pod", "again", phase="Succeeded", timeout=30)
        client.delete("pod", "again", wait=True, timeout=30)
    assert "".join(client.logs("again", container="main")) == "new\n"


def test_a_pod_that_never_existed_is_still_not_found(client: Client) -> None:
    with pytest.raises(errors.NotFound):
        "".join(client.logs("never-was"))
