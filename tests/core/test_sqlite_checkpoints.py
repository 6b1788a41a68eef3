"""On SQLite the store's write-ahead log is checkpointed by a thread of its own, shortly after
writes, not by whichever commit crosses SQLite's threshold (two fsyncs on the path of that
write: 1-5 ms on a VM's disk)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from shipyard.core import store as store_mod
from shipyard.core.store import Store
from waiting import wait_until

KIND = "test.shipyard.dev/Widget"


def widget(i: int) -> dict[str, object]:
    return {
        "apiVersion": "test.shipyard.dev/v1",
        "kind": "Widget",
        "metadata": {"name": f"w{i}", "namespace": "default"},
        "spec": {"size": i, "padding": "x" * 2000},
    }


def in_database_file(path: Path) -> int:
    """Widgets in the database file itself: ``immutable`` makes SQLite ignore the log."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        row = conn.execute("SELECT count(*) FROM resources WHERE kind = ?", (KIND,)).fetchone()
        return int(row[0])
    except sqlite3.DatabaseError:  # the table is only in the log yet, or a checkpoint is
        return 0  # writing the file as this reads it (immutable: SQLite takes no lock)
    finally:
        conn.close()


def checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sqlite-checkpoint" and t.is_alive()]


def test_writes_reach_the_database_file_without_another_write_or_a_close(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    s = Store(f"sqlite:///{path}")
    try:
        for i in range(200):  # ~100 pages: far below the commits' own threshold
            s.create(KIND, widget(i))
        assert store_mod.WRITER_CHECKPOINT_PAGES > 1000
        wait_until(lambda: in_database_file(path) == 200, what="a checkpoint")
    finally:
        s.close()


def test_the_commits_checkpoint_only_past_a_threshold_and_close_stops_the_thread(
    tmp_path: Path,
) -> None:
    before = set(checkpoint_threads())
    path = tmp_path / "store.db"
    s = Store(f"sqlite:///{path}")
    mine = set(checkpoint_threads()) - before
    assert len(mine) == 1
    with s.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert pages == store_mod.WRITER_CHECKPOINT_PAGES
    s.create(KIND, widget(0))
    s.close()
    assert not any(t.is_alive() for t in mine)
    assert in_database_file(path) == 1  # closing the last connection checkpoints the rest


def test_an_in_memory_store_has_no_checkpoint_thread() -> None:
    before = set(checkpoint_threads())
    s = Store("sqlite:///:memory:")
    try:
        assert set(checkpoint_threads()) == before
    finally:
        s.close()
