"""The controller machinery: the work queue's client-go semantics and the manager driving
reconcilers from a real SQLite store's events (start-up sweep, owned children, mappers,
requeue-after, exponential backoff after exceptions)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.core.controller import Controller, Manager, WorkQueue
from shipyard.core.metrics import Metrics
from shipyard.core.resource import KindInfo, KindRegistry
from shipyard.core.store import Event, Store
from waiting import wait_until

Key = tuple[str, str]


def get_in_thread(q: WorkQueue) -> tuple[threading.Thread, list[Key | None]]:
    got: list[Key | None] = []
    t = threading.Thread(target=lambda: got.append(q.get()), daemon=True)
    t.start()
    return t, got


# -- WorkQueue ----------------------------------------------------------------------------


def test_queue_deduplicates_keys_waiting_to_be_processed() -> None:
    q = WorkQueue()
    for _ in range(3):
        q.add(("ns", "a"))
    q.add(("ns", "b"))
    assert len(q) == 2
    assert q.get() == ("ns", "a")
    assert q.get() == ("ns", "b")
    assert len(q) == 0


def test_key_added_during_processing_is_processed_again_after_done() -> None:
    q = WorkQueue()
    q.add(("ns", "a"))
    assert q.get() == ("ns", "a")
    q.add(("ns", "a"))  # while a worker holds it
    q.add(("ns", "a"))
    t, got = get_in_thread(q)
    t.join(0.2)
    assert got == [], "a key must never be handed to two workers at once"
    q.done(("ns", "a"))
    t.join(5)
    assert got == [("ns", "a")]
    q.done(("ns", "a"))
    assert len(q) == 0  # the two adds while processing made one more round, not two


def test_add_after_delivers_later_and_does_not_overtake() -> None:
    q = WorkQueue()
    q.add_after(("ns", "later"), 0.3)
    q.add(("ns", "now"))
    assert q.get() == ("ns", "now")
    assert q.get() == ("ns", "later")  # blocks until due


def test_add_after_of_a_queued_key_is_deduplicated() -> None:
    q = WorkQueue()
    q.add(("ns", "a"))
    q.add_after(("ns", "a"), 0.01)
    assert q.get() == ("ns", "a")
    q.done(("ns", "a"))
    assert q.get() == ("ns", "a")  # the delayed add still comes, once
    q.done(("ns", "a"))
    t, got = get_in_thread(q)
    t.join(0.2)
    assert got == []
    q.close()
    t.join(5)
    assert got == [None]


def test_a_key_waits_once_at_its_earliest_time() -> None:
    # Controllers that ask "look again in N s" at every reconcile must not pile up waits.
    q = WorkQueue()
    for _ in range(50):
        q.add_after(("ns", "a"), 5.0)
    q.add_after(("ns", "a"), 0.05)  # earlier: replaces the wait
    q.add_after(("ns", "a"), 9.0)  # later: changes nothing
    assert len(q) == 1
    assert q.get() == ("ns", "a")
    q.done(("ns", "a"))
    assert len(q) == 0
    t, got = get_in_thread(q)
    t.join(0.3)
    assert got == [], "the replaced waits must not come back"
    q.close()
    t.join(5)


def test_close_wakes_blocked_workers() -> None:
    q = WorkQueue()
    t, got = get_in_thread(q)
    q.close()
    t.join(5)
    assert got == [None]


# -- Manager --------------------------------------------------------------------------------


class Recorder(Controller):
    """A reconciler that records calls and does what ``plan`` says for each call."""

    kind = "Thing"
    workers = 2

    def __init__(self, plan: Callable[[Key, int], float | None] | None = None) -> None:
        self.calls: list[Key] = []
        self.plan = plan or (lambda key, n: None)
        self.lock = threading.Lock()

    def count(self, key: Key) -> int:
        with self.lock:
            return self.calls.count(key)

    def reconcile(self, namespace: str, name: str) -> float | None:
        key = (namespace, name)
        with self.lock:
            self.calls.append(key)
            n = self.calls.count(key)
        return self.plan(key, n)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def manager(store: Store) -> Iterator[Manager]:
    m = Manager(store, Metrics(), resync_period=3600, backoff=(0.01, 0.04))
    try:
        yield m
    finally:
        m.stop()


def thing(name: str, ns: str = "default", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "shipyard.dev/v1",
        "kind": "Thing",
        "metadata": {"name": name, "namespace": ns, **meta},
        "spec": {},
    }


def record_delays(manager: Manager) -> list[float]:
    """Wrap the (only) runner's add_after to see the delays the manager asks for."""
    delays: list[float] = []
    queue = manager._runners[0].queue
    original = queue.add_after

    def add_after(key: Key, delay: float) -> None:
        delays.append(delay)
        original(key, delay)

    queue.add_after = add_after  # type: ignore[method-assign]
    return delays


def test_existing_objects_are_reconciled_at_start(store: Store, manager: Manager) -> None:
    store.create("Thing", thing("old"))
    rec = Recorder()
    manager.add(rec)
    manager.start()
    wait_until(lambda: rec.count(("default", "old")) >= 1, what="the start-up sweep")


