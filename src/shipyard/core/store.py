"""The resource store: SQLAlchemy 2 over SQLite (default, WAL) or PostgreSQL.

Every write is one transaction that updates the resource row, its label and owner index rows
and appends one event to the ordered event log; the event's number is the object's new
``resourceVersion`` (a global revision, like etcd's). Writes are serialised in-process, so
revisions are assigned in commit order and watchers never see them out of order. One control
plane process writes to a store at a time.

Objects are kept as JSON text so the REST list path can send rows without re-encoding them.
"""

from __future__ import annotations

import base64
import builtins
import logging
import operator
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shipyard.core import selectors
from shipyard.core.resource import Obj, now_iso
from shipyard.errors import AlreadyExists, BadRequest, Conflict, Gone, NotFound

log = logging.getLogger(__name__)

SCHEMA_HEAD = "0002"

_md = sa.MetaData()
resources = sa.Table(
    "resources",
    _md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String),
    sa.Column("namespace", sa.String),
    sa.Column("name", sa.String),
    sa.Column("uid", sa.String),
    sa.Column("rv", sa.BigInteger),
    sa.Column("phase", sa.String),
    sa.Column("data", sa.Text),
)
labels_t = sa.Table(
    "labels",
    _md,
    sa.Column("resource_id", sa.Integer),
    sa.Column("key", sa.String),
    sa.Column("value", sa.String),
)
owners_t = sa.Table(
    "owners", _md, sa.Column("resource_id", sa.Integer), sa.Column("owner_uid", sa.String)
)
events_t = sa.Table(
    "events",
    _md,
    sa.Column("rv", sa.BigInteger, primary_key=True),
    sa.Column("kind", sa.String),
    sa.Column("namespace", sa.String),
    sa.Column("name", sa.String),
    sa.Column("type", sa.String),
    sa.Column("data", sa.Text),
)
meta_t = sa.Table("store_meta", _md, sa.Column("key", sa.String), sa.Column("value", sa.String))

# The hottest statements, built once: building a statement costs more than running it
# (~65 of the ~95 microseconds of a get by key on SQLite).
_KEY = (
    resources.c.kind == sa.bindparam("k_kind"),
    resources.c.namespace == sa.bindparam("k_namespace"),
    resources.c.name == sa.bindparam("k_name"),
)
_SELECT_DATA = sa.select(resources.c.data).where(*_KEY)
_SELECT_ID_DATA = sa.select(resources.c.id, resources.c.data).where(*_KEY)
# The same, with the data left out (NULL) when the row is still at revision k_rv: the caller
# holds that revision already (see try_get and update_status with known / base).
_UNLESS_AT = sa.case((resources.c.rv == sa.bindparam("k_rv"), sa.null()), else_=resources.c.data)
_SELECT_DATA_UNLESS = sa.select(_UNLESS_AT).where(*_KEY)
_SELECT_ID_DATA_UNLESS = sa.select(resources.c.id, _UNLESS_AT).where(*_KEY)
_UPDATE_ROW = (
    resources.update()
    .where(resources.c.id == sa.bindparam("k_id"))
    .values(rv=sa.bindparam("v_rv"), phase=sa.bindparam("v_phase"), data=sa.bindparam("v_data"))
)
# A status write from a copy the caller holds: the row changes only if it is still at that
# copy's revision (k_rv), so a write needs no read first (see update_status).
_UPDATE_AT_RV = (
    resources.update()
    .where(*_KEY, resources.c.rv == sa.bindparam("k_rv"))
    .values(rv=sa.bindparam("v_rv"), phase=sa.bindparam("v_phase"), data=sa.bindparam("v_data"))
)
_INSERT_EVENT = events_t.insert()
_INSERT_ROW = resources.insert()
_ROW_KEYS = ["kind", "namespace", "name", "uid", "rv", "phase", "data"]
_INSERT_LABELS = labels_t.insert()
_INSERT_OWNERS = owners_t.insert()
_ROWS_AT_ONCE = 16  # up to this many label (or owner) rows are inserted in one statement

# What Store._hot takes from a statement's result (SQLAlchemy's, or the driver's cursor).
_Take = Callable[[Any], Any]
_FETCHONE: _Take = operator.methodcaller("fetchone")
_FETCHALL: _Take = operator.methodcaller("fetchall")
_ROWCOUNT: _Take = operator.attrgetter("rowcount")


def _phase_of(obj: Obj) -> Any:
    """The phase an object's row is indexed by: its status's, if any."""
    return (obj.get("status") or {}).get("phase")


def _inserted_id(result: Any) -> Any:
    """A new row's id: SQLAlchemy's result knows its primary key, the driver's cursor its
    row id."""
    key = getattr(result, "inserted_primary_key", None)
    return result.lastrowid if key is None else key[0]


