"""The one place that wires the platform: store, kinds, controllers, scheduler, runtime.

Each component folder exposes ``register(platform)``, which adds its kinds to the registry,
its admission hooks to the service and its controllers to the manager. ``Platform`` is what
``shipyard up`` serves over HTTP and what ``Client.embedded`` drives in-process.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from shipyard.core.artifacts import ArtifactStore, default_root
from shipyard.core.config import Settings, load
from shipyard.core.controller import Manager
from shipyard.core.metrics import Metrics
from shipyard.core.resource import KindRegistry
from shipyard.core.scheduler import Scheduler, detect_capacity
from shipyard.core.service import Service
from shipyard.core.store import Store
from shipyard.errors import AlreadyExists

log = logging.getLogger(__name__)


def _components() -> list[Callable[[Platform], None]]:
    from shipyard import pipelines, pods, registry, serving, tenancy, tracking, training, tuning

    return [
        tenancy.register,
        pods.register,
        training.register,
        serving.register,
        tuning.register,
        pipelines.register,
        registry.register,
        tracking.register,
    ]


class Platform:
    def __init__(self, settings: Settings | None = None, runtime: Any = None) -> None:
        self.settings = settings or load()
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(s.resolved_store_url, event_retention=s.event_retention)
        self.registry = KindRegistry()
        self.service = Service(self.store, self.registry)
        self.metrics = Metrics()
        self.manager = Manager(
            self.store, self.metrics, resync_period=s.resync_period, registry=self.registry
        )
        capacity = detect_capacity(s.cpu, s.memory, s.gpus)
        self.scheduler = Scheduler(capacity)
        if runtime is None and s.runtime == "kubernetes":
            from shipyard.runtime.kubernetes import from_settings

            runtime = from_settings(s)
        elif runtime is None and s.runtime != "local":
            from shipyard.errors import BadRequest

            raise BadRequest(f"unknown runtime {s.runtime!r}: choose local or kubernetes")
        if runtime is None:
            from shipyard.runtime.local import LocalRuntime

            runtime = LocalRuntime(
                s.data_dir,
                backoff_base=s.restart_backoff_base,
                backoff_cap=s.restart_backoff_cap,
                node_has_gpus=bool(capacity.gpus),
            )
        self.runtime = runtime
        # Content-addressed artifacts: $SHIPYARD_ARTIFACTS (s3://... via fsspec) or
        # <data_dir>/artifacts; every component uses this one.
        self.artifacts = ArtifactStore(default_root(s.data_dir))
        self.url: str | None = None
        # (path prefix, ASGI app) pairs a component serves on the platform's port (the
        # serving gateway, metric push endpoints, the UI); the server mounts them.
        self.mounts: list[tuple[str, Any]] = []
        for register in _components():
            register(self)
        self._started = False

    def start(self) -> Platform:
        if self._started:
            return self
        for ns in ("default",):
            with contextlib.suppress(AlreadyExists):
                self.service.create(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                )
        self.manager.start()
        self._started = True
        return self

    def stop(self) -> None:
        """Stop controllers, then every Pod this platform runs, then the store."""
        if self._started:
            self.manager.stop()
        self.runtime.shutdown()
        self.store.close()
        self._started = False

    def kill(self) -> None:
        """Stop controllers and the store but leave Pods running (as a crash would)."""
        if self._started:
            self.manager.stop()
        self.store.close()
        self._started = False

    def __enter__(self) -> Platform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
