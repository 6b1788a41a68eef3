"""Object UIDs (core/store.py new_uid): random version-4 UUIDs drawn from os.urandom in
chunks; unique, also across threads and in a forked child."""

from __future__ import annotations

import os
import threading
import uuid

from shipyard.core import store
from shipyard.core.store import new_uid


def test_uids_are_random_version_4_uuids_and_never_repeat() -> None:
    n = store._Uids.CHUNK // 16 * 3 + 5  # several chunks, and part of one more
    seen = {new_uid() for _ in range(n)}
    assert len(seen) == n
    for u in seen:
        assert u.version == 4 and u.variant == uuid.RFC_4122
        assert uuid.UUID(str(u)) == u


def test_threads_never_get_the_same_uid() -> None:
    got: list[list[uuid.UUID]] = [[] for _ in range(4)]

    def draw(i: int) -> None:
        got[i].extend(new_uid() for _ in range(2000))

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [u for batch in got for u in batch]
    assert len(set(every)) == len(every)


def test_a_forked_child_draws_its_own_uids() -> None:
    new_uid()  # the parent holds a partly used chunk
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it would hand out next
        os.close(r)
        os.write(w, "".join(str(new_uid()) for _ in range(3)).encode())
        os._exit(0)
    os.close(w)
    child = os.read(r, 4096).decode()
    os.close(r)
    os.waitpid(pid, 0)
    parent = "".join(str(new_uid()) for _ in range(3))
    assert child and child != parent
