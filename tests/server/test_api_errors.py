"""Bad input over HTTP: every error is JSON ``{"error": {"code", "message", "field"}}`` with
the right status, names the field where there is one, and carries no traceback."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.client import Client

PODS = "/api/v1/namespaces/default/pods"


def good_pod(name: str = "ok") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {"name": "main", "command": ["true"], "resources": {"requests": {"cpu": "10000"}}}
            ]
        },
    }


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    c = Client.embedded(Path(tmp_path_factory.mktemp("errors")))
    try:
        with httpx.Client(base_url=c.url, timeout=30) as h:
            yield h
    finally:
        c.close()


def error_of(r: httpx.Response, status: int) -> dict[str, Any]:
    """The error body of ``r``, checked for shape, status and the absence of tracebacks."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert "Traceback" not in r.text and 'File "' not in r.text
    body = r.json()
    assert set(body) == {"error"}
    err: dict[str, Any] = body["error"]
    assert set(err) == {"code", "message", "field"}
    assert isinstance(err["message"], str) and err["message"]
    return err


def test_malformed_json_is_400(http: httpx.Client) -> None:
    err = error_of(http.post(PODS, content=b'{"apiVersion": "v1", kind'), 400)
    assert err["code"] == "BadRequest"
    assert "not valid JSON" in err["message"]


def test_non_object_and_empty_bodies_are_400(http: httpx.Client) -> None:
    assert "JSON object" in error_of(http.post(PODS, content=b"[1, 2]"), 400)["message"]
    assert "empty" in error_of(http.post(PODS, content=b"  "), 400)["message"]


def test_yaml_body_errors(http: httpx.Client) -> None:
    yaml_ct = {"content-type": "application/yaml"}
    err = error_of(http.post(PODS, content=b"kind: Pod\nmetadata: [\n", headers=yaml_ct), 400)
    assert "malformed YAML" in err["message"] and "line" in err["message"]
    two = b"kind: Pod\n---\nkind: Pod\n"
    assert "one object" in error_of(http.post(PODS, content=two, headers=yaml_ct), 400)["message"]
    err = error_of(http.post(PODS, content=b"- a\n- b\n", headers=yaml_ct), 400)
    assert "not a mapping" in err["message"]
    # A well-formed YAML body works.
    body = (
        b"apiVersion: v1\nkind: Pod\nmetadata: {name: from-yaml}\n"
        b"spec: {containers: [{name: main, command: ['true'],"
        b" resources: {requests: {cpu: '10000'}}}]}\n"
    )
    assert http.post(PODS, content=body, headers=yaml_ct).status_code == 201


def test_unknown_kind_is_404_naming_known_kinds(http: httpx.Client) -> None:
    body = {**good_pod(), "kind": "Widget"}
    err = error_of(http.post(PODS, json=body), 404)
    assert err["field"] == "kind"
    assert "Widget" in err["message"]
    assert "Pod" in err["message"] and "Namespace" in err["message"]


def test_unknown_resource_type_in_path_is_404(http: httpx.Client) -> None:
    err = error_of(http.get("/api/v1/namespaces/default/widgets"), 404)
    assert "widgets" in err["message"]
    err = error_of(http.get("/apis/nope.dev/v1/things"), 404)
    assert "things" in err["message"]


def test_unknown_field_in_spec_is_422_with_path(http: httpx.Client) -> None:
    body = good_pod("unknown-field")
    body["spec"]["containers"][0]["foo"] = "bar"
    err = error_of(http.post(PODS, json=body), 422)
    assert err["code"] == "Invalid"
    assert err["field"] == "spec.containers[0].foo"
    assert "spec.containers[0].foo" in err["message"]

    top = {**good_pod("unknown-top"), "extra": 1}
    assert error_of(http.post(PODS, json=top), 422)["field"] == "extra"


def test_missing_required_fields_are_422(http: httpx.Client) -> None:
    body = good_pod("missing")
    del body["spec"]["containers"][0]["name"]
    err = error_of(http.post(PODS, json=body), 422)
    assert err["field"] == "spec.containers[0].name"
    assert "required" in err["message"]

    nospec = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nospec"}}
    assert error_of(http.post(PODS, json=nospec), 422)["field"] == "spec.containers"

    noname = good_pod()
    noname["metadata"] = {}
    assert error_of(http.post(PODS, json=noname), 422)["field"] == "metadata.name"

    nokind = {k: v for k, v in good_pod().items() if k != "kind"}
    assert error_of(http.post(PODS, json=nokind), 422)["field"] == "kind"


