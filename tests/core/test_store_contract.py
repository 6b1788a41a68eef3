"""Contract suite for :class:`shipyard.core.store.Store`, run against every backend.

Each test gets an empty store: a SQLite file in a temporary folder, or a fresh database on the
session's real PostgreSQL server (``postgres`` marker). The same assertions hold for both.

A few tests need a precise interleaving ("a reader looks while a write is half-way through").
They get it deterministically with a SQLAlchemy ``before_cursor_execute`` hook on the store's
own engine, which runs the reader at that point of the writer's transaction: nothing is
replaced, the store and its database are real.
"""

from __future__ import annotations

import base64
import copy
import threading
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from shipyard.core import selectors
from shipyard.core.store import Event, Store
from shipyard.errors import AlreadyExists, BadRequest, Conflict, Gone, NotFound

KIND = "test.shipyard.dev/Widget"
OTHER = "test.shipyard.dev/Gadget"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_db_url"))


@pytest.fixture
def open_store(store_url: str) -> Iterator[Callable[..., Store]]:
    """Open (and at the end close) stores on this test's database."""
    opened: list[Store] = []

    def open_(**kwargs: Any) -> Store:
        s = Store(store_url, **kwargs)
        opened.append(s)
        return s

    yield open_
    for s in opened:
        s.close()


@pytest.fixture
def store(open_store: Callable[..., Store]) -> Store:
    return open_store()


