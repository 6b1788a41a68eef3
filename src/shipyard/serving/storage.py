"""storageUri → a local path the model server can read.

A plain path or ``file://`` is used where it is (relative paths from the folder the manifest
was applied from); ``s3://`` and other fsspec URLs are downloaded once into the data dir's
cache; ``models:/name/version`` and ``models:/name@alias`` go through the model registry's
resolver when that component is installed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from shipyard.errors import Invalid


def resolve(
    uri: str,
    *,
    base: Path | None,
    cache: Path,
    platform: Any = None,
    namespace: str | None = None,
) -> Path:
    """A local path for ``uri``; ``models:/`` URIs resolve in ``namespace`` (the
    InferenceService's) unless they name one."""
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    if uri.startswith("models:/"):
        # The registry publishes its resolver on the platform: serving imports none of it.
        resolver = getattr(platform, "resolve_model_uri", None)
        if resolver is None:
            raise Invalid(
                f"storageUri {uri!r}: models:/ URIs need the model registry component",
                field="spec.predictor.model.storageUri",
            )
        location = str(resolver(uri, namespace))
        return resolve(location, base=base, cache=cache, platform=platform)
    if "://" in uri:
        return _download(uri, cache)
    path = Path(uri).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return path.resolve()


def _download(uri: str, cache: Path) -> Path:
    import fsspec  # optional: pip install shipyard[serving] brings it

    dest = cache / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if dest.exists():
        return dest
    tmp = dest.with_suffix(".partial")
    fs, _, paths = fsspec.get_fs_token_paths(uri)
    fs.get(paths[0], str(tmp), recursive=True)
    tmp.rename(dest)
    return dest