def _events_after(kind: bool, namespace: bool) -> Any:
    q = sa.select(
        events_t.c.rv,
        events_t.c.kind,
        events_t.c.namespace,
        events_t.c.name,
        events_t.c.type,
        events_t.c.data,
    ).where(events_t.c.rv > sa.bindparam("e_rv"))
    if kind:
        q = q.where(events_t.c.kind == sa.bindparam("e_kind"))
    if namespace:
        q = q.where(events_t.c.namespace == sa.bindparam("e_namespace"))
    return q.order_by(events_t.c.rv)


# events_since's statement for each combination of its filters (kind, namespace), built
# once: building a select and finding its compiled form cost ~0.3 ms a call, the query
# itself ~10 us on SQLite. Every watch from a resourceVersion (a client's wait()) reads the
# log with one.
_EVENTS_AFTER = {(k, n): _events_after(k, n) for k in (False, True) for n in (False, True)}


class _Raw:
    """A hot statement compiled once for SQLite and run on the driver's cursor: SQLAlchemy's
    execution path costs 20-40 microseconds a statement, the driver's about 5, and a Pod
    costs the store about a dozen statements."""

    def __init__(self, stmt: Any, dialect: Any, column_keys: builtins.list[str] | None = None):
        self.stmt, self.dialect, self.keys = stmt, dialect, column_keys
        compiled = stmt.compile(dialect=dialect, column_keys=column_keys)
        self.sql = str(compiled)
        self.order = tuple(compiled.positiontup or ())
        self.error = dialect.loaded_dbapi.Error

    def run(self, conn: Connection, params: dict[str, Any]) -> Any:
        args = tuple(params[k] for k in self.order)
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            self._execute(conn, cur, args, many=False)
        except BaseException:
            cur.close()
            raise
        return cur

    def run_many(self, conn: Connection, rows: builtins.list[dict[str, Any]]) -> None:
        args = [tuple(row[k] for k in self.order) for row in rows]
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            self._execute(conn, cur, args, many=True)
        finally:
            cur.close()

    def rows_at_once(self, n: int) -> _Raw:
        """This INSERT of ``n`` rows as one statement (``VALUES (...), (...)``): the driver's
        executemany steps SQLite once per row, and each step lets go of the GIL, which
        another thread then holds while the store's lock waits (a Pipeline task's Pod has
        four labels and an owner)."""
        assert self.keys is not None
        values: builtins.list[dict[str, Any]] = [
            {k: sa.bindparam(f"{k}_{i}") for k in self.keys} for i in range(n)
        ]
        return _Raw(self.stmt.table.insert().values(values), self.dialect)

    def _execute(self, conn: Connection, cur: Any, args: Any, *, many: bool) -> None:
        # SQLAlchemy's cursor events still fire (tracing, tests that hook a statement); the
        # flags are the ones SQLAlchemy checks (asking the listener lists costs ~3 us).
        events = conn._has_events or conn.engine._has_events
        if events:
            conn.dispatch.before_cursor_execute(conn, cur, self.sql, args, None, many)
        try:
            (cur.executemany if many else cur.execute)(self.sql, args)
        except self.error as exc:  # raised as SQLAlchemy would (IntegrityError, ...)
            raise sa.exc.DBAPIError.instance(self.sql, args, exc, self.error) from exc
        if events:
            conn.dispatch.after_cursor_execute(conn, cur, self.sql, args, None, many)


class _Uids:
    """Random (version 4) UUIDs, as uuid.uuid4 makes them, from os.urandom drawn 4 KiB at a
    time rather than 16 bytes for each: os.urandom lets go of the GIL, and on a busy control
    plane getting it back took ~0.5 ms for every object created. A forked child draws its
    own (the buffer is dropped in it), so no two processes hand out the same ones."""

    CHUNK = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buf = b""
        self._pos = 0
        os.register_at_fork(after_in_child=self._drop)

    def _drop(self) -> None:
        self._lock = threading.Lock()
        self._buf, self._pos = b"", 0

    def new(self) -> uuid.UUID:
        with self._lock:
            if self._pos + 16 > len(self._buf):
                self._buf, self._pos = os.urandom(self.CHUNK), 0
            raw = self._buf[self._pos : self._pos + 16]
            self._pos += 16
        return uuid.UUID(bytes=raw, version=4)


_uids = _Uids()
new_uid = _uids.new


def _key(kind: str, namespace: str, name: str) -> dict[str, str]:
    return {"k_kind": kind, "k_namespace": namespace, "k_name": name}