def widget(
    name: str,
    namespace: str = "team-a",
    *,
    labels: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
    owners: list[dict[str, Any]] | None = None,
    finalizers: list[str] | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels is not None:
        md["labels"] = labels
    if owners is not None:
        md["ownerReferences"] = owners
    if finalizers is not None:
        md["finalizers"] = finalizers
    obj: dict[str, Any] = {
        "apiVersion": "test.shipyard.dev/v1",
        "kind": "Widget",
        "metadata": md,
        "spec": spec if spec is not None else {"size": 1},
    }
    if status is not None:
        obj["status"] = status
    return obj


def owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
    md = obj["metadata"]
    return {
        "apiVersion": "test.shipyard.dev/v1",
        "kind": "Widget",
        "name": md["name"],
        "uid": md["uid"],
    }


def rv_of(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def names(objs: list[dict[str, Any]]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


def keys(events: list[Event]) -> list[tuple[str, str, int]]:
    return [(e.type, e.name, e.rv) for e in events]


def on_statement(store: Store, prefix: str, action: Callable[[], None]) -> None:
    """Run ``action`` once, just before the store next executes SQL starting with ``prefix``."""
    done = False

    def hook(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        nonlocal done
        if not done and statement.lstrip().upper().startswith(prefix.upper()):
            done = True
            action()

    sa.event.listen(store.engine, "before_cursor_execute", hook)


# -- create / get -----------------------------------------------------------------------------


def test_create_fills_metadata_and_reads_back(store: Store) -> None:
    assert store.rv == 0
    created = store.create(KIND, widget("a", labels={"app": "web"}))
    md = created["metadata"]
    assert md["generation"] == 1
    assert md["creationTimestamp"].endswith("Z")
    assert rv_of(created) == store.rv == 1
    assert len(md["uid"]) == 36

    assert store.get(KIND, "team-a", "a") == created
    assert store.try_get(KIND, "team-a", "a") == created
    assert store.get_by_uid(md["uid"]) == (KIND, created)

    second = store.create(KIND, widget("b"))
    assert rv_of(second) == 2
    assert second["metadata"]["uid"] != md["uid"]


def test_missing_objects(store: Store) -> None:
    store.create(KIND, widget("a"))
    assert store.try_get(KIND, "team-a", "nope") is None
    assert store.try_get(KIND, "team-b", "a") is None
    assert store.try_get(OTHER, "team-a", "a") is None
    assert store.get_by_uid("00000000-0000-0000-0000-000000000000") is None
    with pytest.raises(NotFound, match="'nope' not found in namespace 'team-a'"):
        store.get(KIND, "team-a", "nope")
    with pytest.raises(NotFound):
        store.update(KIND, widget("nope"))
    with pytest.raises(NotFound):
        store.update_status(KIND, "team-a", "nope", {"phase": "Running"})
    with pytest.raises(NotFound):
        store.delete(KIND, "team-a", "nope")


def test_generate_name(store: Store) -> None:
    obj = widget("")
    obj["metadata"]["generateName"] = "run-"
    created = store.create(KIND, obj)
    name = created["metadata"]["name"]
    assert name.startswith("run-") and len(name) > len("run-")
    assert store.get(KIND, "team-a", name)["metadata"]["uid"] == created["metadata"]["uid"]


def test_same_name_in_other_namespace_or_kind_is_fine(store: Store) -> None:
    a = store.create(KIND, widget("same", "team-a", spec={"size": 1}))
    b = store.create(KIND, widget("same", "team-b", spec={"size": 2}))
    c = store.create(OTHER, widget("same", "team-a", spec={"size": 3}))
    cluster = store.create(KIND, widget("same", ""))
    assert len({o["metadata"]["uid"] for o in (a, b, c, cluster)}) == 4
    assert store.get(KIND, "team-a", "same")["spec"] == {"size": 1}
    assert store.get(KIND, "team-b", "same")["spec"] == {"size": 2}
    assert store.get(OTHER, "team-a", "same")["spec"] == {"size": 3}
    assert store.get(KIND, "", "same")["metadata"]["uid"] == cluster["metadata"]["uid"]


def test_duplicate_create_is_already_exists_and_leaves_no_trace(store: Store) -> None:
    first = store.create(KIND, widget("a", spec={"size": 1}))
    rv0 = store.rv
    with store.watch() as next_events:
        with pytest.raises(AlreadyExists, match="'a' already exists in namespace 'team-a'"):
            store.create(KIND, widget("a", spec={"size": 2}))
        assert store.rv == rv0
        assert store.events_since(rv0) == []
        assert store.get(KIND, "team-a", "a") == first
        assert store.count(KIND) == 1
        # No gap: the next write takes the very next revision, and watchers see only it.
        b = store.create(KIND, widget("b"))
        assert rv_of(b) == rv0 + 1
        assert keys(next_events(2.0)) == [("ADDED", "b", rv0 + 1)]
    assert keys(store.events_since(0)) == [("ADDED", "a", 1), ("ADDED", "b", 2)]


def test_watch_started_during_a_failing_write_misses_nothing(store: Store) -> None:
    """A revision taken by a write that then fails must never be reported to readers.

    Otherwise a watch (or a list) that starts while the doomed write is in flight records
    that revision as seen, and the next successful write, which reuses it, is skipped.
    """
    store.create(KIND, widget("a"))
    seen: dict[str, Any] = {}

    def look() -> None:
        seen["rv"] = store.rv
        seen["list_rv"] = store.list(KIND).rv
        seen["watch"] = store.watch()
        seen["next"] = seen["watch"].__enter__()

    on_statement(store, "INSERT INTO resources", look)
    with pytest.raises(AlreadyExists):
        store.create(KIND, widget("a"))
    try:
        assert seen["rv"] == seen["list_rv"] == 1
        b = store.create(KIND, widget("b"))
        assert keys(seen["next"](2.0)) == [("ADDED", "b", rv_of(b))]
    finally:
        seen["watch"].__exit__(None, None, None)


def test_list_during_a_write_reports_only_committed_revisions(store: Store) -> None:
    """list + watch from the list's resourceVersion must not lose a write in flight."""
    store.create(KIND, widget("a"))
    listed: dict[str, Any] = {}
    on_statement(store, "INSERT INTO resources", lambda: listed.update(r=store.list(KIND)))
    b = store.create(KIND, widget("b"))
    page = listed["r"]
    # Whatever the list reports as seen must be in it: b was not committed, so rv < b's.
    assert names(page.items) == ["a"]
    assert page.rv < rv_of(b)
    assert [e.name for e in store.events_since(page.rv)] == ["b"]


# -- update -----------------------------------------------------------------------------------


def test_update_checks_resource_version(store: Store) -> None:
    created = store.create(KIND, widget("a"))
    stale = orjson.loads(orjson.dumps(created))
    created["spec"] = {"size": 2}
    updated = store.update(KIND, created)
    assert rv_of(updated) > rv_of(stale)

    stale["spec"] = {"size": 3}
    with pytest.raises(Conflict) as exc:
        store.update(KIND, stale)
    assert exc.value.field == "metadata.resourceVersion"
    assert store.get(KIND, "team-a", "a")["spec"] == {"size": 2}

    # Without a resourceVersion, or with check_rv=False, the update goes through.
    forced = store.update(KIND, stale, check_rv=False)
    assert forced["spec"] == {"size": 3}
    no_rv = widget("a", spec={"size": 4})
    assert store.update(KIND, no_rv)["spec"] == {"size": 4}


def test_update_generation_moves_only_with_spec_and_status_is_kept(store: Store) -> None:
    created = store.create(KIND, widget("a", spec={"size": 1}, status={"phase": "Pending"}))
    uid, ts = created["metadata"]["uid"], created["metadata"]["creationTimestamp"]
    assert created["metadata"]["generation"] == 1

    created["metadata"]["labels"] = {"x": "y"}
    created["metadata"]["annotations"] = {"note": "hi"}
    created["status"] = {"phase": "Hacked"}  # update never writes status
    created["metadata"]["uid"] = "forged"  # nor the fields the store owns
    created["metadata"]["generation"] = 42
    meta_only = store.update(KIND, created)
    assert meta_only["metadata"]["generation"] == 1
    assert meta_only["metadata"]["labels"] == {"x": "y"}
    assert meta_only["metadata"]["uid"] == uid
    assert meta_only["metadata"]["creationTimestamp"] == ts
    assert meta_only["status"] == {"phase": "Pending"}
    assert rv_of(meta_only) == 2

    meta_only["spec"] = {"size": 2}
    spec_changed = store.update(KIND, meta_only)
    assert spec_changed["metadata"]["generation"] == 2
    assert spec_changed["status"] == {"phase": "Pending"}

    stored = store.get(KIND, "team-a", "a")
    assert stored == spec_changed
    assert stored["metadata"]["annotations"] == {"note": "hi"}
    assert store.list(KIND, phase="Pending").items == [stored]


def test_update_status(store: Store) -> None:
    created = store.create(KIND, widget("a", spec={"size": 1}))
    s1 = store.update_status(KIND, "team-a", "a", {"phase": "Running", "replicas": 1})
    assert s1["status"] == {"phase": "Running", "replicas": 1}
    assert s1["spec"] == {"size": 1}
    assert s1["metadata"]["generation"] == 1
    assert rv_of(s1) == rv_of(created) + 1
    assert store.get(KIND, "team-a", "a") == s1

    with pytest.raises(Conflict):
        store.update_status(KIND, "team-a", "a", {"phase": "Failed"}, rv=rv_of(created))
    s2 = store.update_status(
        KIND, "team-a", "a", {"phase": "Succeeded"}, rv=s1["metadata"]["resourceVersion"]
    )
    assert s2["status"] == {"phase": "Succeeded"}
    assert names(store.list(KIND, phase="Succeeded").items) == ["a"]
    assert store.list(KIND, phase="Running").items == []

    # A later spec update keeps the status written here.
    s2["spec"] = {"size": 5}
    assert store.update(KIND, s2)["status"] == {"phase": "Succeeded"}


def test_a_status_write_failing_after_its_row_update_leaves_no_trace(store: Store) -> None:
    """A write is one transaction, however its statements are run (SQLite takes a faster
    path for the hottest ones): when its event cannot be logged, the row update made
    before is rolled back too, and nobody sees the revision it took."""
    created = store.create(KIND, widget("a", spec={"size": 1}))
    store.update_status(KIND, "team-a", "a", {"phase": "Running"})
    before = store.get(KIND, "team-a", "a")
    squatter = rv_of(before) + 1  # the revision the next write takes
    with store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO events (rv, kind, namespace, name, type, data) "
                "VALUES (:rv, 'x', '', 'x', 'MODIFIED', '{}')"
            ),
            {"rv": squatter},
        )
    with pytest.raises(sa.exc.IntegrityError):
        store.update_status(KIND, "team-a", "a", {"phase": "Failed"}, base=before)
    assert store.get(KIND, "team-a", "a") == before
    assert store.rv == rv_of(before)
    logged = [e for e in store.events_since(rv_of(created)) if e.name == "a"]
    assert [e.obj["status"]["phase"] for e in logged] == ["Running"]
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM events WHERE rv = :rv"), {"rv": squatter})
    done = store.update_status(KIND, "team-a", "a", {"phase": "Succeeded"}, base=before)
    assert store.get(KIND, "team-a", "a") == done and rv_of(done) == squatter


def test_status_writes_from_a_base_take_the_next_revision_whether_or_not_it_is_current(
    store: Store,
) -> None:
    """A status write from a current base is one guarded statement, from a stale one it reads
    the row first: either way it takes exactly the next revision (no revision is skipped),
    logs one event, and a base being deleted, of another object or without a revision
    writes onto what is stored."""
    store.create(KIND, widget("a", spec={"size": 1}))
    store.create(KIND, widget("b", spec={"size": 2}))
    a = store.get(KIND, "team-a", "a")
    s1 = store.update_status(KIND, "team-a", "a", {"phase": "Running"}, base=a)
    assert rv_of(s1) == store.rv == rv_of(a) + 2  # b's create came between
    assert store.get(KIND, "team-a", "a") == s1
    b = store.get(KIND, "team-a", "b")
    s2 = store.update_status(KIND, "team-a", "a", {"phase": "Succeeded"}, base=a)  # stale
    assert rv_of(s2) == store.rv == rv_of(s1) + 1
    s3 = store.update_status(KIND, "team-a", "a", {"phase": "Failed"}, base=b)  # not a's
    assert s3["spec"] == {"size": 1} and s3["metadata"]["name"] == "a"
    assert rv_of(s3) == rv_of(s2) + 1
    s4 = store.update_status(KIND, "team-a", "a", {"phase": "Unknown"}, base={"metadata": {}})
    assert s4["spec"] == {"size": 1} and rv_of(s4) == rv_of(s3) + 1
    assert store.get(KIND, "team-a", "b") == b
    events = [e for e in store.events_since(rv_of(a)) if e.name == "a"]
    assert [(e.rv, e.obj["status"]["phase"]) for e in events] == [
        (rv_of(s1), "Running"),
        (rv_of(s2), "Succeeded"),
        (rv_of(s3), "Failed"),
        (rv_of(s4), "Unknown"),
    ]
    # Being deleted (a finalizer holds it): the status is written, the deletion stays.
    store.create(KIND, widget("c", finalizers=["example.com/hold"]))
    store.delete(KIND, "team-a", "c")
    c = store.get(KIND, "team-a", "c")
    s5 = store.update_status(KIND, "team-a", "c", {"phase": "Terminating"}, base=c)
    assert s5["metadata"]["deletionTimestamp"] == c["metadata"]["deletionTimestamp"]
    assert store.get(KIND, "team-a", "c") == s5 and rv_of(s5) == rv_of(c) + 1


def test_get_with_a_known_copy_returns_it_only_while_it_is_current(store: Store) -> None:
    created = store.create(KIND, widget("a", spec={"size": 1}))
    known = store.get(KIND, "team-a", "a")
    assert store.try_get(KIND, "team-a", "a", known=known) is known
    # Anything written since (status here) makes the store read and return the new object.
    store.update_status(KIND, "team-a", "a", {"phase": "Running"})
    fresh = store.try_get(KIND, "team-a", "a", known=known)
    assert fresh is not known and fresh == store.get(KIND, "team-a", "a")
    assert fresh["status"] == {"phase": "Running"} and rv_of(fresh) == rv_of(created) + 1
    # A copy of another object, or without a revision, never stands in for this one.
    store.create(KIND, widget("b"))
    other = store.get(KIND, "team-a", "b")
    assert store.try_get(KIND, "team-a", "a", known=other) == fresh
    assert store.try_get(KIND, "team-a", "a", known={"metadata": {}}) == fresh
    store.delete(KIND, "team-a", "a")
    assert store.try_get(KIND, "team-a", "a", known=fresh) is None


def test_update_status_from_a_base_keeps_what_is_stored_when_the_base_is_stale(
    store: Store,
) -> None:
    store.create(KIND, widget("a", spec={"size": 1}, labels={"v": "1"}))
    base = store.get(KIND, "team-a", "a")
    snapshot = copy.deepcopy(base)
    s1 = store.update_status(KIND, "team-a", "a", {"phase": "Running"}, base=base)
    assert base == snapshot  # the caller's copy is left as it was
    assert s1["status"] == {"phase": "Running"} and s1["spec"] == {"size": 1}
    assert store.get(KIND, "team-a", "a") == s1 and rv_of(s1) == rv_of(base) + 1
    # The spec and labels change behind the caller's back; its base is now stale: the status
    # write must keep what is stored, not bring back the base's spec and labels.
    s1["spec"], s1["metadata"]["labels"] = {"size": 9}, {"v": "2"}
    store.update(KIND, s1)
    s2 = store.update_status(KIND, "team-a", "a", {"phase": "Succeeded"}, base=base)
    got = store.get(KIND, "team-a", "a")
    assert got == s2
    assert got["spec"] == {"size": 9} and got["metadata"]["labels"] == {"v": "2"}
    assert got["metadata"]["generation"] == 2 and got["status"] == {"phase": "Succeeded"}
    with pytest.raises(Conflict):
        store.update_status(KIND, "team-a", "a", {"phase": "Failed"}, rv=rv_of(base), base=base)
    with pytest.raises(NotFound):
        store.update_status(KIND, "team-a", "gone", {"phase": "Failed"}, base=base)
    events = store.events_since(rv_of(base))
    assert [(e.obj["spec"]["size"], e.obj["status"]["phase"]) for e in events] == [
        (1, "Running"),
        (9, "Running"),
        (9, "Succeeded"),
    ]


# -- list -------------------------------------------------------------------------------------


@pytest.fixture
def labelled(store: Store) -> Store:
    store.create(KIND, widget("w1", labels={"app": "web", "tier": "front"}))
    store.create(KIND, widget("w2", labels={"app": "web"}))
    store.create(KIND, widget("d1", labels={"app": "db", "tier": "back"}))
    store.create(KIND, widget("n1", labels={}))
    store.create(KIND, widget("x1", "team-b", labels={"app": "web"}))
    store.create(OTHER, widget("g1", labels={"app": "web"}))
    return store


SELECTOR_CASES = [
    ("app=web", ["w1", "w2"]),
    ("app==web", ["w1", "w2"]),
    ("app!=web", ["d1", "n1"]),
    ("app in (web,db)", ["d1", "w1", "w2"]),
    ("app notin (web)", ["d1", "n1"]),
    ("app notin (web,db)", ["n1"]),
    ("tier", ["d1", "w1"]),
    ("!tier", ["n1", "w2"]),
    ("app=web,!tier", ["w2"]),
    ("app=web,tier=front", ["w1"]),
    ("app in (web),tier notin (front)", ["w2"]),
    ("app=nothing", []),
    ("", ["d1", "n1", "w1", "w2"]),
]


def test_list_label_selectors(labelled: Store) -> None:
    # One store for all cases (a store per case would cost more than the cases).
    for selector, expected in SELECTOR_CASES:
        got = names(labelled.list(KIND, "team-a", selector=selector).items)
        assert got == expected, selector
        parsed = selectors.parse(selector)
        assert names(labelled.list(KIND, "team-a", selector=parsed).items) == expected, selector


def test_list_namespaces_kinds_and_bad_selector(labelled: Store) -> None:
    everywhere = labelled.list(KIND, selector="app=web").items
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in everywhere] == [
        ("team-a", "w1"),
        ("team-a", "w2"),
        ("team-b", "x1"),
    ]
    assert names(labelled.list(OTHER).items) == ["g1"]
    assert labelled.list(KIND, "team-c").items == []
    assert labelled.count(KIND) == 5
    assert labelled.count(KIND, "team-a") == 4
    assert labelled.count(OTHER) == 1
    assert labelled.count(KIND, "nowhere") == 0
    with pytest.raises(BadRequest):
        labelled.list(KIND, selector="app in web")


def test_labels_index_follows_updates(labelled: Store) -> None:
    w1 = labelled.get(KIND, "team-a", "w1")
    w1["metadata"]["labels"] = {"app": "db"}
    labelled.update(KIND, w1)
    assert names(labelled.list(KIND, "team-a", selector="app=web").items) == ["w2"]
    assert names(labelled.list(KIND, "team-a", selector="app=db").items) == ["d1", "w1"]
    assert names(labelled.list(KIND, "team-a", selector="tier").items) == ["d1"]
    labelled.delete(KIND, "team-a", "d1")
    assert names(labelled.list(KIND, "team-a", selector="app=db").items) == ["w1"]


def test_every_label_and_owner_is_indexed_however_many(store: Store) -> None:
    """Labels and owners go into the index a few rows per statement, or one by one when
    there are many: every one is found, on create and after an update, in either case."""
    parents = [store.create(KIND, widget(f"p{i}")) for i in range(3)]
    for n in (1, 2, 5, 16, 17, 40):
        labels = {f"l{i}": f"v{n}" for i in range(n)}
        refs = [owner_ref(p) for p in parents[: 1 + n % 3]]
        store.create(KIND, widget(f"w{n}", labels=labels, owners=refs))
    for n in (1, 2, 5, 16, 17, 40):
        for i in (0, n - 1):
            assert names(store.list(KIND, selector=f"l{i}=v{n}").items) == [f"w{n}"]
        every = ",".join(f"l{i}=v{n}" for i in range(n))
        assert names(store.list(KIND, selector=every).items) == [f"w{n}"]
    owned = [names(store.list(KIND, owner_uid=p["metadata"]["uid"]).items) for p in parents]
    every_one = ["w1", "w16", "w17", "w2", "w40", "w5"]
    assert owned == [every_one, every_one, ["w17", "w2", "w5"]]
    w5 = store.get(KIND, "team-a", "w5")
    w5["metadata"]["labels"] = {f"m{i}": "x" for i in range(7)}
    w5["metadata"]["ownerReferences"] = [owner_ref(parents[2])]
    store.update(KIND, w5)
    assert names(store.list(KIND, selector="m6=x,m0=x").items) == ["w5"]
    assert store.list(KIND, selector="l0=v5").items == []
    assert "w5" not in names(store.list(KIND, owner_uid=parents[0]["metadata"]["uid"]).items)


def test_list_by_phase_and_owner(store: Store) -> None:
    parent = store.create(KIND, widget("parent"))
    other = store.create(KIND, widget("other"))
    for i, phase in enumerate(["Running", "Pending", "Running", "Failed"]):
        store.create(KIND, widget(f"c{i}", owners=[owner_ref(parent)], status={"phase": phase}))
    store.create(KIND, widget("o1", owners=[owner_ref(other)], status={"phase": "Running"}))

    assert names(store.list(KIND, phase="Running").items) == ["c0", "c2", "o1"]
    assert names(store.list(KIND, phase="Pending,Failed").items) == ["c1", "c3"]
    owned = store.list(KIND, owner_uid=parent["metadata"]["uid"]).items
    assert names(owned) == ["c0", "c1", "c2", "c3"]
    assert names(store.list(KIND, owner_uid=parent["metadata"]["uid"], phase="Running").items) == [
        "c0",
        "c2",
    ]
    assert store.list(KIND, owner_uid="no-such-uid").items == []


def test_list_raw_matches_list(labelled: Store) -> None:
    raw = labelled.list_raw(KIND, selector="app=web", limit=2)
    full = labelled.list(KIND, selector="app=web", limit=2)
    assert all(isinstance(b, bytes) for b in raw.items)
    assert [orjson.loads(b) for b in raw.items] == full.items
    assert raw.continue_ == full.continue_ is not None
    assert raw.rv == full.rv == labelled.rv


def test_pagination_returns_every_object_once_in_order(store: Store) -> None:
    # The same names in two namespaces: the cursor is (namespace, name), not name alone.
    expected = []
    for ns in ("ns-b", "ns-a"):
        for i in range(125):
            name = f"obj-{i:03d}"
            store.create(KIND, widget(name, ns, labels={"parity": "even" if i % 2 == 0 else "odd"}))
            expected.append((ns, name))
    expected.sort()

    seen: list[tuple[str, str]] = []
    pages = []
    token = None
    while True:
        page = store.list(KIND, limit=100, continue_=token)
        pages.append(len(page.items))
        seen += [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in page.items]
        token = page.continue_
        if token is None:
            break
    assert pages == [100, 100, 50]
    assert seen == expected

    # Pagination composes with selectors and namespaces; an exact final page has no token.
    odd: list[str] = []
    token = None
    while True:
        page = store.list(KIND, "ns-a", selector="parity=odd", limit=31, continue_=token)
        odd += names(page.items)
        token = page.continue_
        if token is None:
            break
    assert odd == [f"obj-{i:03d}" for i in range(1, 125, 2)]
    exact = store.list(KIND, "ns-a", limit=125)
    assert len(exact.items) == 125 and exact.continue_ is None

    # A namespaced list given a token from another namespace continues in key order: a
    # token before the namespace starts at its first object, one after it yields nothing.
    before = store.list(KIND, "ns-b", limit=5, continue_=_token("ns-a", "obj-124"))
    assert names(before.items) == [f"obj-{i:03d}" for i in range(5)]
    assert store.list(KIND, "ns-a", limit=5, continue_=_token("ns-b", "obj-000")).items == []


def _token(namespace: str, name: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([namespace, name])).decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


INVALID_TOKENS = [
    "not a token",
    "%%%",
    _b64(b"not json"),
    _b64(b"{}"),
    _b64(b"[1, 2, 3]"),
    _b64(b'["only-one"]'),
    _b64(b'["ns", null]'),
    _b64(b'["ns\\u0000", "name"]'),  # PostgreSQL text cannot hold NUL
]


def test_invalid_continue_token_is_bad_request(store: Store) -> None:
    store.create(KIND, widget("a"))
    for token in INVALID_TOKENS:
        with pytest.raises(BadRequest) as exc:
            store.list(KIND, limit=10, continue_=token)
        assert exc.value.field == "continue", token


def test_newest_first_lists_in_reverse_creation_order_across_pages(store: Store) -> None:
    # Names and namespaces out of creation order: the order is the creates', not the keys'.
    made: list[tuple[str, str]] = []
    for i in range(23):
        ns = ("ns-b", "ns-a")[i % 2]
        name = f"obj-{(i * 7) % 23:03d}"
        store.create(KIND, widget(name, ns, labels={"parity": "even" if i % 2 == 0 else "odd"}))
        made.append((ns, name))
    store.delete(KIND, *made[5])  # a deleted object leaves no gap
    del made[5]
    newest = list(reversed(made))

    def walk(namespace: str | None = None, **kw: Any) -> tuple[list[tuple[str, str]], list[int]]:
        seen: list[tuple[str, str]] = []
        sizes: list[int] = []
        token = None
        while True:
            page = store.list(KIND, namespace, limit=5, continue_=token, newest_first=True, **kw)
            sizes.append(len(page.items))
            seen += [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in page.items]
            token = page.continue_
            if token is None:
                return seen, sizes

    everything, sizes = walk()
    assert everything == newest and sizes == [5, 5, 5, 5, 2]
    assert walk("ns-a")[0] == [k for k in newest if k[0] == "ns-a"]
    assert walk("ns-b", selector="parity=even")[0] == [k for k in newest if k[0] == "ns-b"]
    unpaged = store.list(KIND, newest_first=True)
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in unpaged.items] == newest
    # An object made after the first page was read does not shift the pages that follow.
    first = store.list(KIND, limit=5, newest_first=True)
    store.create(KIND, widget("late", "ns-a"))
    rest = store.list(KIND, limit=100, continue_=first.continue_, newest_first=True)
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in rest.items] == newest[5:]


