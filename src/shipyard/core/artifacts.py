"""Content-addressed artifact store: every file or folder is kept once, under its sha256.

Locally the store is a folder (``<data_dir>/artifacts``); a ``s3://`` root (or any fsspec
URL) keeps objects there instead. Identical content is stored once whatever its name.

- ``put_file`` / ``put_bytes`` / ``put_dir`` → :class:`Stored` (``uri``, ``digest``);
- ``path(uri)`` → where to read it on this machine (local roots), ``open(uri)`` → a
  binary file object, ``exists(uri)``, ``location(uri)`` → a local path or fsspec URL;
- ``entries()`` / ``delete(uri)`` / ``gc(referenced)``: garbage collection of artifacts
  nothing references (:func:`find_uris` collects the URIs held anywhere in an object).

``default_root(data_dir)`` is where a platform keeps its store: ``$SHIPYARD_ARTIFACTS``
(a folder or an fsspec URL such as ``s3://bucket/prefix``) or ``<data_dir>/artifacts``.

URIs look like ``artifact://sha256/<hex>``; the digest is ``sha256:<hex>``. A folder's digest
covers its files' relative paths and contents (sorted), so two identical trees share one
entry. Nothing may escape the store's root: relative paths with ``..``, absolute paths and
symlinks pointing outside the tree being stored are refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Entry:
    """One stored artifact, as garbage collection sees it."""

    uri: str
    modified: float  # seconds since the epoch (when it was stored)
    is_dir: bool


@dataclass
class GcResult:
    removed: list[str] = field(default_factory=list)
    kept: int = 0
    freed_bytes: int = 0


_URI_RE = re.compile(r"artifact://sha256/[0-9a-f]{64}")


def find_uris(obj: object) -> set[str]:
    """Every artifact URI held anywhere in a JSON-like object (strings, lists, mappings)."""
    out: set[str] = set()
    stack: list[object] = [obj]
    while stack:
        cur = stack.pop()
        if isinstance(cur, str):
            if SCHEME in cur:
                out.update(_URI_RE.findall(cur))
        elif isinstance(cur, dict):
            stack.extend(cur.values())
        elif isinstance(cur, list | tuple):
            stack.extend(cur)
    return out


def default_root(data_dir: str | Path) -> str:
    """The platform's store root: ``$SHIPYARD_ARTIFACTS`` or ``<data_dir>/artifacts``."""
    return os.environ.get("SHIPYARD_ARTIFACTS") or str(Path(data_dir) / "artifacts")


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

    def location(self, uri: str) -> str:
        """Where an artifact lives: a local path (local roots) or an fsspec URL (remote)."""
        key = self._key(_hex_of(uri))
        if self.remote:
            if not self._fs.exists(f"{self.root_url}/{key}"):
                raise NotFound(f"artifact {uri} is not in the store at {self.root_url}")
            return f"{self.root_url}/{key}"
        return str(self.path(uri))

    # -- garbage collection -----------------------------------------------------------------

    def entries(self) -> Iterator[Entry]:
        """Every artifact in the store (temporary files of unfinished writes excluded)."""
        if self.remote:
            base = f"{self.root_url}/sha256"
            if not self._fs.exists(base):
                return
            for sub in self._fs.ls(base, detail=False):
                for item in self._fs.ls(sub, detail=True):
                    name = str(item["name"]).rstrip("/").rsplit("/", 1)[-1]
                    if len(name) != 64 or name.startswith(".tmp-"):
                        continue
                    is_dir = item.get("type") == "directory"
                    mtime = item.get("LastModified") or item.get("mtime") or item.get("created")
                    yield Entry(SCHEME + name, _epoch(mtime), is_dir)
            return
        local = self.root / "sha256"
        if not local.is_dir():
            return
        for prefix in sorted(local.iterdir()):
            if not prefix.is_dir():
                continue
            for item in sorted(prefix.iterdir()):
                if len(item.name) != 64 or item.name.startswith(".tmp-"):
                    continue
                st = item.lstat()
                yield Entry(SCHEME + item.name, st.st_mtime, item.is_dir())

    def size(self, uri: str) -> int:
        key = self._key(_hex_of(uri))
        if self.remote:
            return int(self._fs.du(f"{self.root_url}/{key}"))
        p = self.root / key
        if p.is_dir():
            return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        return p.stat().st_size if p.exists() else 0

    def delete(self, uri: str) -> None:
        """Remove one artifact (nothing happens if it is not there)."""
        key = self._key(_hex_of(uri))
        if self.remote:
            path = f"{self.root_url}/{key}"
            if self._fs.exists(path):
                self._fs.rm(path, recursive=True)
            return
        p = self.root / key
        if p.is_dir() and not p.is_symlink():
            # Move aside first so a reader never sees a half-deleted folder under its digest.
            import shutil  # see _new_temp

            aside = _new_temp(p.parent, ".tmp-del-", folder=True)
            os.rename(p, aside / "x")
            shutil.rmtree(aside, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)

    def gc(
        self, referenced: Iterable[str], *, min_age: float = 0.0, dry_run: bool = False
    ) -> GcResult:
        """Remove every artifact not in ``referenced`` and older than ``min_age`` seconds.

        ``min_age`` protects artifacts just uploaded whose reference is not written yet.
        """
        keep = {SCHEME + _hex_of(u) for u in referenced}
        cutoff = time.time() - min_age
        result = GcResult()
        for entry in list(self.entries()):
            if entry.uri in keep or entry.modified > cutoff:
                result.kept += 1
                continue
            result.freed_bytes += self.size(entry.uri)
            if not dry_run:
                self.delete(entry.uri)
            result.removed.append(entry.uri)
        return result

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
            else:
                _touch(dest)
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
                    import shutil  # see _new_temp

                    with open(src, "rb") as inp:
                        shutil.copyfileobj(inp, fh, _CHUNK)

                self._write_atomic(dest, copy)
            else:
                _touch(dest)
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
                import shutil  # see _new_temp

                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = _new_temp(dest.parent, ".tmp-", folder=True)
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
            else:
                _touch(dest)
        return Stored(SCHEME + hexd, "sha256:" + hexd, size, is_dir=True)

    @staticmethod
    def _write_atomic(dest: Path, write: Any) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_temp(dest.parent, ".tmp-")
        try:
            with open(tmp, "wb") as fh:
                write(fh)
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def _new_temp(parent: Path, prefix: str, *, folder: bool = False) -> Path:
    """A new, empty file (or folder) in ``parent``, made exclusively under a name no other
    writer uses (the process id, the clock, a counter), as tempfile's mkstemp and mkdtemp
    make theirs. Not tempfile itself: it imports random, whose hook reseeds every forked
    process, and the warm pool's zygote would then import it from the first container
    that stored an artifact, for all the containers after (see runtime/warm.py). shutil,
    which loads bz2 and lzma, is imported where it is used for the same reason."""
    n = 0
    while True:
        path = parent / f"{prefix}{os.getpid()}-{time.monotonic_ns()}-{n}"
        try:
            if folder:
                os.mkdir(path, 0o700)
            else:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            n += 1
            continue
        return path


def _touch(path: Path) -> None:
    """Mark an existing artifact as just stored again (so GC's ``min_age`` protects it)."""
    with contextlib.suppress(OSError):
        os.utime(path)


def _epoch(value: object) -> float:
    """A modification time from an fsspec listing (datetime or number) in epoch seconds."""
    if value is None:
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    ts = getattr(value, "timestamp", None)
    return float(ts()) if callable(ts) else 0.0
