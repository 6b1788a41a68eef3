"""Mounted apps marked ``bypass_middleware`` (the serving gateway) get their requests at the
server's ASGI entry, before FastAPI's middleware stack, with the scope a mount gives; other
mounts are served through FastAPI as before."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson

from shipyard.core.config import Settings
from shipyard.platform import Platform
from shipyard.server.app import create_app


class _Probe:
    """An ASGI app answering with the scope it was called with."""

    def __init__(self, bypass: bool) -> None:
        self.bypass_middleware = bypass

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = orjson.dumps({"path": scope["path"], "root_path": scope.get("root_path", "")})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def _timed_routes(platform: Platform) -> set[str]:
    routes = set()
    for metric in platform.metrics.api_seconds.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.value > 0:
                routes.add(sample.labels["route"])
    return routes


def test_bypass_mount_skips_the_middleware_with_the_mount_scope(tmp_path: Path) -> None:
    platform = Platform(Settings(data_dir=tmp_path))
    try:
        platform.mounts.append(("/direct", _Probe(bypass=True)))
        platform.mounts.append(("/mounted", _Probe(bypass=False)))
        app = create_app(platform)

        async def go() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                return [
                    await http.get("/direct/ns/name/v2/models/m/infer"),
                    await http.get("/mounted/x/y"),
                    await http.get("/directory"),
                    await http.get("/healthz"),
                ]

        direct, mounted, other, health = asyncio.run(go())
        assert direct.json() == {
            "path": "/direct/ns/name/v2/models/m/infer",
            "root_path": "/direct",
        }
        # The same scope shape a Starlette mount gives.
        assert mounted.json() == {"path": "/mounted/x/y", "root_path": "/mounted"}
        assert other.status_code == 404  # a prefix of a segment is not the mount
        assert health.status_code == 200
        timed = _timed_routes(platform)
        assert "/healthz" in timed
        assert not any(r.startswith("/direct") for r in timed)
    finally:
        platform.stop()