def test_a_token_of_one_order_is_refused_by_the_other(store: Store) -> None:
    for i in range(3):
        store.create(KIND, widget(f"w{i}"))
    by_name = store.list(KIND, limit=1).continue_
    newest = store.list(KIND, limit=1, newest_first=True).continue_
    assert by_name and newest
    for token, newest_first in ((by_name, True), (newest, False)):
        with pytest.raises(BadRequest) as exc:
            store.list(KIND, limit=1, continue_=token, newest_first=newest_first)
        assert exc.value.field == "continue"
    for bad in [*INVALID_TOKENS, _b64(b'{"before": "3"}'), _b64(b'{"before": -1}')]:
        with pytest.raises(BadRequest) as exc:
            store.list(KIND, limit=1, continue_=bad, newest_first=True)
        assert exc.value.field == "continue", bad


# -- delete -----------------------------------------------------------------------------------


def test_delete(store: Store) -> None:
    a = store.create(KIND, widget("a", labels={"app": "web"}))
    with pytest.raises(Conflict):
        store.delete(KIND, "team-a", "a", rv=0)
    gone = store.delete(KIND, "team-a", "a", rv=rv_of(a))
    assert gone["metadata"]["uid"] == a["metadata"]["uid"]
    assert rv_of(gone) == rv_of(a) + 1 == store.rv
    assert store.try_get(KIND, "team-a", "a") is None
    assert store.get_by_uid(a["metadata"]["uid"]) is None
    assert store.list(KIND, selector="app=web").items == []
    assert keys(store.events_since(rv_of(a))) == [("DELETED", "a", rv_of(gone))]
    # The name can be used again, by a new object.
    again = store.create(KIND, widget("a"))
    assert again["metadata"]["uid"] != a["metadata"]["uid"]


