"""Artifact store garbage collection, locations and escapes (local folder and fsspec root)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from shipyard.core.artifacts import ArtifactStore, default_root, find_uris
from shipyard.errors import BadRequest, NotFound


def _age(store: ArtifactStore, uri: str, seconds: float) -> None:
    p = store.path(uri)
    then = time.time() - seconds
    os.utime(p, (then, then))


def test_gc_removes_only_unreferenced_artifacts_older_than_min_age(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    kept = store.put_bytes(b"referenced")
    dropped = store.put_bytes(b"orphan")
    fresh = store.put_bytes(b"just uploaded")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.joblib").write_bytes(b"w" * 100)
    orphan_dir = store.put_dir(folder)
    for s in (kept, dropped, orphan_dir):
        _age(store, s.uri, 3600)

    preview = store.gc({kept.uri}, min_age=60, dry_run=True)
    assert sorted(preview.removed) == sorted([dropped.uri, orphan_dir.uri])
    assert store.exists(dropped.uri) and store.exists(orphan_dir.uri)

    result = store.gc({kept.uri}, min_age=60)
    assert sorted(result.removed) == sorted([dropped.uri, orphan_dir.uri])
    assert result.freed_bytes == len(b"orphan") + 100
    assert result.kept == 2
    assert store.exists(kept.uri) and store.exists(fresh.uri)
    assert not store.exists(dropped.uri) and not store.exists(orphan_dir.uri)
    with pytest.raises(NotFound):
        store.path(dropped.uri)
    # Storing the same content again brings it back under the same URI.
    assert store.put_bytes(b"orphan").uri == dropped.uri
    assert store.path(dropped.uri).read_bytes() == b"orphan"


def test_storing_existing_content_again_protects_it_from_gc(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    s = store.put_bytes(b"shared")
    _age(store, s.uri, 3600)
    store.put_bytes(b"shared")  # a second writer is about to reference it
    assert store.gc(set(), min_age=60).removed == []
    assert store.exists(s.uri)


def test_entries_skip_unfinished_writes(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    s = store.put_bytes(b"x")
    (store.path(s.uri).parent / ".tmp-abc").write_bytes(b"partial")
    assert [e.uri for e in store.entries()] == [s.uri]
    store.gc(set())
    assert (store.path(store.put_bytes(b"y").uri).parent.parent).is_dir()


def test_find_uris_walks_nested_objects() -> None:
    a = "artifact://sha256/" + "a" * 64
    b = "artifact://sha256/" + "b" * 64
    obj = {
        "spec": {"uri": a, "list": [1, {"deep": f"see {b} here"}], "none": None},
        "status": {"not": "artifact://sha256/short"},
    }
    assert find_uris(obj) == {a, b}


def test_gc_refuses_bad_references(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    with pytest.raises(BadRequest, match="not an artifact URI"):
        store.gc(["artifact://sha256/../../etc"])
    for bad in ("artifact://sha256/../x", "/etc/passwd", "artifact://sha256/" + "g" * 64):
        with pytest.raises(BadRequest):
            store.location(bad)
        with pytest.raises(BadRequest):
            store.delete(bad)


def test_location_is_the_local_path(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    s = store.put_bytes(b"abc")
    assert Path(store.location(s.uri)).read_bytes() == b"abc"
    assert Path(store.location(s.uri)).resolve().is_relative_to((tmp_path / "a").resolve())
    with pytest.raises(NotFound):
        store.location("artifact://sha256/" + "0" * 64)


def test_default_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIPYARD_ARTIFACTS", raising=False)
    assert default_root(tmp_path) == str(tmp_path / "artifacts")
    monkeypatch.setenv("SHIPYARD_ARTIFACTS", "memory://bucket/x")
    assert default_root(tmp_path) == "memory://bucket/x"


def test_fsspec_root_stores_lists_and_collects(tmp_path: Path) -> None:
    """An fsspec URL root (the in-memory filesystem: the same code path as s3://)."""
    store = ArtifactStore(f"memory://shipyard-test-{uuid.uuid4().hex}")
    keep = store.put_bytes(b"keep")
    drop = store.put_bytes(b"drop")
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "f.txt").write_text("f")
    folder = store.put_dir(d)
    assert store.exists(folder.uri)
    with store.open(folder.uri, "sub/f.txt") as fh:
        assert fh.read() == b"f"
    assert store.location(keep.uri).startswith("memory://")
    assert {e.uri for e in store.entries()} == {keep.uri, drop.uri, folder.uri}
    result = store.gc({keep.uri})
    assert sorted(result.removed) == sorted([drop.uri, folder.uri])
    assert store.exists(keep.uri) and not store.exists(drop.uri)
    assert not store.exists(folder.uri)
    with pytest.raises(BadRequest):
        store.open(keep.uri, "../../x")
