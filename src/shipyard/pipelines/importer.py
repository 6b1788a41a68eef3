"""The task ``dsl.importer`` adds (and a kfp IR importer node becomes): it copies the file or
folder at a URI (a local path, ``file://``, or any scheme fsspec reads) into the artifact
store as its output ``artifact``, so the tasks after it read it like any other artifact."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

_COPY = """\
def _import_artifact(artifact_uri, artifact, metadata):
    import os
    import shutil

    src = artifact_uri[len("file://"):] if artifact_uri.startswith("file://") else artifact_uri
    if "://" not in src:
        if os.path.isdir(src):
            shutil.copytree(src, artifact.path)
        else:
            shutil.copyfile(src, artifact.path)
    else:
        try:
            import fsspec
        except ImportError:
            raise RuntimeError(
                f"reading {artifact_uri} needs fsspec: pip install 'shipyard[pipelines]'"
            ) from None
        fs, path = fsspec.core.url_to_fs(artifact_uri)
        fs.get(path, artifact.path, recursive=fs.isdir(path))
    artifact.metadata.update(metadata or {})
"""


def body(uri_input: str | None = "artifact_uri", uri: str = "", metadata: Obj | None = None) -> Obj:
    """``function``, ``source`` and ``imports`` of an importer component: the URI comes from
    the input ``uri_input`` (``None``: the constant ``uri``); ``metadata`` is the artifact's,
    or, for ``dsl.importer``'s own component (``metadata is None``), an input."""
    if metadata is None:
        entry = (
            "def importer(artifact_uri: str, artifact, metadata: dict = {}):\n"
            "    _import_artifact(artifact_uri, artifact, metadata)\n"
        )
        function = "importer"
    else:
        source = repr(uri) if uri_input is None else f"kwargs[{uri_input!r}]"
        entry = (
            "def _kfp_importer(artifact, **kwargs):\n"
            f"    _import_artifact({source}, artifact, {metadata!r})\n"
        )
        function = "_kfp_importer"
    return {"function": function, "source": _COPY + "\n\n" + entry, "imports": []}
