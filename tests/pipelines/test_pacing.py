"""Pacing of large runs' reconciles (PipelineRunController.reconcile): a costly reconcile
delays the next one, unless every Pod it left running has ended meanwhile."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from shipyard.core.store import Event
from shipyard.pipelines import controller as ctl_mod
from shipyard.pipelines.controller import PipelineRunController

RUN_REF = {
    "apiVersion": "shipyard.dev/v1",
    "kind": "PipelineRun",
    "name": "big",
    "uid": "u1",
    "controller": True,
}


def ended(phase: str = "Succeeded", kind_ref: dict[str, Any] | None = None) -> Event:
    return Event(
        "MODIFIED",
        "Pod",
        "{}",
        1,
        True,
        namespace="ns",
        name="big-t",
        phase=phase,
        owner_refs=(kind_ref or RUN_REF,),
    )


@pytest.fixture
def paced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[PipelineRunController, list[int]]:
    """A controller whose every reconcile is costly (over PACE_FROM; it takes 0.3 s, which
    paces the next one for 0.3 s) and leaves 3 Pods running."""
    monkeypatch.setattr(ctl_mod, "PACE_FROM", -1.0)
    platform = SimpleNamespace(store=None, settings=SimpleNamespace(data_dir=tmp_path))
    c = PipelineRunController(platform)
    calls: list[int] = []

    def fake(namespace: str, name: str) -> float | None:
        calls.append(1)
        time.sleep(0.3)
        c._spent.running = 3
        c._seen[(namespace, name)] = {}  # the run is unfinished (finished ones leave _seen)
        return None

    monkeypatch.setattr(c, "_reconcile", fake)
    return c, calls


def test_a_costly_reconcile_delays_the_next(paced: tuple[PipelineRunController, list[int]]) -> None:
    c, calls = paced
    assert c.reconcile("ns", "big") is None
    wait = c.reconcile("ns", "big")
    assert wait is not None and wait > 0
    assert len(calls) == 1


def test_the_run_is_looked_at_once_all_its_running_pods_ended(
    paced: tuple[PipelineRunController, list[int]],
) -> None:
    c, calls = paced
    c.reconcile("ns", "big")
    assert c._pod_event(ended()) == [("ns", "big")]
    assert c._pod_event(ended("Failed")) == [("ns", "big")]
    assert c.reconcile("ns", "big") is not None  # 2 of 3 ended: still paced
    assert len(calls) == 1
    c._pod_event(ended())
    assert c.reconcile("ns", "big") is None  # all 3 ended: at once
    assert len(calls) == 2
    # the count starts again from the reconcile
    assert c.reconcile("ns", "big") is not None
    assert len(calls) == 2


def test_only_ended_pods_of_the_run_count(paced: tuple[PipelineRunController, list[int]]) -> None:
    c, calls = paced
    c.reconcile("ns", "big")
    other = {**RUN_REF, "name": "other"}
    for _ in range(5):
        assert c._pod_event(ended("Running")) == []
        c._pod_event(ended(kind_ref=other))
    assert c.reconcile("ns", "big") is not None
    assert len(calls) == 1


def test_a_finished_run_is_not_paced_nor_remembered(
    paced: tuple[PipelineRunController, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    c, calls = paced
    c.reconcile("ns", "big")
    assert ("ns", "big") in c._not_before

    def finishes(namespace: str, name: str) -> float | None:
        calls.append(1)
        time.sleep(0.3)
        c._seen.pop((namespace, name), None)  # as _write does for a finished or gone run
        return None

    monkeypatch.setattr(c, "_reconcile", finishes)
    c._pod_event(ended())
    c._pod_event(ended())
    c._pod_event(ended())
    assert c.reconcile("ns", "big") is None
    assert len(calls) == 2
    assert ("ns", "big") not in c._not_before
    assert ("ns", "big") not in c._ended
    c._pod_event(ended())  # a late Pod of the finished run is not counted
    assert ("ns", "big") not in c._ended