def test_delete_cascades_through_owner_references(store: Store) -> None:
    parent = store.create(KIND, widget("parent"))
    child = store.create(OTHER, widget("child", owners=[owner_ref(parent)]))
    grandchild = store.create(KIND, widget("grandchild", owners=[owner_ref(child)]))
    other_parent = store.create(KIND, widget("other-parent"))
    shared = store.create(KIND, widget("shared", owners=[owner_ref(other_parent)]))
    rv0 = store.rv

    store.delete(KIND, "team-a", "parent")
    assert store.try_get(OTHER, "team-a", "child") is None
    assert store.try_get(KIND, "team-a", "grandchild") is None
    assert store.get(KIND, "team-a", "shared") == shared
    assert store.get(KIND, "team-a", "other-parent") == other_parent
    events = store.events_since(rv0)
    assert [(e.type, e.kind, e.name) for e in events] == [
        ("DELETED", KIND, "parent"),
        ("DELETED", OTHER, "child"),
        ("DELETED", KIND, "grandchild"),
    ]
    assert [e.rv for e in events] == [rv0 + 1, rv0 + 2, rv0 + 3]
    assert store.list(KIND, owner_uid=child["metadata"]["uid"]).items == []
    assert grandchild["metadata"]["uid"] not in {
        o["metadata"]["uid"] for o in store.list(KIND).items
    }


