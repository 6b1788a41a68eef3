"""Resource validation (names, unknown fields with their path, Pod rules, labels) and label
selectors (parsing and matching), on the functions themselves."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.core import selectors
from shipyard.core.resource import validate_object
from shipyard.errors import BadRequest, Invalid
from shipyard.pods.api import POD
from shipyard.tenancy.api import NAMESPACE, RESOURCE_QUOTA

Obj = dict[str, Any]


def pod(name: str = "ok", **spec: Any) -> Obj:
    body: Obj = {"containers": [{"name": "main", "command": ["true"]}], **spec}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": body}


def invalid(obj: Obj, info: Any = POD) -> Invalid:
    with pytest.raises(Invalid) as exc:
        validate_object(info, obj)
    return exc.value


@pytest.mark.parametrize("name", ["a", "web-1", "0abc", "a" * 63])
def test_dns1123_names_are_accepted(name: str) -> None:
    assert validate_object(POD, pod(name))["metadata"]["name"] == name


@pytest.mark.parametrize("name", ["Web", "web_1", "-web", "web-", "a.b", "a" * 64, "ü"])
def test_names_that_are_not_dns1123_labels_are_refused(name: str) -> None:
    err = invalid(pod(name))
    assert err.field == "metadata.name"
    assert repr(name) in err.message


def test_missing_name_and_bad_namespace_are_refused() -> None:
    nameless = pod()
    del nameless["metadata"]["name"]
    assert invalid(nameless).field == "metadata.name"
    bad_ns = pod()
    bad_ns["metadata"]["namespace"] = "Team_A"
    assert invalid(bad_ns).field == "metadata.namespace"


def test_unknown_fields_are_refused_with_their_path() -> None:
    typo = pod()
    typo["spec"]["containers"][0]["comand"] = ["true"]
    err = invalid(typo)
    assert err.field == "spec.containers[0].comand"
    top = pod()
    top["specification"] = {}
    assert invalid(top).field == "specification"
    meta = pod()
    meta["metadata"]["lables"] = {"a": "b"}
    assert invalid(meta).field == "metadata.lables"
    spec = pod(restartPolicyy="Never")
    assert invalid(spec).field == "spec.restartPolicyy"


def test_wrong_types_and_enum_values_name_the_field() -> None:
    assert invalid(pod(restartPolicy="Sometimes")).field == "spec.restartPolicy"
    assert invalid(pod(activeDeadlineSeconds=0)).field == "spec.activeDeadlineSeconds"
    no_containers = pod()
    no_containers["spec"]["containers"] = []
    assert invalid(no_containers).field == "spec.containers"
    env = pod()
    env["spec"]["containers"][0]["env"] = [{"name": "N", "value": 3}]
    err = invalid(env)
    assert err.field == "spec.containers[0].env[0].value"
    assert "quote" in err.message


def test_pod_rules_duplicate_containers_and_requests_above_limits() -> None:
    dup = pod()
    dup["spec"]["initContainers"] = [{"name": "main", "command": ["true"]}]
    assert invalid(dup).field == "spec.containers[0].name"
    over = pod()
    over["spec"]["containers"][0]["resources"] = {
        "requests": {"memory": "2Gi"},
        "limits": {"memory": "1Gi"},
    }
    err = invalid(over)
    assert err.field == "spec.containers[0].resources.requests.memory"
    bad_qty = pod()
    bad_qty["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "lots"}}
    assert "lots" in invalid(bad_qty).message


def test_labels_must_be_valid() -> None:
    bad_value = pod()
    bad_value["metadata"]["labels"] = {"app": "has space"}
    assert invalid(bad_value).field == "metadata.labels"
    bad_prefix = pod()
    bad_prefix["metadata"]["labels"] = {"Bad_Prefix/app": "x"}
    assert "prefix" in invalid(bad_prefix).message
    good = pod()
    good["metadata"]["labels"] = {"shipyard.dev/gang": "g-1", "app.kubernetes.io/name": "x"}
    assert validate_object(POD, good)["metadata"]["labels"] == good["metadata"]["labels"]


def test_other_shared_kinds_validate() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
    assert validate_object(NAMESPACE, ns)["metadata"]["name"] == "team-a"
    q = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q"},
        "spec": {"hard": {"requests.cpu": "x"}},
    }
    assert invalid(q, RESOURCE_QUOTA).field.startswith("spec.hard")  # type: ignore[union-attr]


# -- label selectors --------------------------------------------------------------------------


def labels_obj(**labels: str) -> Obj:
    return {"metadata": {"labels": labels}}


def match(selector: str, **labels: str) -> bool:
    return selectors.matches(selectors.parse(selector), labels_obj(**labels))


def test_selector_parsing() -> None:
    reqs = selectors.parse("a=b,c!=d,e in (x, y),f notin (z),g,!h,i==j")
    assert [(r.key, r.op, r.values) for r in reqs] == [
        ("a", "in", ("b",)),
        ("c", "notin", ("d",)),
        ("e", "in", ("x", "y")),
        ("f", "notin", ("z",)),
        ("g", "exists", ()),
        ("h", "!exists", ()),
        ("i", "in", ("j",)),
    ]
    assert selectors.parse("") == []
    assert selectors.parse(None) == []


def test_selector_matching() -> None:
    assert match("app=web", app="web")
    assert not match("app=web", app="db")
    assert not match("app=web")
    assert match("tier!=db", tier="web")
    assert match("tier!=db")  # != also matches objects without the label, as in Kubernetes
    assert match("env in (prod,staging)", env="staging")
    assert not match("env in (prod,staging)", env="dev")
    assert not match("env in (prod)")
    assert match("env notin (prod)", env="dev")
    assert match("env notin (prod)")
    assert not match("env notin (prod)", env="prod")
    assert match("gpu", gpu="")
    assert not match("gpu")
    assert match("!gpu")
    assert not match("!gpu", gpu="a100")
    assert match("app=web,env in (prod),!debug", app="web", env="prod")
    assert not match("app=web,env in (prod),!debug", app="web", env="prod", debug="1")


@pytest.mark.parametrize("bad", ["a=b=c", "a in b", "a in (b", "=b", "a!b"])
def test_bad_selectors_are_400_naming_the_part(bad: str) -> None:
    with pytest.raises(BadRequest) as exc:
        selectors.parse(bad)
    assert exc.value.field == "labelSelector"