def test_wrong_types_are_422_with_path(http: httpx.Client) -> None:
    body = good_pod("wrong-type")
    body["spec"]["containers"][0]["command"] = "echo hi"
    assert error_of(http.post(PODS, json=body), 422)["field"] == "spec.containers[0].command"
    body = good_pod("bad-quantity")
    body["spec"]["containers"][0]["resources"] = {"requests": {"memory": "lots"}}
    assert error_of(http.post(PODS, json=body), 422)["field"].startswith(
        "spec.containers[0].resources"
    )


@pytest.mark.parametrize("name", ["Upper", "under_score", "-lead", "trail-", "a" * 64, "dot.ted"])
def test_invalid_name_is_422_on_metadata_name(http: httpx.Client, name: str) -> None:
    body = good_pod()
    body["metadata"]["name"] = name
    err = error_of(http.post(PODS, json=body), 422)
    assert err["field"] == "metadata.name"
    assert repr(name) in err["message"]


def test_invalid_label_is_422(http: httpx.Client) -> None:
    body = good_pod("bad-label")
    body["metadata"]["labels"] = {"app": "has space"}
    assert error_of(http.post(PODS, json=body), 422)["field"].startswith("metadata.labels")


def test_unknown_route_is_404_json(http: httpx.Client) -> None:
    err = error_of(http.get("/no/such/thing"), 404)
    assert err["code"] == "NotFound"
    assert "/no/such/thing" in err["message"]


def test_wrong_method_is_405_json(http: httpx.Client) -> None:
    err = error_of(http.put(PODS, json=good_pod()), 405)
    assert err["code"] == "MethodNotAllowed"
    assert "PUT" in err["message"]
    assert "GET" in err["message"] and "POST" in err["message"]
    error_of(http.post("/healthz"), 405)


def test_put_name_mismatch_is_400(http: httpx.Client) -> None:
    created = http.post(PODS, json=good_pod("put-me")).json()
    body = copy.deepcopy(created)
    body["metadata"]["name"] = "someone-else"
    err = error_of(http.put(PODS + "/put-me", json=body), 400)
    assert err["field"] == "metadata.name"
    assert "someone-else" in err["message"]


def test_body_kind_and_namespace_must_match_the_path(http: httpx.Client) -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}
    assert error_of(http.post(PODS, json=ns), 400)["field"] == "kind"
    other = good_pod("elsewhere")
    other["metadata"]["namespace"] = "other"
    assert error_of(http.post(PODS, json=other), 400)["field"] == "metadata.namespace"


def test_missing_namespace_and_object_are_404(http: httpx.Client) -> None:
    err = error_of(http.post("/api/v1/namespaces/ghost/pods", json=good_pod()), 404)
    assert "ghost" in err["message"] and err["field"] == "metadata.namespace"
    assert "nobody" in error_of(http.get(PODS + "/nobody"), 404)["message"]
    error_of(http.delete(PODS + "/nobody"), 404)
    error_of(http.patch(PODS + "/nobody", json={"metadata": {"labels": {"a": "b"}}}), 404)


def test_bad_query_parameters_are_400(http: httpx.Client) -> None:
    assert error_of(http.get(PODS, params={"labelSelector": "a in (b"}), 400)["field"] == (
        "labelSelector"
    )
    assert error_of(http.get(PODS, params={"fieldSelector": "spec.x=1"}), 400)["field"] == (
        "fieldSelector"
    )
    assert error_of(http.get(PODS, params={"limit": "ten"}), 400)["field"] == "limit"
    assert error_of(http.get(PODS, params={"limit": "-1"}), 400)["field"] == "limit"
    assert error_of(http.get(PODS, params={"continue": "garbage"}), 400)["field"] == "continue"


def test_over_quota_is_403_naming_the_quota(http: httpx.Client) -> None:
    http.post(
        "/api/v1/namespaces",
        json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tight"}},
    )
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "tight-quota"},
        "spec": {"hard": {"pods": "1"}},
    }
    assert http.post("/api/v1/namespaces/tight/resourcequotas", json=quota).status_code == 201
    one = good_pod("one")
    one["spec"]["containers"][0]["resources"] = {}
    one["spec"]["containers"][0]["command"] = ["sleep", "30"]
    assert http.post("/api/v1/namespaces/tight/pods", json=one).status_code == 201
    two = copy.deepcopy(one)
    two["metadata"]["name"] = "two"
    err = error_of(http.post("/api/v1/namespaces/tight/pods", json=two), 403)
    assert err["code"] == "Forbidden"
    assert "tight-quota" in err["message"]
    http.delete("/api/v1/namespaces/tight/pods/one")
