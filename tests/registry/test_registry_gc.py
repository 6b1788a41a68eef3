"""Artifact upload/download over HTTP, path escapes, and `shipyard gc`."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import httpx
import pytest

from platform_fixtures import shipyard_cmd
from shipyard import errors
from shipyard.client import Client


def test_upload_folder_and_download_members(client: Client, tmp_path: Path) -> None:
    d = tmp_path / "model"
    (d / "sub").mkdir(parents=True)
    (d / "model.joblib").write_bytes(b"joblib bytes")
    (d / "sub" / "cfg.json").write_text("{}")
    stored = client.upload_artifact(d)
    assert stored["isDir"] and stored["uri"].startswith("artifact://sha256/")
    assert client.upload_artifact(d)["uri"] == stored["uri"]  # content-addressed
    hexd = stored["uri"].rsplit("/", 1)[-1]
    r = httpx.get(f"{client.url}/tracking/v1/artifacts/{hexd}", params={"member": "sub/cfg.json"})
    assert r.status_code == 200 and r.content == b"{}"
    f = client.upload_artifact(d / "model.joblib")
    r = httpx.get(f"{client.url}/tracking/v1/artifacts/{f['uri'].rsplit('/', 1)[-1]}")
    assert r.content == b"joblib bytes"
    bad = httpx.get(f"{client.url}/tracking/v1/artifacts/{hexd}", params={"member": "../x"})
    assert bad.status_code == 400 and "'..'" in bad.json()["error"]["message"]
    missing = httpx.get(f"{client.url}/tracking/v1/artifacts/{'0' * 64}")
    assert missing.status_code == 404
    assert httpx.get(f"{client.url}/tracking/v1/artifacts/nothex").status_code == 400


@pytest.mark.parametrize("member", ["../escaped.txt", "/tmp/abs-escape.txt"])
def test_uploaded_tar_cannot_escape(client: Client, member: str) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(member)
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    r = httpx.post(
        f"{client.url}/tracking/v1/artifacts",
        content=buf.getvalue(),
        headers={"content-type": "application/x-tar"},
    )
    assert r.status_code == 400, r.text
    assert "the uploaded folder is refused" in r.json()["error"]["message"]
    assert member in r.json()["error"]["message"]
    data = client.platform.settings.data_dir
    assert not list(data.parent.rglob("escaped.txt"))
    assert not Path("/tmp/abs-escape.txt").exists()


def test_gc_keeps_what_resources_reference(
    client: Client, cli_env: dict[str, str], tmp_path: Path
) -> None:
    files = {}
    for name in ("kept", "orphan"):
        f = tmp_path / name
        f.write_bytes(name.encode())
        files[name] = client.upload_artifact(f)["uri"]
    client.register_model("m", files["kept"])
    # An annotation counts as a reference too: any resource naming an artifact keeps it.
    pod_ref = client.upload_artifact(_write(tmp_path / "p", b"pod"))["uri"]
    client.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "refs"},
            "data": {"input": pod_ref},
        }
    )
    store = client.platform.artifacts
    dry = subprocess.run(
        [*shipyard_cmd(), "gc", "--dry-run", "--min-age", "0s"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dry.returncode == 0, dry.stderr
    assert f"would remove {files['orphan']}" in dry.stdout
    assert "would remove 1 artifacts" in dry.stdout
    assert store.exists(files["orphan"])
    # Young artifacts are protected by --min-age (default 10m).
    assert client.gc_artifacts()["removed"] == []
    done = subprocess.run(
        [*shipyard_cmd(), "gc", "--min-age", "0s"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "removed 1 artifacts" in done.stdout
    assert not store.exists(files["orphan"])
    assert store.exists(files["kept"]) and store.exists(pod_ref)
    with pytest.raises(errors.BadRequest, match="minAge"):
        client._json("POST", "/registry/v1/gc", params={"minAge": "-1"})


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