def test_finalizers_delay_deletion_until_removed(store: Store) -> None:
    parent = store.create(KIND, widget("parent", finalizers=["test/cleanup"]))
    child = store.create(KIND, widget("child", owners=[owner_ref(parent)]))
    kept_child = store.create(
        KIND, widget("kept", owners=[owner_ref(parent)], finalizers=["test/keep"])
    )
    rv0 = store.rv

    terminating = store.delete(KIND, "team-a", "parent")
    assert terminating["metadata"]["deletionTimestamp"]
    stored = store.get(KIND, "team-a", "parent")
    assert stored["metadata"]["deletionTimestamp"] == terminating["metadata"]["deletionTimestamp"]
    # Children go now; a child with its own finalizer starts terminating too.
    assert store.try_get(KIND, "team-a", "child") is None
    assert store.get(KIND, "team-a", "kept")["metadata"]["deletionTimestamp"]
    assert {(e.type, e.name) for e in store.events_since(rv0)} == {
        ("DELETED", "child"),
        ("MODIFIED", "kept"),
        ("MODIFIED", "parent"),
    }
    assert child["metadata"]["uid"] != kept_child["metadata"]["uid"]

    # Deleting again changes nothing; an update cannot clear deletionTimestamp.
    rv1 = store.rv
    store.delete(KIND, "team-a", "parent")
    assert store.rv == rv1
    stored["metadata"]["deletionTimestamp"] = None
    stored["spec"] = {"size": 9}
    still = store.update(KIND, stored)
    assert still["metadata"]["deletionTimestamp"] == terminating["metadata"]["deletionTimestamp"]

    # Removing the last finalizer removes the object.
    still["metadata"]["finalizers"] = []
    last = store.update(KIND, still)
    assert store.try_get(KIND, "team-a", "parent") is None
    assert keys(store.events_since(rv_of(still))) == [("DELETED", "parent", rv_of(last))]

    kept = store.get(KIND, "team-a", "kept")
    kept["metadata"]["finalizers"] = []
    store.update(KIND, kept)
    assert store.list(KIND).items == []


