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


def test_storing_leaves_only_the_stored_entries_read_only(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    src = tmp_path / "f.txt"
    src.write_text("data")
    folder = tmp_path / "d"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "x").write_text("x")
    stored = [store.put_bytes(b"abc"), store.put_file(src), store.put_dir(folder)]
    assert store.put_bytes(b"abc").uri == stored[0].uri
    names = [p.name for p in (tmp_path / "store").rglob("*")]
    assert not [n for n in names if n.startswith(".tmp-")], names  # no temporary is left
    for s, content in zip(stored[:2], (b"abc", b"data"), strict=True):
        assert store.path(s.uri).read_bytes() == content
        assert oct(store.path(s.uri).stat().st_mode & 0o777) == oct(0o444)
    assert (store.path(stored[2].uri) / "sub" / "x").read_text() == "x"


def test_temporaries_get_new_names_even_when_the_clock_repeats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.core import artifacts

    monkeypatch.setattr(artifacts.time, "monotonic_ns", lambda: 7)
    a = artifacts._new_temp(tmp_path, ".tmp-")
    b = artifacts._new_temp(tmp_path, ".tmp-")
    c = artifacts._new_temp(tmp_path, ".tmp-", folder=True)
    assert len({a, b, c}) == 3 and a.is_file() and b.is_file() and c.is_dir()


def test_the_store_does_not_load_random_which_reseeds_every_forked_process() -> None:
    # The warm pool's zygote preloads the store (with the pipeline executor): tempfile's
    # random would register its at-fork hook there, to run in every container forked, and
    # shutil loads bz2 and lzma, whose mappings every fork copies.
    import subprocess
    import sys

    code = (
        "import sys, shipyard.core.artifacts\n"
        "assert 'random' not in sys.modules\n"
        "assert 'shutil' not in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
