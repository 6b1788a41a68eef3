"""Controllers: reconcilers driven from watch events through a de-duplicating work queue.

A reconciler names the kind it owns and returns, from ``reconcile(namespace, name)``, either
``None`` (done) or a number of seconds after which it wants to look again. An exception
requeues the key with exponential backoff. Events of owned (child) kinds wake the owner
named by the child's controller ownerReference; ``maps`` lets a reconciler wake other keys.
Every object is reconciled at start (which is how a restarted control plane picks up where
it left off) and again every resync period.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from shipyard.core.metrics import Metrics
from shipyard.core.resource import KindRegistry
from shipyard.core.store import Event, Store

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
Mapper = Callable[[Event], Iterable[Key]]


class Reconciler(Protocol):
    """What a controller implements. ``kind`` is the store key of the primary kind."""

    kind: str
    owns: tuple[str, ...]
    maps: dict[str, Mapper]
    workers: int
    # Skip events of the own kind that changed only status (a controller that is the only
    # writer of its kind's status need not look again after its own write).
    ignore_own_status: bool

    def reconcile(self, namespace: str, name: str) -> float | None: ...


class WorkQueue:
    """client-go's work queue semantics: a key is queued at most once, never processed by
    two workers at once, and a key added while being processed is processed again after.
    A key waits for a delayed add once, at the earliest time asked (as client-go's delaying
    queue does): a reconcile that asks to look again in N seconds each time it runs does not
    pile up waits, and the reconcile that runs asks again for what it still needs."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[Key] = []
        self._dirty: set[Key] = set()
        self._processing: set[Key] = set()
        self._delayed: list[tuple[float, int, Key]] = []
        self._due: dict[Key, float] = {}  # the time each delayed key waits for
        self._seq = 0
        self._closed = False

    def add(self, key: Key) -> None:
        with self._cond:
            if key in self._dirty:
                return
            self._dirty.add(key)
            if key not in self._processing:
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key: Key, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            due = time.monotonic() + delay
            if key in self._due and self._due[key] <= due:
                return
            self._due[key] = due
            self._seq += 1
            heapq.heappush(self._delayed, (due, self._seq, key))
            self._cond.notify()

    def get(self) -> Key | None:
        """Block for the next key; None once closed."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    due, _, key = heapq.heappop(self._delayed)
                    if self._due.get(key) != due:
                        continue  # replaced by an earlier time for the same key
                    del self._due[key]
                    if key not in self._dirty:
                        self._dirty.add(key)
                        if key not in self._processing:
                            self._queue.append(key)
                if self._queue:
                    key = self._queue.pop(0)
                    self._processing.add(key)
                    self._dirty.discard(key)
                    return key
                timeout = self._delayed[0][0] - now if self._delayed else None
                self._cond.wait(timeout)

    def done(self, key: Key) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._due)


class _Runner:
    def __init__(self, rec: Reconciler, metrics: Metrics, backoff: tuple[float, float]) -> None:
        self.rec = rec
        self.queue = WorkQueue()
        self.metrics = metrics
        self.failures: dict[Key, int] = {}
        self.base, self.cap = backoff
        self.threads: list[threading.Thread] = []

    def run(self) -> None:
        kind = self.rec.kind
        while (key := self.queue.get()) is not None:
            start = time.perf_counter()
            result = "ok"
            try:
                after = self.rec.reconcile(*key)
                self.failures.pop(key, None)
                if after is not None:
                    self.queue.add_after(key, after)
            except Exception as exc:
                result = "error"
                n = self.failures.get(key, 0)
                self.failures[key] = n + 1
                delay = min(self.cap, self.base * 2**n)
                log.warning(
                    "reconcile %s %s/%s failed (retry in %.2fs): %s", kind, *key, delay, exc
                )
                log.debug("reconcile failure", exc_info=True)
                self.queue.add_after(key, delay)
            finally:
                self.queue.done(key)
                self.metrics.reconcile_total.labels(kind, result).inc()
                self.metrics.reconcile_seconds.labels(kind).observe(time.perf_counter() - start)


class Manager:
    """Runs reconcilers in worker threads, fed by the store's events."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        *,
        resync_period: float = 30.0,
        backoff: tuple[float, float] = (0.05, 30.0),
        registry: KindRegistry | None = None,
    ) -> None:
        self.store = store
        # With a registry, ownerReferences written in a kind's alias group (Katib's
        # kubeflow.org/v1beta1 Experiment for shipyard.dev's) wake its controller too.
        self.registry = registry
        self.metrics = metrics
        self.resync_period = resync_period
        self.backoff = backoff
        self._runners: list[_Runner] = []
        self._by_kind: dict[str, list[_Runner]] = {}
        self._owned: dict[str, list[_Runner]] = {}
        self._mapped: dict[str, list[tuple[_Runner, Mapper]]] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._stop = threading.Event()
        self._resync_thread: threading.Thread | None = None
        self._kind_names: dict[str, tuple[set[str], str]] = {}

    def add(self, rec: Reconciler, *, owner_kind: tuple[str, str] | None = None) -> None:
        """Register a reconciler. ``owner_kind`` is its kind's (group, Kind) for matching
        ownerReferences of children (defaults to the parts of ``rec.kind``)."""
        runner = _Runner(rec, self.metrics, self.backoff)
        self._runners.append(runner)
        self._by_kind.setdefault(rec.kind, []).append(runner)
        group, kind_name = owner_kind or rec.kind.rpartition("/")[::2]
        self._kind_names[rec.kind] = ({group}, kind_name)
        for child in getattr(rec, "owns", ()):
            self._owned.setdefault(child, []).append(runner)
        for kind, mapper in getattr(rec, "maps", {}).items():
            self._mapped.setdefault(kind, []).append((runner, mapper))

    def _on_event(self, ev: Event) -> None:
        key = (ev.namespace, ev.name)
        for runner in self._by_kind.get(ev.kind, ()):
            if ev.status_only and getattr(runner.rec, "ignore_own_status", False):
                continue
            runner.queue.add(key)
        owned = self._owned.get(ev.kind)
        if owned:
            for ref in ev.owner_refs:
                if not ref.get("controller"):
                    continue
                group = ref.get("apiVersion", "").rpartition("/")[0]
                for runner in owned:
                    want_groups, want_kind = self._kind_names[runner.rec.kind]
                    if ref.get("kind") == want_kind and (group in want_groups or "" in want_groups):
                        runner.queue.add((ev.namespace, ref["name"]))
        for runner, mapper in self._mapped.get(ev.kind, ()):
            try:
                for k in mapper(ev):
                    runner.queue.add(k)
            except Exception:
                log.exception("watch mapper for %s failed", runner.rec.kind)

    def enqueue(self, kind: str, namespace: str, name: str, after: float = 0.0) -> None:
        for runner in self._by_kind.get(kind, ()):
            runner.queue.add_after((namespace, name), after)

    def _enqueue_all(self) -> None:
        for kind, runners in self._by_kind.items():
            for obj in self.store.list(kind).items:
                key = (obj["metadata"].get("namespace") or "", obj["metadata"]["name"])
                for runner in runners:
                    runner.queue.add(key)

    def _add_alias_groups(self) -> None:
        if self.registry is None:
            return
        for kind, (groups, _) in self._kind_names.items():
            try:
                info = self.registry.by_key(kind)
            except KeyError:
                continue
            groups.update(g for g, _ in info.aliases)

    def start(self) -> None:
        self._add_alias_groups()
        for runner in self._runners:
            setup = getattr(runner.rec, "setup", None)
            if setup is not None:
                setup()
        self._unsubscribe = self.store.subscribe(self._on_event)
        self._enqueue_all()
        for runner in self._runners:
            for i in range(max(1, getattr(runner.rec, "workers", 2))):
                t = threading.Thread(
                    target=runner.run, name=f"reconcile-{runner.rec.kind}-{i}", daemon=True
                )
                t.start()
                runner.threads.append(t)
        self._resync_thread = threading.Thread(target=self._resync, name="resync", daemon=True)
        self._resync_thread.start()

    def _resync(self) -> None:
        while not self._stop.wait(self.resync_period):
            try:
                self._enqueue_all()
            except Exception:
                log.exception("resync failed")

    def stop(self) -> None:
        self._stop.set()
        if self._unsubscribe:
            self._unsubscribe()
        for runner in self._runners:
            runner.queue.close()
        for runner in self._runners:
            for t in runner.threads:
                t.join(timeout=5)

    def idle(self) -> bool:
        """True when no reconciler has queued work (for tests and benchmarks)."""
        return all(len(r.queue) == 0 for r in self._runners)


class Controller:
    """Convenience base: defaults for the optional parts of :class:`Reconciler`."""

    kind: str = ""
    owns: tuple[str, ...] = ()
    maps: dict[str, Mapper] = {}
    workers: int = 2
    ignore_own_status: bool = False

    def reconcile(self, namespace: str, name: str) -> float | None:  # pragma: no cover
        raise NotImplementedError
