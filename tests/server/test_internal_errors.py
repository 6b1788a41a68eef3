"""An unexpected error is a JSON 500 and the connection stays usable."""

from __future__ import annotations

import httpx

from shipyard.client import Client


def test_unexpected_error_is_json_500_and_keep_alive_survives(client: Client) -> None:
    def explode(req: object) -> None:
        obj = getattr(req, "obj", {})
        if obj.get("metadata", {}).get("name") == "boom":
            raise RuntimeError("simulated bug")

    client.platform.service.admission.append(explode)
    pod = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "boom"},
        "data": {"a": "b"},
    }
    with httpx.Client(base_url=client.url) as http:
        r = http.post("/api/v1/namespaces/default/configmaps", json=pod)
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "InternalError"
        assert "simulated bug" in r.json()["error"]["message"]
        assert "Traceback" not in r.text
        again = http.get("/healthz")
        assert again.status_code == 200
