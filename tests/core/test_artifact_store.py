"""The content-addressed artifact store (core/artifacts.py) on a real folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shipyard.core.artifacts import ArtifactStore, safe_relpath
from shipyard.errors import BadRequest, NotFound


def test_identical_content_is_stored_once(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    one = store.put_bytes(b"hello")
    src = tmp_path / "f.txt"
    src.write_bytes(b"hello")
    two = store.put_file(src)
    assert one.uri == two.uri and one.digest == two.digest
    assert one.digest.startswith("sha256:")
    files = [p for p in (tmp_path / "a").rglob("*") if p.is_file()]
    assert len(files) == 1
    assert store.path(one.uri).read_bytes() == b"hello"
    with store.open(one.uri) as fh:
        assert fh.read() == b"hello"
    assert store.exists(one.uri)
    assert store.put_bytes(b"other").uri != one.uri


def test_folders_are_digested_by_relative_paths_and_contents(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    for name in ("x", "y"):
        d = tmp_path / name
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "w.bin").write_bytes(b"weights")
        (d / "cfg.json").write_text("{}")
    x, y = store.put_dir(tmp_path / "x"), store.put_dir(tmp_path / "y")
    assert x.uri == y.uri and x.is_dir
    with store.open(x.uri, "sub/w.bin") as fh:
        assert fh.read() == b"weights"
    (tmp_path / "y" / "cfg.json").write_text('{"a": 1}')
    assert store.put_dir(tmp_path / "y").uri != x.uri


def test_nothing_escapes_the_root(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    secret = tmp_path / "secret"
    secret.write_text("s")
    d = tmp_path / "d"
    d.mkdir()
    os.symlink(secret, d / "link")
    with pytest.raises(BadRequest, match="outside"):
        store.put_dir(d)
    stored = store.put_bytes(b"z")
    for bad in ("../secret", "/etc/passwd", "a/../../b"):
        with pytest.raises(BadRequest):
            safe_relpath(bad)
        with pytest.raises(BadRequest):
            store.open(stored.uri, bad)
    for uri in ("artifact://sha256/../../etc", "sha256:xyz", "/etc/passwd"):
        with pytest.raises(BadRequest, match="not an artifact URI"):
            store.path(uri)
    with pytest.raises(NotFound):
        store.path("artifact://sha256/" + "0" * 64)