# -- events, watch, subscribe -----------------------------------------------------------------


def test_events_since_is_ordered_and_filtered(store: Store) -> None:
    a = store.create(KIND, widget("a"))
    store.create(KIND, widget("b", "team-b"))
    store.create(OTHER, widget("g"))
    store.update_status(KIND, "team-a", "a", {"phase": "Running"})
    store.delete(KIND, "team-b", "b")

    events = store.events_since(0)
    assert [(e.type, e.kind, e.namespace, e.name, e.rv) for e in events] == [
        ("ADDED", KIND, "team-a", "a", 1),
        ("ADDED", KIND, "team-b", "b", 2),
        ("ADDED", OTHER, "team-a", "g", 3),
        ("MODIFIED", KIND, "team-a", "a", 4),
        ("DELETED", KIND, "team-b", "b", 5),
    ]
    assert events[0].obj == a
    assert events[3].obj["status"] == {"phase": "Running"}
    assert all(e.rv == rv_of(e.obj) for e in events)
    assert [e.rv for e in store.events_since(3)] == [4, 5]
    assert [e.rv for e in store.events_since(0, kind=KIND)] == [1, 2, 4, 5]
    assert [e.rv for e in store.events_since(0, namespace="team-a")] == [1, 3, 4]
    assert [e.rv for e in store.events_since(0, kind=KIND, namespace="team-b")] == [2, 5]
    assert [e.rv for e in store.events_since(0, limit=2)] == [1, 2]
    assert [e.rv for e in store.events_since(1, kind=KIND, limit=2)] == [2, 4]
    assert [e.rv for e in store.events_since(0, namespace="team-b", limit=1)] == [2]
    assert [e.rv for e in store.events_since(1, kind=KIND, namespace="team-a", limit=5)] == [4]
    assert store.events_since(5) == []
    assert store.events_since(5, kind=KIND, namespace="team-a", limit=1) == []


def test_compaction_makes_old_revisions_gone(open_store: Callable[..., Store]) -> None:
    store = open_store(event_retention=3)
    for i in range(10):
        store.create(KIND, widget(f"w{i}"))
    store.compact()
    assert [e.rv for e in store.events_since(7)] == [8, 9, 10]
    with pytest.raises(Gone):
        store.events_since(6)
    with pytest.raises(Gone), store.watch(since=0):
        pass
    # Objects are not events: they all stay.
    assert store.count(KIND) == 10
    with store.watch(since=7) as next_events:
        assert [e.rv for e in next_events(1.0)] == [8, 9, 10]


