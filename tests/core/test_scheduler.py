"""The scheduler: capacity, Pending reasons, GPUs and gang admission, first on the
:class:`Scheduler` itself, then through an embedded platform with a fixed capacity
(``SHIPYARD_CPU=2``)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.client import Client
from shipyard.core.scheduler import GANG_LABEL, GANG_SIZE, Capacity, Scheduler, detect_capacity
from waiting import wait_until

Obj = dict[str, Any]


def spod(name: str, cpu: str | None = None, gpus: int = 0, memory: str | None = None) -> Obj:
    requests: Obj = {}
    if cpu:
        requests["cpu"] = cpu
    if memory:
        requests["memory"] = memory
    limits: Obj = {"nvidia.com/gpu": gpus} if gpus else {}
    return {
        "metadata": {"name": name, "namespace": "default", "uid": str(uuid.uuid4())},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "command": ["true"],
                    "resources": {"requests": requests, **({"limits": limits} if limits else {})},
                }
            ]
        },
    }


# -- unit ---------------------------------------------------------------------------------


def test_capacity_overrides_and_gpu_ids() -> None:
    cap = detect_capacity(cpu=2, memory=2**30, gpus=3)
    assert (cap.cpu, cap.memory, cap.gpus) == (2, 2**30, ("0", "1", "2"))
    assert detect_capacity().cpu >= 1


def test_never_fits_names_capacity_and_temporarily_full_names_free() -> None:
    s = Scheduler(Capacity(cpu=2, memory=2**30))
    big = s.admit(spod("big", cpu="4"))
    assert not big.admitted
    assert big.reason == "Unschedulable"
    assert big.message == "insufficient cpu: requested 4, capacity 2"
    assert s.admit(spod("a", cpu="1500m")).admitted
    full = s.admit(spod("b", cpu="1"))
    assert not full.admitted
    assert full.message == "insufficient cpu: requested 1, free 500m"
    mem = s.admit(spod("m", memory="2Gi"))
    assert "insufficient memory" in mem.message and "capacity" in mem.message


def test_release_wakes_pending_pods_that_now_fit() -> None:
    s = Scheduler(Capacity(cpu=2, memory=2**30))
    woken: list[tuple[str, str]] = []
    s.wake = lambda ns, name: woken.append((ns, name))
    running = spod("running", cpu="2")
    assert s.admit(running).admitted
    waiting = spod("waiting", cpu="1")
    assert not s.admit(waiting).admitted
    s.release(running["metadata"]["uid"])
    assert woken == [("default", "waiting")]
    assert s.admit(waiting).admitted
    assert s.used()["cpu"] == 1


def test_a_release_wakes_each_pending_pod_once_until_it_has_tried_again() -> None:
    # Only Pod slots are short (as in a burst of more Pods than the node's 110): each release
    # wakes the next waiting Pod, not every waiting Pod, and not one already woken.
    s = Scheduler(Capacity(cpu=64, memory=2**40, pods=2))
    woken: list[str] = []
    s.wake = lambda ns, name: woken.append(name)
    a, b = spod("a"), spod("b")
    assert s.admit(a).admitted and s.admit(b).admitted
    waiting = [spod(f"w{i}") for i in range(4)]
    for w in waiting:
        assert not s.admit(w).admitted
    s.release(a["metadata"]["uid"])
    assert woken == ["w0"]
    s.release(b["metadata"]["uid"])
    assert woken == ["w0", "w1"]
    # w1 tries and fits; a newcomer takes the last slot before w0 tries: w0 waits again and
    # the next release wakes it (it is first in line) rather than forgetting it.
    assert s.admit(waiting[1]).admitted
    newcomer = spod("new")
    assert s.admit(newcomer).admitted
    assert not s.admit(waiting[0]).admitted
    s.release(newcomer["metadata"]["uid"])
    assert woken == ["w0", "w1", "w0"]
    assert s.used()["pods"] == 1
    s.release(waiting[1]["metadata"]["uid"])
    assert woken == ["w0", "w1", "w0", "w2"]
    assert s.used()["pods"] == 0


def test_admit_is_idempotent_and_release_frees() -> None:
    s = Scheduler(Capacity(cpu=2, memory=2**30))
    p = spod("p", cpu="2")
    assert s.admit(p).admitted
    assert s.admit(p).admitted  # again: still admitted, not counted twice
    assert s.used()["cpu"] == 2
    s.release(p["metadata"]["uid"])
    assert s.used()["cpu"] == 0
    assert not s.is_admitted(p["metadata"]["uid"])


def test_gpus_are_assigned_distinct_ids_and_come_back() -> None:
    s = Scheduler(Capacity(cpu=8, memory=2**34, gpus=("0", "1", "2")))
    a, b = spod("a", gpus=2), spod("b", gpus=1)
    da, db = s.admit(a), s.admit(b)
    assert da.gpus == ("0", "1") and db.gpus == ("2",)
    dc = s.admit(spod("c", gpus=1))
    assert not dc.admitted and "insufficient nvidia.com/gpu: requested 1, free 0" in dc.message
    s.release(a["metadata"]["uid"])
    assert s.admit(spod("d", gpus=2)).gpus == ("0", "1")


def test_restore_counts_pods_admitted_before_a_restart() -> None:
    s = Scheduler(Capacity(cpu=2, memory=2**30, gpus=("0", "1")))
    old = spod("old", cpu="2", gpus=1)
    old["status"] = {"assignedGPUs": ["1"]}
    s.restore(old)
    assert s.used()["cpu"] == 2
    assert not s.admit(spod("new", cpu="1")).admitted
    assert s.assigned_gpus(old["metadata"]["uid"]) == ("1",)


def test_gang_is_admitted_all_or_nothing() -> None:
    s = Scheduler(Capacity(cpu=2, memory=2**30))
    members = [spod(f"w{i}", cpu="1500m") for i in range(2)]
    d = s.admit(members[0], members)
    assert not d.admitted
    assert d.message.startswith("gang of 2 pods: insufficient cpu")
    assert s.used()["cpu"] == 0  # nothing of the gang holds capacity
    fitting = [spod(f"f{i}", cpu="1") for i in range(2)]
    d = s.admit(fitting[0], fitting)
    assert d.admitted
    assert d.also_admitted == [("default", "f1")]
    assert s.is_admitted(fitting[1]["metadata"]["uid"])
    assert s.used()["cpu"] == 2


# -- through the platform -----------------------------------------------------------------


@pytest.fixture
def cpu2(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    monkeypatch.setenv("SHIPYARD_CPU", "2")
    monkeypatch.setenv("SHIPYARD_RESTART_BACKOFF", "0.05")
    c = Client.embedded(data_dir)
    try:
        yield c
    finally:
        c.close()


def pod(name: str, cpu: str, *, gang: str | None = None, size: int = 2) -> Obj:
    md: Obj = {"name": name}
    if gang:
        md["labels"] = {GANG_LABEL: gang}
        md["annotations"] = {GANG_SIZE: str(size)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": md,
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "command": ["sleep", "60"],
                    "resources": {"requests": {"cpu": cpu}},
                }
            ],
        },
    }


def scheduled(obj: Obj) -> Obj:
    conds = [c for c in (obj.get("status") or {}).get("conditions") or []]
    found = [c for c in conds if c["type"] == "PodScheduled"]
    assert found, f"no PodScheduled condition: {obj.get('status')}"
    cond: Obj = found[0]
    return cond


def unschedulable(c: Client, name: str) -> bool:
    return bool(scheduled(c.get("pod", name))["reason"] == "Unschedulable")


def test_pod_that_never_fits_stays_pending_with_capacity_reason(cpu2: Client) -> None:
    cpu2.apply(pod("huge", "4"))
    obj = cpu2.wait("pod", "huge", condition="PodScheduled=False", timeout=30)
    assert obj is not None
    assert obj["status"]["phase"] == "Pending"
    cond = scheduled(obj)
    assert cond["reason"] == "Unschedulable"
    assert cond["message"] == "insufficient cpu: requested 4, capacity 2"
    assert not obj["status"].get("containerStatuses")


def test_pending_pod_starts_once_capacity_frees(cpu2: Client) -> None:
    cpu2.apply(pod("first", "2"))
    cpu2.wait("pod", "first", phase="Running", timeout=30)
    cpu2.apply(pod("second", "1"))
    obj = cpu2.wait("pod", "second", condition="PodScheduled=False", timeout=30)
    assert obj is not None
    assert scheduled(obj)["message"] == "insufficient cpu: requested 1, free 0"
    cpu2.delete("pod", "first")
    obj = cpu2.wait("pod", "second", phase="Running", timeout=30)
    assert obj is not None
    assert scheduled(obj)["status"] == "True"


def test_finished_pod_frees_its_capacity(cpu2: Client, tmp_path: Path) -> None:
    """A Pending Pod is admitted as soon as a finished one gives back its capacity. (The
    first Pod is admitted before the second is applied: two Pods applied together may be
    admitted in either order, as the Pod controller has more than one worker.)"""
    gate = tmp_path / "gate"
    first = pod("first", "2")
    first["spec"]["containers"][0]["command"] = [
        "sh",
        "-c",
        f"while [ ! -e {gate} ]; do sleep 0.02; done",
    ]
    cpu2.apply(first)
    cpu2.wait("pod", "first", phase="Running", timeout=30)
    cpu2.apply(pod("after", "2"))
    obj = cpu2.wait("pod", "after", condition="PodScheduled=False", timeout=30)
    assert obj is not None and obj["status"]["phase"] == "Pending"
    gate.touch()
    cpu2.wait("pod", "first", phase="Succeeded", timeout=30)
    cpu2.wait("pod", "after", phase="Running", timeout=30)


def test_gang_waits_for_all_members_then_starts_together(cpu2: Client) -> None:
    cpu2.apply(pod("w0", "1", gang="g"))
    obj = cpu2.wait("pod", "w0", condition="PodScheduled=False", timeout=30)
    assert obj is not None
    cond = scheduled(obj)
    assert cond["reason"] == "WaitingForGang"
    assert "1 of 2" in cond["message"]
    assert obj["status"]["phase"] == "Pending"
    cpu2.apply(pod("w1", "1", gang="g"))
    for name in ("w0", "w1"):
        cpu2.wait("pod", name, phase="Running", timeout=30)


def test_gang_that_does_not_fit_starts_none(cpu2: Client) -> None:
    cpu2.apply([pod("big0", "1500m", gang="big"), pod("big1", "1500m", gang="big")])
    for name in ("big0", "big1"):
        obj = cpu2.wait("pod", name, condition="PodScheduled=False", timeout=30)
        assert obj is not None
        wait_until(functools.partial(unschedulable, cpu2, name), what=f"{name} Unschedulable")
    # Nothing of the gang started, and nothing holds capacity: a 2-cpu Pod still fits.
    for name in ("big0", "big1"):
        obj = cpu2.get("pod", name)
        assert obj["status"]["phase"] == "Pending"
        assert not obj["status"].get("containerStatuses")
        assert scheduled(obj)["message"].startswith("gang of 2 pods: insufficient cpu")
    cpu2.apply(pod("solo", "2"))
    cpu2.wait("pod", "solo", phase="Running", timeout=30)


def test_gang_refused_as_a_whole_shows_the_same_reason_on_every_member(cpu2: Client) -> None:
    cpu2.apply(pod("g0", "1500m", gang="late"))
    obj = cpu2.wait("pod", "g0", condition="PodScheduled=False", timeout=30)
    assert obj is not None and scheduled(obj)["reason"] == "WaitingForGang"
    cpu2.apply(pod("g1", "1500m", gang="late"))
    wait_until(
        lambda: scheduled(cpu2.get("pod", "g0"))["reason"] == "Unschedulable",
        what="the first member to stop saying it waits for its pods",
    )


def test_invalid_gang_size_is_refused(cpu2: Client) -> None:
    from shipyard import errors

    bad = pod("bad", "1", gang="x")
    bad["metadata"]["annotations"][GANG_SIZE] = "two"
    with pytest.raises(errors.Invalid) as exc:
        cpu2.apply(bad)
    assert "gang-size" in str(exc.value)
