"""Registered models and versions through the client (HTTP to an embedded platform)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from shipyard import errors
from shipyard.client import Client


def _artifact(client: Client, tmp_path: Path, content: bytes = b"weights") -> str:
    f = tmp_path / f"m-{len(content)}-{content[:4].hex()}.bin"
    f.write_bytes(content)
    uri: str = client.upload_artifact(f)["uri"]
    return uri


def _isvc(name: str, uri: str) -> dict[str, Any]:
    # minReplicas 0: the service exists (and references the model) without starting replicas.
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "predictor": {
                "minReplicas": 0,
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri},
            }
        },
    }


def test_versions_are_numbered_and_carry_what_was_registered(
    client: Client, tmp_path: Path
) -> None:
    uri = _artifact(client, tmp_path)
    v1 = client.register_model(
        "iris",
        uri,
        format="sklearn",
        metrics={"acc": 0.9},
        params={"C": 1.0},
        description="first",
    )
    v2 = client.register_model("iris", str(tmp_path / "m-7-77656967.bin"))  # a local path
    assert (v1["metadata"]["name"], v1["spec"]["version"]) == ("iris-v1", 1)
    assert (v2["metadata"]["name"], v2["spec"]["version"]) == ("iris-v2", 2)
    assert v1["spec"]["metrics"] == {"acc": 0.9} and v1["spec"]["params"] == {"C": "1.0"}
    assert v2["spec"]["artifactUri"] == uri  # same bytes, same content address
    rm = client.get("registeredmodel", "iris")
    assert rm["kind"] == "RegisteredModel"
    names = {
        v["metadata"]["name"]
        for v in client.list("modelversions", selector="registry.shipyard.dev/model=iris")
    }
    assert names == {"iris-v1", "iris-v2"}
    client.wait("registeredmodel", "iris", jsonpath="{.status.latestVersion}=2", timeout=10)


def test_concurrent_registrations_get_distinct_numbers(client: Client, tmp_path: Path) -> None:
    uri = _artifact(client, tmp_path)
    got: list[int] = []
    failures: list[BaseException] = []

    def register() -> None:
        try:
            with Client(client.url) as c:
                got.append(c.register_model("race", uri)["spec"]["version"])
        except BaseException as exc:  # reported by the assert below
            failures.append(exc)

    threads = [threading.Thread(target=register) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert sorted(got) == list(range(1, 9))


def test_aliases_move_and_resolve(client: Client, tmp_path: Path) -> None:
    uri1 = _artifact(client, tmp_path, b"one")
    uri2 = _artifact(client, tmp_path, b"two")
    client.register_model("m", uri1)
    client.register_model("m", uri2)
    client.set_alias("m", "production", 1)
    r = client.resolve_model("models:/m@production")
    assert r["modelVersion"]["metadata"]["name"] == "m-v1"
    assert Path(r["location"]).read_bytes() == b"one"
    client.set_alias("m", "production", 2)
    assert client.resolve_model("models:/m@production")["modelVersion"]["spec"]["version"] == 2
    assert client.resolve_model("models:/m/1")["modelVersion"]["spec"]["artifactUri"] == uri1
    assert client.resolve_model("models:/default/m/latest")["modelVersion"]["spec"]["version"] == 2
    client.wait("modelversion", "m-v2", jsonpath="{.status.aliases[0]}=production", timeout=10)
    client.set_alias("m", "production", None)
    with pytest.raises(errors.NotFound, match="no alias 'production'"):
        client.resolve_model("models:/m@production")


def test_bad_input_is_a_4xx_naming_what_and_why(client: Client, tmp_path: Path) -> None:
    uri = _artifact(client, tmp_path)
    client.register_model("m", uri)
    missing = "artifact://sha256/" + "0" * 64
    with pytest.raises(errors.NotFound, match="is not in the artifact store") as e1:
        client.register_model("m", missing)
    assert e1.value.field == "spec.artifactUri"
    with pytest.raises(errors.Invalid, match="not an artifact URI"):
        client.register_model("m", "artifact://sha256/../../etc/passwd")
    with pytest.raises(
        errors.NotFound, match=r"alias 'production' points at version 7.*versions: 1"
    ):
        client.set_alias("m", "production", 7)
    with pytest.raises(errors.Invalid, match="alias 'Bad Alias'"):
        client.set_alias("m", "Bad Alias", 1)
    with pytest.raises(errors.NotFound, match=r"no version 9 \(versions: 1"):
        client.resolve_model("models:/m/9")
    with pytest.raises(errors.NotFound, match="no registered model 'nope'"):
        client.resolve_model("models:/nope/1")
    with pytest.raises(errors.Invalid, match="not a valid model URI"):
        client.resolve_model("models:/m/zero")
    # A version written by hand must be named <model>-v<N>, and its artifact cannot change.
    mv = {
        "apiVersion": "shipyard.dev/v1",
        "kind": "ModelVersion",
        "metadata": {"name": "whatever"},
        "spec": {"modelName": "m", "artifactUri": uri},
    }
    with pytest.raises(errors.Invalid, match="name it m-v<N>"):
        client.apply(mv)
    mv["metadata"]["name"] = "m-v5"
    assert client.apply(mv)["spec"]["version"] == 5
    with pytest.raises(errors.Invalid, match="artifactUri cannot change"):
        client.patch("modelversion", "m-v5", {"spec": {"artifactUri": missing}})
    mv["metadata"]["name"], mv["spec"]["modelName"] = "ghost-v1", "ghost"
    with pytest.raises(errors.NotFound, match="registered model 'ghost' not found"):
        client.apply(mv)


def test_archive_and_latest(client: Client, tmp_path: Path) -> None:
    uri = _artifact(client, tmp_path)
    client.register_model("m", uri)
    client.register_model("m", uri)
    client.set_alias("m", "staging", 2)
    with pytest.raises(errors.Conflict, match="alias staging points at it"):
        client.archive_version("m", 2)
    client.set_alias("m", "staging", 1)
    client.archive_version("m", 2)
    assert client.resolve_model("models:/m/latest")["modelVersion"]["spec"]["version"] == 1
    with pytest.raises(errors.Invalid, match="archived"):
        client.set_alias("m", "production", 2)
    client.wait("registeredmodel", "m", jsonpath="{.status.archivedVersions}=1", timeout=10)


def test_served_versions_are_not_deleted_unless_forced(client: Client, tmp_path: Path) -> None:
    uri = _artifact(client, tmp_path)
    client.register_model("m", uri)
    client.register_model("m", uri)
    client.set_alias("m", "production", 1)
    with pytest.raises(errors.Invalid, match=r"storageUri models:/m@canary: .*no alias 'canary'"):
        client.apply(_isvc("bad", "models:/m@canary"))
    client.apply(_isvc("web", "models:/m@production"))
    client.wait("modelversion", "m-v1", jsonpath="{.status.servedBy[0]}=web", timeout=10)
    with pytest.raises(errors.Conflict, match="served by inferenceservice web"):
        client.delete_version("m", 1)
    with pytest.raises(errors.Conflict, match="served by inferenceservice web"):
        client.delete("registeredmodel", "m")
    client.delete_version("m", 2)  # not served, no alias
    client.delete_version("m", 1, force=True)
    with pytest.raises(errors.NotFound):
        client.get("modelversion", "m-v1")
    with pytest.raises(errors.NotFound, match="no longer exists; move the alias"):
        client.resolve_model("models:/m@production")
