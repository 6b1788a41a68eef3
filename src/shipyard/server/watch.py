"""Watches over HTTP as server-sent events.

Each event is ``data: {"type": ADDED|MODIFIED|DELETED|ERROR, "object": {...}}`` with the
object's resourceVersion as the SSE ``id``. Without ``resourceVersion`` the stream starts
with an ADDED event for every existing object (Kubernetes' "get state and start at most
recent"); with one, it replays the event log from there (ERROR with code 410 when too old).
A phase filter (``status.phase=X`` or ``phase=A,B``) sends only the events whose object is in
one of those phases, as a list with it returns only such objects: a client waiting for a
large object to end need not receive (and parse) every change on the way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi.responses import StreamingResponse

from shipyard.core import selectors
from shipyard.core.resource import KindInfo
from shipyard.core.store import Event, Store
from shipyard.errors import BadRequest, Gone

HEARTBEAT = 15.0


def _frame(etype: str, obj: Any, rv: int | None = None) -> bytes:
    head = f"id: {rv}\n".encode() if rv is not None else b""
    return head + b"data: " + orjson.dumps({"type": etype, "object": obj}) + b"\n\n"


def _event_frame(ev: Event) -> bytes:
    """An event as sent: its stored JSON as is, not parsed and encoded again."""
    return (
        f'id: {ev.rv}\ndata: {{"type":"{ev.type}","object":'.encode() + ev.data.encode() + b"}\n\n"
    )


def watch_response(
    store: Store,
    info: KindInfo,
    namespace: str | None,
    selector: str | None,
    since: str | None,
    name: str | None = None,
    timeout_seconds: str | None = None,
    phase: str | None = None,
) -> StreamingResponse:
    """``timeout_seconds`` (Kubernetes' ``timeoutSeconds``) ends the stream after that long;
    ``phase`` (comma-separated) keeps only events of objects in one of those phases."""
    reqs = selectors.parse(selector)
    try:
        limit = float(timeout_seconds) if timeout_seconds else None
    except ValueError:
        raise BadRequest(
            f"timeoutSeconds {timeout_seconds!r} is not a number", field="timeoutSeconds"
        ) from None
    try:
        start = int(since) if since not in (None, "", "0") else None
    except ValueError:
        raise BadRequest(
            f"resourceVersion {since!r} is not a number", field="resourceVersion"
        ) from None
    ns = namespace if info.namespaced else None
    return StreamingResponse(
        _stream(store, info.key, ns, reqs, start, name, limit, phase),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    store: Store,
    kind: str,
    namespace: str | None,
    reqs: list[selectors.Requirement],
    start: int | None,
    name: str | None = None,
    limit: float | None = None,
    phase: str | None = None,
) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Event] = asyncio.Queue()
    phases = frozenset(phase.split(",")) if phase else None

    def in_phase(ev: Event) -> bool:
        return phases is None or ev.phase in phases

    def listener(ev: Event) -> None:
        if (
            ev.kind == kind
            and (namespace is None or ev.namespace == namespace)
            and (name is None or ev.name == name)
            and in_phase(ev)
        ):
            loop.call_soon_threadsafe(queue.put_nowait, ev)

    unsubscribe = store.subscribe(listener)
    try:
        if start is None:
            listed = store.list(kind, namespace, selector=reqs, name=name, phase=phase)
            last = listed.rv
            for obj in listed.items:
                yield _frame("ADDED", obj, int(obj["metadata"]["resourceVersion"]))
        else:
            last = start
            try:
                backlog = [
                    ev
                    for ev in store.events_since(start, kind=kind, namespace=namespace)
                    if (name is None or ev.name == name) and in_phase(ev)
                ]
            except Gone as exc:
                yield _frame(
                    "ERROR",
                    {"kind": "Status", "code": 410, "reason": "Expired", "message": exc.message},
                )
                return
            for ev in backlog:
                last = ev.rv
                if not reqs or selectors.matches(reqs, ev.obj):
                    yield _event_frame(ev)
        deadline = None if limit is None else loop.time() + limit
        while True:
            wait = HEARTBEAT if deadline is None else min(HEARTBEAT, deadline - loop.time())
            if wait <= 0:
                return
            try:
                first = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                if deadline is not None and loop.time() >= deadline:
                    return
                yield b": heartbeat\n\n"
                continue
            # What else has arrived goes in the same write (a burst of changes costs one
            # wake-up and one send, not one per event).
            frames = []
            live: Event | None = first
            while live is not None:
                if live.rv > last:
                    last = live.rv
                    if not reqs or selectors.matches(reqs, live.obj):
                        frames.append(_event_frame(live))
                live = queue.get_nowait() if not queue.empty() else None
            if frames:
                yield b"".join(frames)
    finally:
        unsubscribe()
