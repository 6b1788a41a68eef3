"""Client mixin for the registry and tracking: register models, move aliases, resolve
``models:/`` URIs, compare runs, lineage, upload artifacts and garbage-collect the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

Obj = dict[str, Any]


class RegistryMixin:
    """Methods of :class:`shipyard.Client` for the model registry and tracking."""

    def upload_artifact(self: Any, path: str | Path) -> Obj:
        """Store a file or folder in the platform's artifact store: ``{uri, digest, size}``."""
        import tarfile
        import tempfile

        from shipyard import errors

        src = Path(path)
        if not src.exists():
            raise errors.NotFound(f"{src}: no such file or directory")
        with tempfile.TemporaryFile() as spool:
            if src.is_dir():
                with tarfile.open(fileobj=spool, mode="w") as tar:
                    for item in sorted(src.rglob("*")):
                        if item.is_file() and not item.is_symlink():
                            tar.add(item, arcname=item.relative_to(src).as_posix(), recursive=False)
            else:
                with open(src, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        spool.write(chunk)
            spool.seek(0)
            ctype = "application/x-tar" if src.is_dir() else "application/octet-stream"
            result: Obj = self._json(
                "POST",
                "/tracking/v1/artifacts",
                content=iter(lambda: spool.read(1 << 20), b""),
                headers={"content-type": ctype},
            )
        return result

    def register_model(
        self: Any,
        name: str,
        artifact_uri: str,
        *,
        namespace: str | None = None,
        format: str | None = None,
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        description: str | None = None,
        labels: dict[str, str] | None = None,
        **extra: Any,
    ) -> Obj:
        """Register ``artifact_uri`` (or a local path, uploaded first) as the next version."""
        if "://" not in artifact_uri:
            artifact_uri = self.upload_artifact(artifact_uri)["uri"]
        body: Obj = {"artifactUri": artifact_uri, **extra}
        for key, value in (
            ("format", format),
            ("metrics", metrics),
            ("description", description),
            ("labels", labels),
        ):
            if value:
                body[key] = value
        if params:
            body["params"] = {k: str(v) for k, v in params.items()}
        ns = namespace or "default"
        result: Obj = self._json(
            "POST", f"/registry/v1/namespaces/{ns}/models/{name}/versions", json=body
        )
        return result

    def set_alias(
        self: Any, model: str, alias: str, version: int | None, namespace: str | None = None
    ) -> Obj:
        """Point ``alias`` at ``version`` (None removes the alias)."""
        result: Obj = self.patch(
            "registeredmodel", model, {"spec": {"aliases": {alias: version}}}, namespace
        )
        return result

    def archive_version(
        self: Any, model: str, version: int, archived: bool = True, namespace: str | None = None
    ) -> Obj:
        result: Obj = self.patch(
            "modelversion", f"{model}-v{version}", {"spec": {"archived": archived}}, namespace
        )
        return result

    def delete_version(
        self: Any, model: str, version: int, *, force: bool = False, namespace: str | None = None
    ) -> Obj:
        """Delete a version; ``force`` even if a service serves it or an alias names it."""
        name = f"{model}-v{version}"
        if force:
            self.patch(
                "modelversion",
                name,
                {"metadata": {"annotations": {"registry.shipyard.dev/force-delete": "true"}}},
                namespace,
            )
        deleted: Obj = self.delete("modelversion", name, namespace)
        return deleted

    def resolve_model(self: Any, uri: str, namespace: str | None = None) -> Obj:
        """``{uri, modelVersion, location}`` for ``models:/NAME/N``, ``@alias`` or ``/latest``."""
        ns = namespace or "default"
        result: Obj = self._json(
            "GET", f"/registry/v1/namespaces/{ns}/resolve", params={"uri": uri}
        )
        return result

    def compare(self: Any, *runs: str, namespace: str | None = None) -> Obj:
        """Params and metrics (with histories) of runs side by side."""
        ns = namespace or "default"
        result: Obj = self._json(
            "GET", f"/tracking/v1/namespaces/{ns}/compare", params={"runs": ",".join(runs)}
        )
        return result

    def lineage(self: Any, model: str, version: int | str, namespace: str | None = None) -> Obj:
        """The lineage graph of a model version (a number, ``latest`` or an alias)."""
        ns = namespace or "default"
        result: Obj = self._json(
            "GET", f"/tracking/v1/namespaces/{ns}/lineage/models/{model}/{version}"
        )
        return result

    def gc_artifacts(self: Any, *, dry_run: bool = False, min_age: float = 600.0) -> Obj:
        """Remove artifacts nothing references (older than ``min_age`` seconds)."""
        result: Obj = self._json(
            "POST",
            "/registry/v1/gc",
            params={"dryRun": str(dry_run).lower(), "minAge": str(min_age)},
        )
        return result