def _rv_of(obj: Obj) -> int:
    """An object's resourceVersion as stored (-1, which no row has, if it has none)."""
    try:
        return int(obj["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return -1


def _unless(
    plain: Any, unless: Any, kind: str, namespace: str, name: str, held: Obj | None
) -> tuple[Any, dict[str, Any]]:
    """The statement reading an object by key, and its parameters: ``unless`` (the data
    left out while the row is at ``held``'s revision) when the caller holds a copy."""
    params: dict[str, Any] = _key(kind, namespace, name)
    if held is None:
        return plain, params
    return unless, {**params, "k_rv": _rv_of(held)}


class Event:
    """One change: ``type`` is ADDED, MODIFIED or DELETED; ``obj`` the object after it.

    ``obj`` is parsed from the stored JSON (``data``) on first use, once for all listeners:
    most of them look only at the kind, namespace, name, phase and owners, which come with
    the event (parsing a 1,000-task PipelineRun's 290 KB took ~1 ms a write). Treat ``obj``
    as read-only: every listener sees the same one.
    """

    __slots__ = (
        "_labels",
        "_obj",
        "_owner_refs",
        "_phase",
        "data",
        "kind",
        "name",
        "namespace",
        "rv",
        "status_only",
        "type",
    )

    def __init__(
        self,
        type: str,
        kind: str,
        data: str,
        rv: int,
        status_only: bool = False,
        *,
        namespace: str,
        name: str,
        phase: str | bool | None = False,
        owner_refs: tuple[Obj, ...] | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        self.type = type
        self.kind = kind
        self.data = data
        self.rv = rv
        # True when only ``status`` changed (written by update_status): controllers that
        # write a kind's status themselves can skip these. Set on live events only
        # (subscribe); events replayed from the log (events_since) say False.
        self.status_only = status_only
        self.namespace = namespace
        self.name = name
        self._phase = phase  # False: not given, read it from obj
        self._owner_refs = owner_refs
        self._labels = labels
        self._obj: Obj | None = None

    @property
    def obj(self) -> Obj:
        if self._obj is None:
            self._obj = orjson.loads(self.data)
        return self._obj

    @property
    def phase(self) -> str | None:
        if self._phase is False:
            self._phase = _phase_of(self.obj)
        return self._phase if isinstance(self._phase, str) else None

    @property
    def owner_refs(self) -> tuple[Obj, ...]:
        if self._owner_refs is None:
            self._owner_refs = tuple(self.obj["metadata"].get("ownerReferences") or ())
        return self._owner_refs

    @property
    def labels(self) -> dict[str, str]:
        if self._labels is None:
            self._labels = dict(self.obj["metadata"].get("labels") or {})
        return self._labels

    def __repr__(self) -> str:
        return f"Event({self.type} {self.kind} {self.namespace}/{self.name} rv={self.rv})"


@dataclass
class ListResult:
    items: list[Obj]
    continue_: str | None
    rv: int


@dataclass
class RawList:
    """A page of objects as JSON bytes, for the REST fast path."""

    items: list[bytes]
    continue_: str | None
    rv: int


Listener = Callable[[Event], None]


def _loads(data: str | bytes) -> Obj:
    obj: Obj = orjson.loads(data)
    return obj


def _dumps(obj: Obj) -> str:
    return orjson.dumps(obj).decode()


def _engine_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


# SQLite's write-ahead log is copied into the database (a checkpoint, two fsyncs: 1-5 ms on
# a VM's disk) by the store's checkpoint thread, CHECKPOINT_AFTER seconds after a write, not
# by the commit that happens to cross SQLite's threshold (every ~25 pipeline steps, on their
# path). Commits still checkpoint past WRITER_CHECKPOINT_PAGES, should that thread fall behind.
CHECKPOINT_AFTER = 0.5
WRITER_CHECKPOINT_PAGES = 10_000


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _encode_continue(namespace: str, name: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([namespace, name])).decode()


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        ns, name = orjson.loads(base64.urlsafe_b64decode(token.encode()))
    except Exception:
        ns = name = None
    # Two strings, and no NUL: PostgreSQL text cannot hold one (DataError, not a 400).
    if not (isinstance(ns, str) and isinstance(name, str)) or "\x00" in ns + name:
        raise _bad_continue()
    return ns, name


def _encode_continue_before(rid: int) -> str:
    """The token of a newest-first page: the id of its last (oldest) object."""
    return base64.urlsafe_b64encode(orjson.dumps({"before": rid})).decode()


def _decode_continue_before(token: str) -> int:
    try:
        rid = orjson.loads(base64.urlsafe_b64decode(token.encode()))["before"]
    except Exception:
        rid = None
    if not isinstance(rid, int) or isinstance(rid, bool) or not 0 < rid < 2**63:
        raise _bad_continue(" of a list in the same order")
    return rid


def _bad_continue(which: str = "") -> BadRequest:
    return BadRequest(
        f"invalid continue token: pass back the value from the previous page{which}",
        field="continue",
    )


def _after_key(r: Any, namespace: str | None, ns: str, name: str) -> Any:
    """Rows after the key (ns, name) of a continue token, in (namespace, name) order."""
    if namespace is None:
        return sa.tuple_(r.namespace, r.name) > sa.tuple_(sa.literal(ns), sa.literal(name))
    if ns == namespace:
        # Not the row value: beside ``namespace = ?`` SQLite then sorts every row after the
        # token in a temporary B-tree (16 ms for a page at 100k rows, against 0.05 ms for a
        # plain range on the unique index).
        return r.name > name
    return sa.true() if ns < namespace else sa.false()


class _Checkpointer:
    """A thread that checkpoints a SQLite database's write-ahead log CHECKPOINT_AFTER seconds
    after a write (PASSIVE: it waits for no reader or writer); none runs while nothing is
    written."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.due = threading.Event()
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self.thread.start()

    def wrote(self) -> None:
        if not self.due.is_set():
            self.due.set()

    def _run(self) -> None:
        while True:
            self.due.wait()
            if self.closing.wait(CHECKPOINT_AFTER):
                return
            self.due.clear()  # a write from now on is in the next checkpoint
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception:  # the next write tries again (or a commit, past the threshold)
                log.warning("SQLite checkpoint failed", exc_info=True)

    def close(self) -> None:
        self.closing.set()
        self.due.set()
        self.thread.join(timeout=30)


class Store:
    """Resources with optimistic concurrency, cascading deletes and a watchable event log."""

    def __init__(self, url: str, *, event_retention: int = 200_000) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite and ":///" in url and not url.endswith(":memory:"):
            Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: Engine = sa.create_engine(_engine_url(url), **kwargs)
        # The hottest statements, on SQLite, skip SQLAlchemy's execution path (see _Raw).
        self._raw: dict[Any, _Raw] = {}
        self._raw_multi: dict[tuple[Any, int], _Raw] = {}  # see _do_many
        if self.is_sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            d = self.engine.dialect
            event_keys = ["rv", "kind", "namespace", "name", "type", "data"]
            self._raw = {
                _SELECT_DATA: _Raw(_SELECT_DATA, d),
                _SELECT_DATA_UNLESS: _Raw(_SELECT_DATA_UNLESS, d),
                _SELECT_ID_DATA: _Raw(_SELECT_ID_DATA, d),
                _SELECT_ID_DATA_UNLESS: _Raw(_SELECT_ID_DATA_UNLESS, d),
                _UPDATE_ROW: _Raw(_UPDATE_ROW, d),
                _UPDATE_AT_RV: _Raw(_UPDATE_AT_RV, d),
                _INSERT_EVENT: _Raw(_INSERT_EVENT, d, event_keys),
                _INSERT_ROW: _Raw(_INSERT_ROW, d, _ROW_KEYS),
                _INSERT_LABELS: _Raw(_INSERT_LABELS, d, ["resource_id", "key", "value"]),
                _INSERT_OWNERS: _Raw(_INSERT_OWNERS, d, ["resource_id", "owner_uid"]),
            }
            self._raw.update({stmt: _Raw(stmt, d) for stmt in _EVENTS_AFTER.values()})
        self._migrate()
        self._lock = threading.RLock()
        # SQLite has one writer at a time, and here every write holds _lock: the writes share
        # one connection instead of taking one from the pool and giving it back each time
        # (~25 us a write). PostgreSQL keeps the pool.
        self._writer: Connection | None = self.engine.connect() if self.is_sqlite else None
        self._listeners: builtins.list[Listener] = []
        self._retention = event_retention
        self._writes_since_compact = 0
        with self.engine.connect() as conn:
            last_event = int(conn.execute(sa.select(sa.func.max(events_t.c.rv))).scalar() or 0)
            self._compacted = int(self._meta(conn, "compacted_rv") or 0)
        # ``_rv`` is the last committed revision, the only one readers see; ``_allocated`` is
        # the last one handed out inside the current write transaction (under ``_lock``).
        # The log may have been compacted away entirely: revisions still never go back.
        self._rv = self._allocated = max(last_event, self._compacted)
        self._checkpointer = (
            _Checkpointer(self.engine) if self.is_sqlite and ":memory:" not in url else None
        )

    def _hot(self, conn: Connection, stmt: Any, params: dict[str, Any], take: _Take) -> Any:
        """Run a hot statement and return ``take`` of its result: SQLAlchemy's result, or on
        SQLite the driver's cursor (see _Raw). Either is closed after."""
        raw = self._raw.get(stmt)
        if raw is None:
            result: Any = conn.execute(stmt, params)
        else:
            result = raw.run(conn, params)
        try:
            return take(result)
        finally:
            result.close()

    def _first(self, conn: Connection, stmt: Any, params: dict[str, Any]) -> Any:
        """The first row of a hot SELECT (a tuple), or None."""
        return self._hot(conn, stmt, params, _FETCHONE)

    def _all(self, conn: Connection, stmt: Any, params: dict[str, Any]) -> Any:
        """Every row of a hot SELECT (tuples)."""
        return self._hot(conn, stmt, params, _FETCHALL)

    def _do(self, conn: Connection, stmt: Any, params: dict[str, Any]) -> int:
        """Run a hot write statement; the number of rows it changed."""
        return int(self._hot(conn, stmt, params, _ROWCOUNT))

    def _do_many(self, conn: Connection, stmt: Any, rows: builtins.list[dict[str, Any]]) -> None:
        """Run a hot INSERT for each row: a few rows in one statement (call with _lock held)."""
        raw = self._raw.get(stmt)
        if raw is None:
            conn.execute(stmt, rows)
        elif 1 < len(rows) <= _ROWS_AT_ONCE and raw.keys is not None:
            multi = self._raw_multi.get((stmt, len(rows)))
            if multi is None:
                multi = self._raw_multi[(stmt, len(rows))] = raw.rows_at_once(len(rows))
            params = {f"{k}_{i}": row[k] for i, row in enumerate(rows) for k in raw.keys}
            multi.run(conn, params).close()
        else:
            raw.run_many(conn, rows)

    def _insert(self, conn: Connection, stmt: Any, params: dict[str, Any]) -> int:
        """Run a hot INSERT; the new row's id."""
        return int(self._hot(conn, stmt, params, _inserted_id))

    # -- schema ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self.engine.connect() as conn:
            insp = sa.inspect(conn)
            if insp.has_table("alembic_version"):
                current = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
                if current == SCHEMA_HEAD:
                    return
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @staticmethod
    def _meta(conn: Connection, key: str) -> str | None:
        row = conn.execute(sa.select(meta_t.c.value).where(meta_t.c.key == key)).first()
        return row[0] if row else None

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self.engine.dispose()

    @contextmanager
    def _write_conn(self) -> Iterator[Connection]:
        """A connection in a new transaction, committed at the end (call with _lock held)."""
        if self._writer is None:
            with self.engine.begin() as conn:
                yield conn
            return
        if self._writer.invalidated:  # its database connection broke: a new one
            self._writer.close()
            self._writer = self.engine.connect()
        with self._writer.begin():
            yield self._writer

    # -- watch ----------------------------------------------------------------------------

    @property
    def rv(self) -> int:
        return self._rv

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after every committed write, in revision order."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def events_since(
        self,
        rv: int,
        *,
        kind: str | None = None,
        namespace: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[Event]:
        """Events after revision ``rv`` (oldest first). Raises Gone if already compacted."""
        if rv < self._compacted:
            raise Gone(
                f"resourceVersion {rv} is too old (the event log starts after {self._compacted});"
                " list again and watch from the list's resourceVersion"
            )
        stmt = _EVENTS_AFTER[(bool(kind), bool(namespace))]
        params = {"e_rv": rv, "e_kind": kind, "e_namespace": namespace}
        if limit is not None:
            stmt = stmt.limit(limit)  # a new statement: SQLAlchemy's path (rare: no watch)
        with self.engine.connect() as conn:
            rows = self._all(conn, stmt, params)
        return [
            Event(etype, ekind, data, int(erv), namespace=ens, name=ename)
            for erv, ekind, ens, ename, etype, data in rows
        ]

    @contextmanager
    def watch(
        self,
        *,
        since: int | None = None,
        kind: str | None = None,
        namespace: str | None = None,
    ) -> Iterator[Callable[[float | None], builtins.list[Event]]]:
        """A blocking watch for threads: yields ``next(timeout)`` returning new events.

        Starts after revision ``since`` (default: now). Events are never skipped or repeated.
        """
        cond = threading.Condition()
        buffer: builtins.list[Event] = []

        def listener(ev: Event) -> None:
            if (kind and ev.kind != kind) or (namespace and ev.namespace != namespace):
                return
            with cond:
                buffer.append(ev)
                cond.notify_all()

        unsubscribe = self.subscribe(listener)
        last = self._rv if since is None else since
        backlog = (
            self.events_since(last, kind=kind, namespace=namespace) if since is not None else []
        )
        try:
            pending = list(backlog)

            def next_events(timeout: float | None) -> builtins.list[Event]:
                nonlocal last, pending
                with cond:
                    if not pending and not buffer:
                        cond.wait(timeout)
                    out = pending + buffer
                    pending = []
                    buffer.clear()
                # The backlog and live events overlap when a write commits while the
                # backlog is read: keep each revision once, in order.
                fresh: builtins.list[Event] = []
                for e in out:
                    if e.rv > last:
                        fresh.append(e)
                        last = e.rv
                return fresh

            yield next_events
        finally:
            unsubscribe()

    # -- reads ----------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> Obj:
        obj = self.try_get(kind, namespace, name)
        if obj is None:
            what = kind.rsplit("/", 1)[-1]
            where = f" in namespace {namespace!r}" if namespace else ""
            raise NotFound(f"{what} {name!r} not found{where}")
        return obj

    def try_get(
        self, kind: str, namespace: str, name: str, *, known: Obj | None = None
    ) -> Obj | None:
        """The object, or None. ``known`` is a copy the caller got from the store earlier
        and did not change: if the object is still at its resourceVersion, ``known`` itself
        is returned and the stored JSON is neither read nor parsed (a run of 1,000 tasks
        is 290 KB: ~2 ms to parse)."""
        stmt, params = _unless(_SELECT_DATA, _SELECT_DATA_UNLESS, kind, namespace, name, known)
        with self.engine.connect() as conn:
            row = self._first(conn, stmt, params)
        if row is None:
            return None
        return known if row[0] is None else _loads(row[0])

    def get_by_uid(self, uid: str) -> tuple[str, Obj] | None:
        q = sa.select(resources.c.kind, resources.c.data).where(resources.c.uid == uid)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return (row[0], orjson.loads(row[1])) if row else None

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        selector: str | builtins.list[selectors.Requirement] | None = None,
        phase: str | None = None,
        owner_uid: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        name: str | None = None,
        newest_first: bool = False,
    ) -> ListResult:
        raw = self.list_raw(
            kind,
            namespace,
            selector=selector,
            phase=phase,
            owner_uid=owner_uid,
            limit=limit,
            continue_=continue_,
            name=name,
            newest_first=newest_first,
        )
        return ListResult([orjson.loads(b) for b in raw.items], raw.continue_, raw.rv)

    def list_raw(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        selector: str | builtins.list[selectors.Requirement] | None = None,
        phase: str | None = None,
        owner_uid: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        name: str | None = None,
        newest_first: bool = False,
    ) -> RawList:
        """Objects in (namespace, name) order, or with ``newest_first`` in the reverse order
        of their creation; a page of ``limit`` and the token that continues it."""
        if limit is not None and limit < 0:
            raise BadRequest(f"limit must be 0 (no limit) or positive, not {limit}", field="limit")
        reqs = selectors.parse(selector) if isinstance(selector, str) else (selector or [])
        r = resources.c
        q = sa.select(r.namespace, r.name, r.data, r.id).where(r.kind == kind)
        if namespace is not None:
            q = q.where(r.namespace == namespace)
        if name is not None:
            q = q.where(r.name == name)
        if phase:
            phases = phase.split(",")
            q = q.where(r.phase.in_(phases)) if len(phases) > 1 else q.where(r.phase == phase)
        if owner_uid:
            q = q.where(
                r.id.in_(sa.select(owners_t.c.resource_id).where(owners_t.c.owner_uid == owner_uid))
            )
        for req in reqs:
            sub = sa.select(labels_t.c.resource_id).where(labels_t.c.key == req.key)
            if req.op in ("in", "notin"):
                sub = sub.where(labels_t.c.value.in_(req.values))
            q = q.where(r.id.in_(sub) if req.op in ("in", "exists") else r.id.not_in(sub))
        if newest_first:
            if continue_:
                q = q.where(r.id < _decode_continue_before(continue_))
            q = q.order_by(r.id.desc())
        else:
            if continue_:
                q = q.where(_after_key(r, namespace, *_decode_continue(continue_)))
            q = q.order_by(r.namespace, r.name)
        if limit:
            q = q.limit(limit + 1)
        rv = self._rv
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        token = None
        if limit and len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            token = (
                _encode_continue_before(last[3])
                if newest_first
                else _encode_continue(last[0], last[1])
            )
        return RawList([row[2].encode() for row in rows], token, rv)

    def count(self, kind: str, namespace: str | None = None) -> int:
        q = sa.select(sa.func.count()).select_from(resources).where(resources.c.kind == kind)
        if namespace is not None:
            q = q.where(resources.c.namespace == namespace)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    def count_by_phase(self, kind: str) -> dict[str, int]:
        q = (
            sa.select(resources.c.phase, sa.func.count())
            .where(resources.c.kind == kind)
            .group_by(resources.c.phase)
        )
        with self.engine.connect() as conn:
            return {str(phase or "Unknown"): int(n) for phase, n in conn.execute(q).all()}

    # -- writes ---------------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[tuple[Connection, builtins.list[Event]]]:
        """One write transaction; listeners hear its events after commit, in order."""
        with self._lock:
            events: builtins.list[Event] = []
            try:
                with self._write_conn() as conn:
                    yield conn, events
            except BaseException:
                self._allocated = self._rv  # revisions of a failed write are never seen
                raise
            self._rv = self._allocated  # committed: now readers may see them
            if self._checkpointer is not None:
                self._checkpointer.wrote()
            for ev in events:
                for listener in list(self._listeners):
                    try:
                        listener(ev)
                    except Exception:  # a broken watcher must not break writers
                        log.exception("watch listener failed")
            self._writes_since_compact += len(events)
            if self._writes_since_compact > max(1000, self._retention // 10):
                self._writes_since_compact = 0
                self.compact()

    def _next_rv(self) -> int:
        self._allocated += 1
        return self._allocated

    def _emit(
        self,
        conn: Connection,
        events: builtins.list[Event],
        etype: str,
        kind: str,
        obj: Obj,
        data: str | None = None,
        status_only: bool = False,
    ) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        data = data if data is not None else _dumps(obj)
        self._do(
            conn,
            _INSERT_EVENT,
            {
                "rv": rv,
                "kind": kind,
                "namespace": obj["metadata"].get("namespace") or "",
                "name": obj["metadata"]["name"],
                "type": etype,
                "data": data,
            },
        )
        # What was written (the caller keeps, and may change, ``obj``): watchers parse it
        # when they need more than these fields.
        md = obj["metadata"]
        events.append(
            Event(
                etype,
                kind,
                data,
                rv,
                status_only,
                namespace=md.get("namespace") or "",
                name=md["name"],
                phase=_phase_of(obj),
                owner_refs=tuple(dict(r) for r in md.get("ownerReferences") or ()),
                labels=dict(md.get("labels") or {}),
            )
        )

    def _write_index(self, conn: Connection, rid: int, obj: Obj, *, replace: bool) -> None:
        md = obj["metadata"]
        if replace:
            conn.execute(labels_t.delete().where(labels_t.c.resource_id == rid))
            conn.execute(owners_t.delete().where(owners_t.c.resource_id == rid))
        labels = md.get("labels") or {}
        if labels:
            self._do_many(
                conn,
                _INSERT_LABELS,
                [{"resource_id": rid, "key": k, "value": v} for k, v in labels.items()],
            )
        uids = {ref["uid"] for ref in md.get("ownerReferences") or [] if ref.get("uid")}
        if uids:
            self._do_many(
                conn, _INSERT_OWNERS, [{"resource_id": rid, "owner_uid": u} for u in uids]
            )

    def create(self, kind: str, obj: Obj, *, phase: str | None = None) -> Obj:
        """Insert a new object; fills uid, resourceVersion, generation, creationTimestamp."""
        md = obj["metadata"]
        ns = md.get("namespace") or ""
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + new_uid().hex[:5]
        md["uid"] = str(new_uid())
        with self._tx() as (conn, events):
            md["generation"] = 1
            md["creationTimestamp"] = now_iso()
            md.pop("deletionTimestamp", None)
            md["resourceVersion"] = str(self._next_rv())
            data = _dumps(obj)
            try:
                rid = self._insert(
                    conn,
                    _INSERT_ROW,
                    {
                        "kind": kind,
                        "namespace": ns,
                        "name": md["name"],
                        "uid": md["uid"],
                        "rv": int(md["resourceVersion"]),
                        "phase": phase or _phase_of(obj),
                        "data": data,
                    },
                )
            except sa.exc.IntegrityError:
                where = f" in namespace {ns!r}" if ns else ""
                raise AlreadyExists(
                    f"{obj.get('kind', kind)} {md['name']!r} already exists{where}; "
                    "use apply to update it or delete it first"
                ) from None
            self._write_index(conn, rid, obj, replace=False)
            self._emit(conn, events, "ADDED", kind, obj, data)
        return obj

    def _current(
        self, conn: Connection, kind: str, ns: str, name: str, base: Obj | None = None
    ) -> tuple[int, Obj]:
        """The row id and the stored object; with ``base``, a copy of it (its top level and
        metadata, which a write changes) while the object is still at base's revision."""
        stmt, params = _unless(_SELECT_ID_DATA, _SELECT_ID_DATA_UNLESS, kind, ns, name, base)
        row = self._first(conn, stmt, params)
        if row is None:
            where = f" in namespace {ns!r}" if ns else ""
            raise NotFound(f"{kind.rsplit('/', 1)[-1]} {name!r} not found{where}")
        if row[1] is not None:
            return int(row[0]), orjson.loads(row[1])
        assert base is not None  # the data is left out only at base's revision
        return int(row[0]), {**base, "metadata": dict(base["metadata"])}

    @staticmethod
    def _check_rv(cur: Obj, expected: str | int | None) -> None:
        if expected is not None and str(expected) != cur["metadata"]["resourceVersion"]:
            raise Conflict(
                f"the object has been modified (resourceVersion {expected} is stale, current is "
                f"{cur['metadata']['resourceVersion']}); get it again and re-apply your change",
                field="metadata.resourceVersion",
            )

    def _save(
        self,
        conn: Connection,
        events: builtins.list[Event],
        kind: str,
        rid: int,
        obj: Obj,
        *,
        index: bool,
        status_only: bool = False,
    ) -> Obj:
        obj["metadata"]["resourceVersion"] = str(self._next_rv())
        md = obj["metadata"]
        if md.get("deletionTimestamp") and not md.get("finalizers"):
            self._remove(conn, events, kind, rid, obj)
            return obj
        data = _dumps(obj)
        self._do(
            conn,
            _UPDATE_ROW,
            {
                "k_id": rid,
                "v_rv": int(md["resourceVersion"]),
                "v_phase": _phase_of(obj),
                "v_data": data,
            },
        )
        if index:
            self._write_index(conn, rid, obj, replace=True)
        self._emit(conn, events, "MODIFIED", kind, obj, data, status_only)
        return obj

    def update(self, kind: str, obj: Obj, *, check_rv: bool = True) -> Obj:
        """Replace metadata (labels, annotations, owners, finalizers) and spec; keep status.

        With ``check_rv`` a resourceVersion in ``obj`` must be current (else Conflict).
        Generation moves when the spec changes.
        """
        md_in = obj["metadata"]
        ns = md_in.get("namespace") or ""
        with self._tx() as (conn, events):
            rid, cur = self._current(conn, kind, ns, md_in["name"])
            if check_rv:
                self._check_rv(cur, md_in.get("resourceVersion"))
            new: Obj = {k: v for k, v in obj.items() if k != "status"}
            if "status" in cur:
                new["status"] = cur["status"]
            md = new["metadata"] = dict(md_in)
            for keep in ("uid", "creationTimestamp", "generation", "deletionTimestamp"):
                if keep in cur["metadata"]:
                    md[keep] = cur["metadata"][keep]
                else:
                    md.pop(keep, None)
            if new.get("spec") != cur.get("spec"):
                md["generation"] = int(cur["metadata"].get("generation", 1)) + 1
            return self._save(conn, events, kind, rid, new, index=True)

    def update_status(
        self,
        kind: str,
        namespace: str,
        name: str,
        status: Obj,
        *,
        rv: str | int | None = None,
        base: Obj | None = None,
    ) -> Obj:
        """Write only ``status``. With ``rv``, refuse if the object changed since.

        ``base`` is the object as the caller got it from the store (unchanged, or with only
        its status changed): while it is current, its metadata and spec are kept without
        reading and parsing the stored object again. ``base`` itself is not modified."""
        with self._tx() as (conn, events):
            if base is not None and (rv is None or str(rv) == str(_rv_of(base))):
                written = self._save_over(conn, events, kind, namespace, name, status, base)
                if written is not None:
                    return written
            rid, cur = self._current(conn, kind, namespace, name, base)
            self._check_rv(cur, rv)
            cur["status"] = status
            return self._save(conn, events, kind, rid, cur, index=False, status_only=True)

    def _save_over(
        self,
        conn: Connection,
        events: builtins.list[Event],
        kind: str,
        namespace: str,
        name: str,
        status: Obj,
        base: Obj,
    ) -> Obj | None:
        """Write ``base`` with ``status`` in one statement that changes the row only while it
        is still at base's revision: no read before the write (on a busy control plane each
        statement is also a point where another thread takes the GIL while the store's lock
        is held). None, with nothing written, if the row moved on, is gone, or base is being
        deleted (such a write may remove the object: the general path decides)."""
        md = base.get("metadata") or {}
        if md.get("deletionTimestamp"):
            return None
        held = _rv_of(base)
        new_rv = self._next_rv()
        obj = {**base, "metadata": {**md, "resourceVersion": str(new_rv)}, "status": status}
        data = _dumps(obj)
        params = {
            **_key(kind, namespace, name),
            "k_rv": held,
            "v_rv": new_rv,
            "v_phase": _phase_of(obj),
            "v_data": data,
        }
        if self._do(conn, _UPDATE_AT_RV, params) != 1:
            self._allocated -= 1  # not used: the general path allocates it again
            return None
        self._emit(conn, events, "MODIFIED", kind, obj, data, True)
        return obj

    def delete(self, kind: str, namespace: str, name: str, *, rv: str | int | None = None) -> Obj:
        """Delete an object and, cascading, everything it owns.

        Objects with finalizers get a deletionTimestamp and go when their finalizers are
        removed (by ``update``). Returns the object as last seen.
        """
        with self._tx() as (conn, events):
            rid, cur = self._current(conn, kind, namespace, name)
            self._check_rv(cur, rv)
            return self._delete_one(conn, events, kind, rid, cur)

    def _delete_one(
        self, conn: Connection, events: builtins.list[Event], kind: str, rid: int, cur: Obj
    ) -> Obj:
        md = cur["metadata"]
        if md.get("finalizers"):
            if md.get("deletionTimestamp"):
                return cur
            self._cascade(conn, events, md["uid"])
            md["deletionTimestamp"] = now_iso()
            return self._save(conn, events, kind, rid, cur, index=False)
        md["resourceVersion"] = str(self._next_rv())
        self._remove(conn, events, kind, rid, cur)
        return cur

    def _remove(
        self, conn: Connection, events: builtins.list[Event], kind: str, rid: int, obj: Obj
    ) -> None:
        conn.execute(labels_t.delete().where(labels_t.c.resource_id == rid))
        conn.execute(owners_t.delete().where(owners_t.c.resource_id == rid))
        conn.execute(resources.delete().where(resources.c.id == rid))
        self._emit(conn, events, "DELETED", kind, obj)
        self._cascade(conn, events, obj["metadata"]["uid"])

    def _cascade(self, conn: Connection, events: builtins.list[Event], owner_uid: str) -> None:
        rows = conn.execute(
            sa.select(resources.c.id, resources.c.kind, resources.c.data).where(
                resources.c.id.in_(
                    sa.select(owners_t.c.resource_id).where(owners_t.c.owner_uid == owner_uid)
                )
            )
        ).all()
        for rid, kind, data in rows:
            child = orjson.loads(data)
            if child["metadata"].get("deletionTimestamp"):
                continue
            self._delete_one(conn, events, kind, rid, child)

    # -- maintenance ----------------------------------------------------------------------

    def compact(self) -> None:
        """Drop events older than the retention window (watchers from there get Gone)."""
        with self._lock:
            cutoff = self._rv - self._retention
            if cutoff <= self._compacted:
                return
            with self._write_conn() as conn:
                conn.execute(events_t.delete().where(events_t.c.rv <= cutoff))
                conn.execute(meta_t.delete().where(meta_t.c.key == "compacted_rv"))
                conn.execute(meta_t.insert().values(key="compacted_rv", value=str(cutoff)))
            self._compacted = cutoff