def test_watch(store: Store) -> None:
    store.create(KIND, widget("before"))
    with store.watch() as next_events:
        assert next_events(0.05) == []
        a = store.create(KIND, widget("a"))
        store.create(OTHER, widget("g"))
        store.update_status(KIND, "team-a", "a", {"phase": "Running"})
        store.delete(KIND, "team-a", "a")
        assert [(e.type, e.kind, e.name) for e in next_events(1.0)] == [
            ("ADDED", KIND, "a"),
            ("ADDED", OTHER, "g"),
            ("MODIFIED", KIND, "a"),
            ("DELETED", KIND, "a"),
        ]
        assert next_events(0.05) == []
    # Filtered, from a past revision: the backlog first, then live events, no repeats.
    with store.watch(since=rv_of(a) - 1, kind=KIND, namespace="team-a") as next_events:
        store.create(KIND, widget("b"))
        store.create(KIND, widget("elsewhere", "team-b"))
        got = next_events(1.0)
        while len(got) < 4:
            more = next_events(1.0)
            assert more, got
            got += more
        assert [(e.type, e.name) for e in got] == [
            ("ADDED", "a"),
            ("MODIFIED", "a"),
            ("DELETED", "a"),
            ("ADDED", "b"),
        ]
        assert next_events(0.05) == []


def test_watch_from_a_revision_never_repeats_an_event(store: Store) -> None:
    """An event committed while the watch reads its backlog is delivered once, not twice."""
    store.create(KIND, widget("a"))
    on_statement(store, "SELECT events", lambda: store.create(KIND, widget("racer")))
    with store.watch(since=0) as next_events:
        got = next_events(1.0)
        got += next_events(0.1)
    assert keys(got) == [("ADDED", "a", 1), ("ADDED", "racer", 2)]


def test_events_are_snapshots_of_what_was_written(store: Store) -> None:
    with store.watch() as next_events:
        created = store.create(KIND, widget("a", spec={"size": 1}, labels={"v": "1"}))
        created["spec"]["size"] = 2  # the caller keeps using its dict
        created["metadata"]["labels"]["v"] = "2"
        updated = store.update(KIND, created)
        updated["spec"]["size"] = 3
        events = next_events(1.0)
    assert [e.obj["spec"]["size"] for e in events] == [1, 2]
    assert [e.obj["metadata"]["labels"]["v"] for e in events] == ["1", "2"]
    assert [e.obj for e in events] == [e.obj for e in store.events_since(0)]


def test_events_carry_name_phase_labels_and_owners_as_written(store: Store) -> None:
    # Listeners read these without parsing the object; live and replayed events agree.
    owner = {"apiVersion": "x/v1", "kind": "Owner", "name": "o", "uid": "u-1", "controller": True}
    with store.watch() as next_events:
        obj = store.create(KIND, widget("a", labels={"v": "1"}, owners=[owner]))
        obj["metadata"]["labels"]["v"] = "changed by the caller afterwards"
        store.update_status(KIND, "team-a", "a", {"phase": "Running"})
        live = next_events(1.0)
    for events in (live, store.events_since(0)):
        assert [(e.namespace, e.name, e.phase) for e in events] == [
            ("team-a", "a", None),
            ("team-a", "a", "Running"),
        ]
        assert [e.labels for e in events] == [{"v": "1"}, {"v": "1"}]
        assert [[r["uid"] for r in e.owner_refs] for e in events] == [["u-1"], ["u-1"]]
        assert orjson.loads(events[1].data) == events[1].obj


def test_subscribe(store: Store) -> None:
    heard: list[tuple[str, int]] = []

    def broken(_ev: Event) -> None:
        raise RuntimeError("a broken watcher")

    unsubscribe_broken = store.subscribe(broken)
    unsubscribe = store.subscribe(lambda ev: heard.append((ev.type, ev.rv)))
    store.create(KIND, widget("a"))  # the broken listener does not break the write
    store.delete(KIND, "team-a", "a")
    store.create(OTHER, widget("g"))
    with pytest.raises(AlreadyExists):  # a failed write is not heard
        store.create(OTHER, widget("g"))
    unsubscribe()
    unsubscribe()  # twice is harmless
    unsubscribe_broken()
    store.create(KIND, widget("b"))
    assert heard == [("ADDED", 1), ("DELETED", 2), ("ADDED", 3)]


def test_watcher_thread_sees_every_event_once_in_order(store: Store) -> None:
    n_writes = 120
    rv0 = store.rv
    got: list[Event] = []
    started = threading.Event()
    errors: list[BaseException] = []

    def watcher() -> None:
        try:
            with store.watch(since=rv0) as next_events:
                started.set()
                while len(got) < n_writes:
                    batch = next_events(5.0)
                    if not batch:
                        return
                    got.extend(batch)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            started.set()

    def writer() -> None:
        for i in range(n_writes // 2):
            obj = store.create(KIND, widget(f"w{i}"))
            store.update_status(KIND, "team-a", obj["metadata"]["name"], {"phase": f"P{i}"})

    # The writer starts first so the watch begins in the middle of the stream.
    writing = threading.Thread(target=writer)
    watching = threading.Thread(target=watcher)
    writing.start()
    watching.start()
    started.wait(10)
    writing.join(30)
    watching.join(30)
    assert not errors, errors
    assert [e.rv for e in got] == list(range(rv0 + 1, rv0 + n_writes + 1))
    assert [(e.type, e.name) for e in got[:2]] == [("ADDED", "w0"), ("MODIFIED", "w0")]
    assert [e.obj["status"]["phase"] for e in got if e.type == "MODIFIED"] == [
        f"P{i}" for i in range(n_writes // 2)
    ]


# -- reopening --------------------------------------------------------------------------------


def test_reopen_keeps_data_and_continues_revisions(open_store: Callable[..., Store]) -> None:
    first = open_store(event_retention=5)
    a = first.create(KIND, widget("a", labels={"app": "web"}))
    for i in range(9):
        first.create(KIND, widget(f"w{i}"))
    first.compact()
    first.close()

    second = open_store(event_retention=5)
    assert second.rv == 10
    assert second.get(KIND, "team-a", "a") == a
    assert names(second.list(KIND, selector="app=web").items) == ["a"]
    assert [e.rv for e in second.events_since(5)] == [6, 7, 8, 9, 10]
    with pytest.raises(Gone):
        second.events_since(4)
    b = second.create(KIND, widget("b"))
    assert rv_of(b) == 11
    with pytest.raises(AlreadyExists):
        second.create(KIND, widget("a"))


def test_a_store_of_the_first_schema_is_upgraded_on_open(
    open_store: Callable[..., Store],
) -> None:
    from alembic import command
    from alembic.config import Config

    from shipyard.core import store as store_mod

    first = open_store()
    a = first.create(KIND, widget("a"))
    first.create(KIND, widget("b", "team-b"))
    cfg = Config()
    cfg.set_main_option(
        "script_location", str(store_mod.Path(store_mod.__file__).parent / "migrations")
    )
    with first.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    with first.engine.connect() as conn:
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("resources")}
    assert "ix_resources_kind_id" not in indexes
    first.close()

    second = open_store()
    with second.engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("resources")}
    assert version == store_mod.SCHEMA_HEAD == "0002"
    assert "ix_resources_kind_id" in indexes
    assert second.get(KIND, "team-a", "a") == a
    assert names(second.list(KIND, newest_first=True).items) == ["b", "a"]


