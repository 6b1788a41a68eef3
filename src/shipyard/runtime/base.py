"""The Runtime protocol: what a place that runs Pods must do.

A runtime plays the kubelet's part for the Pods the controller hands it: it starts their
containers, restarts them per ``restartPolicy``, enforces deadlines and limits it can, and
reports each Pod's status in Kubernetes' own ``PodStatus`` shape. The Pod controller writes
that status to the store; it never looks inside a runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

Obj = dict[str, Any]

# Called by a runtime whenever a Pod's status may have changed: (namespace, name).
OnChange = Callable[[str, str], None]


@dataclass(frozen=True)
class Assignment:
    """What the scheduler gave a Pod: GPU ids (for CUDA_VISIBLE_DEVICES) and the node."""

    node: str = "local"
    gpus: tuple[str, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict)


class Runtime(Protocol):
    name: str

    def set_on_change(self, callback: OnChange) -> None:
        """Register the callback for status changes (the controller's enqueue). Changes the
        caller made itself (``start``) are not reported: it reads ``status`` next."""

    def start(self, pod: Obj, assignment: Assignment) -> None:
        """Start a Pod (idempotent: a Pod already known is left alone)."""

    def adopt(self, pod: Obj, extra_env: dict[str, str] | None = None) -> bool:
        """Take over a Pod started by an earlier control plane from its stored status.
        Returns False when the runtime knows nothing of it (the caller then starts it).
        ``extra_env`` is what ConfigMaps/Secrets resolve to, for containers it restarts."""

    def knows(self, pod: Obj) -> bool:
        """Whether this runtime instance is managing the Pod."""

    def status(self, pod: Obj) -> Obj | None:
        """The Pod's current status (Kubernetes PodStatus shape), None if unknown."""

    def stop(self, pod: Obj, grace_seconds: float | None = None) -> bool:
        """Begin stopping a Pod; True once nothing of it runs any more."""

    def forget(self, pod: Obj) -> None:
        """Drop what the runtime keeps about a stopped Pod."""

    def logs(
        self,
        pod: Obj,
        container: str | None = None,
        *,
        follow: bool = False,
        tail: int | None = None,
    ) -> Iterator[bytes]:
        """The container's log; with ``follow``, until the Pod stops running."""

    def endpoint(self, pod: Obj, port: int) -> tuple[str, int]:
        """Where a container port of the Pod is reached from the control plane."""

    def shutdown(self) -> None:
        """Stop every Pod this runtime runs (clean platform stop)."""


def container_names(pod: Obj) -> list[str]:
    spec = pod.get("spec") or {}
    return [c["name"] for c in spec.get("containers") or []]


TERMINAL = ("Succeeded", "Failed")
