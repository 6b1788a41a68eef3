"""Content-addressed artifact store: every file or folder is kept once, under its sha256.

Locally the store is a folder (``<data_dir>/artifacts``); a ``s3://`` root (or any fsspec
URL) keeps objects there instead. Identical content is stored once whatever its name.

- ``put_file`` / ``put_bytes`` / ``put_dir`` → :class:`Stored` (``uri``, ``digest``);
- ``path(uri)`` → where to read it on this machine (local roots), ``open(uri)`` → a
  binary file object, ``exists(uri)``.

URIs look like ``artifact://sha256/<hex>``; the digest is ``sha256:<hex>``. A folder's digest
covers its files' relative paths and contents (sorted), so two identical trees share one
entry. Nothing may escape the store's root: relative paths with ``..``, absolute paths and
symlinks pointing outside the tree being stored are refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from shipyard.errors import BadRequest, NotFound

SCHEME = "artifact://sha256/"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Stored:
    uri: str
    digest: str  # sha256:<hex>
    size: int
    is_dir: bool = False


def _hex_of(uri: str) -> str:
    text = uri.removeprefix(SCHEME) if uri.startswith(SCHEME) else uri.removeprefix("sha256:")
    if len(text) != 64 or any(ch not in "0123456789abcdef" for ch in text):
        raise BadRequest(f"not an artifact URI: {uri!r} (expected {SCHEME}<64 hex digits>)")
    return text


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _tree_files(root: Path) -> list[tuple[str, Path]]:
    """(relative posix path, file) for every file under ``root``; refuses escapes."""
    real_root = root.resolve()
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for d in list(dirnames):
            full = Path(dirpath) / d
            if full.is_symlink():
                _check_inside(full, real_root)
        for f in filenames:
            full = Path(dirpath) / f
            _check_inside(full, real_root)
            if full.is_file():
                out.append((full.relative_to(root).as_posix(), full))
    return sorted(out)


def _check_inside(path: Path, real_root: Path) -> None:
    target = path.resolve()
    if target != real_root and real_root not in target.parents:
        raise BadRequest(
            f"{path} is a symlink pointing outside the folder being stored ({target}); "
            "copy the file into the folder instead"
        )


def dir_digest(root: Path) -> str:
    h = hashlib.sha256()
    for rel, full in _tree_files(root):
        h.update(rel.encode() + b"\0" + file_digest(full).encode() + b"\n")
    return h.hexdigest()


def safe_relpath(rel: str) -> str:
    """A relative path inside an artifact folder, refusing absolute paths and ``..``."""
    if not rel or rel.startswith(("/", "\\")) or os.path.isabs(rel):
        raise BadRequest(f"path {rel!r} must be relative to the artifact")
    parts = Path(rel).parts
    if any(p == ".." for p in parts):
        raise BadRequest(f"path {rel!r} must not contain '..'")
    return Path(*parts).as_posix()


class ArtifactStore:
    """The store under one root: a local folder, or an fsspec URL such as ``s3://bucket/p``."""

    def __init__(self, root: str | Path) -> None:
        text = str(root)
        self.remote = "://" in text and not text.startswith("file://")
        self.root_url = text.rstrip("/")
        self.root = Path(text.removeprefix("file://")) if not self.remote else Path()
        self._fs: Any = None
        if self.remote:
            import fsspec  # only for remote roots

            self._fs, _ = fsspec.core.url_to_fs(self.root_url)
        else:
            self.root.mkdir(parents=True, exist_ok=True)

    # -- where things live ----------------------------------------------------------------

    def _key(self, hexd: str) -> str:
        return f"sha256/{hexd[:2]}/{hexd}"

    def path(self, uri: str) -> Path:
        """The local path of an artifact (a file or a folder). Local roots only."""
        if self.remote:
            raise BadRequest("artifacts in a remote store have no local path; use open()")
        p = self.root / self._key(_hex_of(uri))
        if not p.exists():
            raise NotFound(f"artifact {uri} is not in the store at {self.root}")
        return p

    def exists(self, uri: str) -> bool:
        key = self._key(_hex_of(uri))
        if self.remote:
            return bool(self._fs.exists(f"{self.root_url}/{key}"))
        return (self.root / key).exists()

    def open(self, uri: str, member: str | None = None) -> IO[bytes]:
        """A binary reader for a file artifact, or for ``member`` of a folder artifact."""
        key = self._key(_hex_of(uri))
        if member is not None:
            key = f"{key}/{safe_relpath(member)}"
        if self.remote:
            fh: IO[bytes] = self._fs.open(f"{self.root_url}/{key}", "rb")
            return fh
        p = self.root / key
        if not p.is_file():
            raise NotFound(f"artifact {uri}{'/' + member if member else ''} is not a file")
        return open(p, "rb")

    # -- storing --------------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> Stored:
        hexd = hashlib.sha256(data).hexdigest()
        key = self._key(hexd)
        if self.remote:
            if not self._fs.exists(f"{self.root_url}/{key}"):
                self._fs.pipe_file(f"{self.root_url}/{key}", data)
        else:
            dest = self.root / key
            if not dest.exists():
                self._write_atomic(dest, lambda fh: fh.write(data))
        return Stored(SCHEME + hexd, "sha256:" + hexd, len(data))

    def put_file(self, path: str | Path) -> Stored:
        src = Path(path)
        if src.is_dir():
            return self.put_dir(src)
        if not src.is_file():
            raise NotFound(f"{src}: no such file")
        hexd = file_digest(src)
        key = self._key(hexd)
        size = src.stat().st_size
        if self.remote:
            if not self._fs.exists(f"{self.root_url}/{key}"):
                self._fs.put_file(str(src), f"{self.root_url}/{key}")
        else:
            dest = self.root / key
            if not dest.exists():

                def copy(fh: IO[bytes]) -> None:
                    with open(src, "rb") as inp:
                        shutil.copyfileobj(inp, fh, _CHUNK)

                self._write_atomic(dest, copy)
        return Stored(SCHEME + hexd, "sha256:" + hexd, size)

    def put_dir(self, path: str | Path) -> Stored:
        src = Path(path)
        if not src.is_dir():
            raise NotFound(f"{src}: no such folder")
        files = _tree_files(src)
        hexd = dir_digest(src)
        key = self._key(hexd)
        size = sum(f.stat().st_size for _, f in files)
        if self.remote:
            base = f"{self.root_url}/{key}"
            if not self._fs.exists(base):
                for rel, full in files:
                    self._fs.put_file(str(full), f"{base}/{rel}")
        else:
            dest = self.root / key
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".tmp-"))
                try:
                    for rel, full in files:
                        target = tmp / rel
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(full, target)
                    try:
                        os.rename(tmp, dest)
                    except OSError:
                        if not dest.exists():  # lost a race to an identical tree: fine
                            raise
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        return Stored(SCHEME + hexd, "sha256:" + hexd, size, is_dir=True)

    @staticmethod
    def _write_atomic(dest: Path, write: Any) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