def test_reopen_after_the_whole_log_was_compacted(open_store: Callable[..., Store]) -> None:
    first = open_store(event_retention=0)
    a = first.create(KIND, widget("a"))
    first.create(KIND, widget("b"))
    first.compact()
    assert first.events_since(2) == []
    first.close()

    second = open_store(event_retention=0)
    assert second.rv == 2
    c = second.create(KIND, widget("c"))
    assert rv_of(c) == 3 > rv_of(a)
    a["spec"] = {"size": 7}
    assert rv_of(second.update(KIND, a)) == 4


# -- limits -----------------------------------------------------------------------------------


def test_negative_limit_is_a_bad_request(store: Store) -> None:
    store.create(KIND, widget("a"))
    with pytest.raises(BadRequest):
        store.list(KIND, limit=-1)


def test_watch_from_far_behind_delivers_the_whole_backlog(store: Store) -> None:
    """A watcher more than a page of events behind still gets every event, in order."""
    start = store.rv
    for i in range(120):
        store.create(KIND, widget(f"w{i:03d}"))
    assert len(store.events_since(start)) == 120
    with store.watch(since=start) as next_events:
        got: list[Event] = []
        while len(got) < 120:
            batch = next_events(1.0)
            assert batch, "watch stopped before the backlog was delivered"
            got += batch
    assert [e.name for e in got] == [f"w{i:03d}" for i in range(120)]
    assert [e.rv for e in got] == sorted(e.rv for e in got)


def test_events_say_whether_only_status_changed(store: Store) -> None:
    """Live events (what controllers subscribe to) flag status-only writes."""
    seen: list[Event] = []
    store.subscribe(seen.append)
    obj = store.create(KIND, widget("s"))
    store.update_status(KIND, "team-a", "s", {"phase": "Running"})
    obj = store.get(KIND, "team-a", "s")
    obj["spec"] = {"size": 2}
    store.update(KIND, obj)
    store.delete(KIND, "team-a", "s")
    flags = [(e.type, e.status_only) for e in seen]
    assert flags == [
        ("ADDED", False),
        ("MODIFIED", True),
        ("MODIFIED", False),
        ("DELETED", False),
    ]


def test_gets_and_status_writes_address_exactly_one_object_in_one_store(
    store: Store, tmp_path: Any
) -> None:
    """Reads and status writes by key (built once, with bound parameters) find the object
    of that kind, namespace and name only, in the store they are called on; names that
    look like SQL are plain values."""
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        odd = "x'; drop table resources; --"
        for s in (store, other):
            s.create(KIND, widget("w", "team-a"))
            s.create(KIND, widget("w", "team-b"))
            s.create(OTHER, widget("w", "team-a"))
        store.create(KIND, widget(odd.replace("'", "").replace(";", "").replace(" ", "")))
        store.update_status(KIND, "team-a", "w", {"phase": "Mine"})
        other.update_status(KIND, "team-a", "w", {"phase": "Theirs"})
        assert store.get(KIND, "team-a", "w")["status"] == {"phase": "Mine"}
        assert other.get(KIND, "team-a", "w")["status"] == {"phase": "Theirs"}
        for s in (store, other):
            assert "status" not in s.get(KIND, "team-b", "w")
            assert "status" not in s.get(OTHER, "team-a", "w")
        assert store.try_get(KIND, "team-a", odd) is None
        with pytest.raises(NotFound):
            store.update_status(KIND, "team-a", odd, {"phase": "X"})
        assert store.count(KIND) == 3
    finally:
        other.close()


def test_writers_in_many_threads_all_land_and_a_closed_store_reopens_whole(
    store: Store, open_store: Callable[..., Store]
) -> None:
    """Writes from several threads at once (on SQLite they share one connection, taken in
    turn) each commit whole: every create and status write is there, in the store and in
    the event log, also after the store is closed and opened again."""
    errors_seen: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(25):
                store.create(KIND, widget(f"t{t}-{i}"))
                store.update_status(KIND, "team-a", f"t{t}-{i}", {"phase": f"p{i}"})
                assert store.try_get(KIND, "team-a", f"t{t}-{i}") is not None
        except BaseException as exc:  # reported below, in the test's thread
            errors_seen.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors_seen, errors_seen
    assert store.count(KIND) == 100
    assert len(store.events_since(0, kind=KIND)) == 200
    store.close()
    again = open_store()
    assert again.count(KIND) == 100
    assert again.get(KIND, "team-a", "t3-24")["status"] == {"phase": "p24"}