def test_store_events_drive_reconciles(store: Store, manager: Manager) -> None:
    rec = Recorder()
    manager.add(rec)
    manager.start()
    obj = store.create("Thing", thing("a"))
    wait_until(lambda: rec.count(("default", "a")) >= 1, what="ADDED")
    n = rec.count(("default", "a"))
    store.update_status("Thing", "default", "a", {"phase": "x"})
    wait_until(lambda: rec.count(("default", "a")) > n, what="MODIFIED")
    assert obj["metadata"]["uid"]


def test_requeue_after_looks_again(store: Store, manager: Manager) -> None:
    rec = Recorder(lambda key, n: 0.05 if n == 1 else None)
    manager.add(rec)
    delays = record_delays(manager)
    manager.start()
    store.create("Thing", thing("r"))
    wait_until(lambda: rec.count(("default", "r")) >= 2, what="the requeue")
    assert 0.05 in delays


def test_exceptions_retry_with_exponential_backoff_then_reset(
    store: Store, manager: Manager
) -> None:
    def plan(key: Key, n: int) -> float | None:
        if n <= 4:
            raise RuntimeError(f"boom {n}")
        if n == 5:
            return None
        raise RuntimeError("again")

    rec = Recorder(plan)
    manager.add(rec)
    delays = record_delays(manager)
    manager.start()
    store.create("Thing", thing("e"))
    wait_until(lambda: rec.count(("default", "e")) >= 5, what="retries until success")
    assert delays[:4] == [0.01, 0.02, 0.04, 0.04]  # doubled, then capped
    # A success resets the backoff: the next failure waits the base delay again.
    store.update_status("Thing", "default", "e", {"phase": "again"})
    wait_until(lambda: len(delays) >= 5, what="the next failure")
    assert delays[4] == 0.01


def test_child_events_wake_the_controlling_owner(store: Store, manager: Manager) -> None:
    parent_rec = Recorder()
    parent_rec.owns = ("Child",)
    manager.add(parent_rec)
    manager.start()
    parent = store.create("Thing", thing("parent"))
    wait_until(lambda: parent_rec.count(("default", "parent")) >= 1)
    before = parent_rec.count(("default", "parent"))
    ref = {
        "apiVersion": "shipyard.dev/v1",
        "kind": "Thing",
        "name": "parent",
        "uid": parent["metadata"]["uid"],
        "controller": True,
    }
    child = thing("kid", ownerReferences=[ref])
    child["kind"] = "Child"
    store.create("Child", child)
    wait_until(lambda: parent_rec.count(("default", "parent")) > before, what="owner wake-up")
    assert ("default", "kid") not in parent_rec.calls


def test_mappers_wake_other_keys(store: Store, manager: Manager) -> None:
    rec = Recorder()

    def mapper(ev: Event) -> list[Key]:
        return [(ev.namespace, "watcher-of-" + ev.name)]

    rec.maps = {"Other": mapper}
    manager.add(rec)
    manager.start()
    other = thing("x")
    other["kind"] = "Other"
    store.create("Other", other)
    wait_until(lambda: rec.count(("default", "watcher-of-x")) >= 1, what="mapped wake-up")


def test_manager_enqueue_after(manager: Manager) -> None:
    rec = Recorder()
    manager.add(rec)
    manager.start()
    manager.enqueue("Thing", "ns", "direct", after=0.01)
    wait_until(lambda: rec.count(("ns", "direct")) == 1, what="enqueue")
    wait_until(manager.idle, what="an idle manager")


def test_children_owned_through_a_kind_alias_wake_the_owner(store: Store) -> None:
    """An ownerReference in a kind's alias group (Katib's kubeflow.org/v1beta1 for
    shipyard.dev's Experiment) wakes the kind's controller; other groups do not."""
    registry = KindRegistry()
    registry.add(
        KindInfo(
            group="shipyard.dev",
            version="v1",
            kind="Gadget",
            plural="gadgets",
            aliases=(("kubeflow.org", "v1beta1"),),
        )
    )
    manager = Manager(store, Metrics(), resync_period=3600, registry=registry)
    rec = Recorder()
    rec.kind = "shipyard.dev/Gadget"
    rec.owns = ("Child",)
    manager.add(rec)
    manager.start()
    try:
        for group, name in (("kubeflow.org/v1beta1", "via-alias"), ("other.io/v1", "stranger")):
            child = thing(
                f"kid-{name}",
                ownerReferences=[
                    {
                        "apiVersion": group,
                        "kind": "Gadget",
                        "name": name,
                        "uid": name,
                        "controller": True,
                    }
                ],
            )
            child["kind"] = "Child"
            store.create("Child", child)
        wait_until(lambda: rec.count(("default", "via-alias")) >= 1, what="alias owner wake-up")
        assert rec.count(("default", "stranger")) == 0
    finally:
        manager.stop()
