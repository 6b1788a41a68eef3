"""Settings, from environment variables (``SHIPYARD_*``) or arguments: one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def default_data_dir() -> Path:
    return Path(os.environ.get("SHIPYARD_DATA_DIR") or Path.home() / ".shipyard")


@dataclass(frozen=True)
class Settings:
    """Everything configurable. Build with :func:`load` so env vars apply."""

    data_dir: Path = field(default_factory=default_data_dir)
    store_url: str | None = None  # None: SQLite under data_dir
    host: str = "127.0.0.1"
    port: int = 8080
    # Node capacity overrides (None: detect).
    cpu: float | None = None
    memory: int | None = None
    gpus: int | None = None
    # Restart backoff for crashed containers (seconds): base * 2**n, capped.
    restart_backoff_base: float = 1.0
    restart_backoff_cap: float = 60.0
    resync_period: float = 30.0
    event_retention: int = 200_000
    # Where Pods run: "local" (processes on this machine) or "kubernetes" (a cluster).
    runtime: str = "local"
    kube_namespace: str | None = None  # None: the control plane's own / kubeconfig's
    kubeconfig: str | None = None  # None: in-cluster, $KUBECONFIG or ~/.kube/config
    kube_image: str = "shipyard:latest"  # for containers that name no image
    kube_url: str | None = None  # SHIPYARD_URL as Pods on the cluster reach the API

    @property
    def resolved_store_url(self) -> str:
        if self.store_url:
            return self.store_url
        return f"sqlite:///{self.data_dir / 'shipyard.db'}"

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def load(**overrides: object) -> Settings:
    """Settings from ``SHIPYARD_*`` env vars, then explicit overrides (None means unset)."""
    env = os.environ
    s = Settings(
        store_url=env.get("SHIPYARD_STORE") or None,
        host=env.get("SHIPYARD_HOST", "127.0.0.1"),
        port=int(env.get("SHIPYARD_PORT", "8080")),
        cpu=float(env["SHIPYARD_CPU"]) if env.get("SHIPYARD_CPU") else None,
        memory=int(env["SHIPYARD_MEMORY"]) if env.get("SHIPYARD_MEMORY") else None,
        gpus=int(env["SHIPYARD_GPUS"]) if env.get("SHIPYARD_GPUS") else None,
        restart_backoff_base=_env_float("SHIPYARD_RESTART_BACKOFF", 1.0),
        restart_backoff_cap=_env_float("SHIPYARD_RESTART_BACKOFF_CAP", 60.0),
        resync_period=_env_float("SHIPYARD_RESYNC_PERIOD", 30.0),
        runtime=env.get("SHIPYARD_RUNTIME") or "local",
        kube_namespace=env.get("SHIPYARD_KUBE_NAMESPACE") or None,
        kubeconfig=env.get("SHIPYARD_KUBECONFIG") or None,
        kube_image=env.get("SHIPYARD_KUBE_IMAGE") or "shipyard:latest",
        kube_url=env.get("SHIPYARD_KUBE_URL") or None,
    )
    given = {k: v for k, v in overrides.items() if v is not None}
    if "data_dir" in given:
        given["data_dir"] = Path(str(given["data_dir"])).expanduser()
    return s.with_(**given)
