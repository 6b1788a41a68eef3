"""The platform's server freezes what exists at start-up out of the cyclic collector's way
(full collections over it stalled requests in flight)."""

from __future__ import annotations

import gc

from shipyard.client import Client


def test_server_start_freezes_long_lived_objects(client: Client) -> None:
    assert client.get("namespace", "default")["metadata"]["name"] == "default"
    assert gc.get_freeze_count() > 0
