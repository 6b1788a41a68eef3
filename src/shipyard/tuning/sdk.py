"""``Client.tune``: hyperparameter tuning of a Python function, each trial its own process.

In the spirit of Katib's ``tune()``: the function's source travels in the trial Pod's
environment and runs under ``python -m shipyard.tuning.function_trial``; it takes a dict of
parameters and returns the objective (or a dict of metrics), or calls
``shipyard.report_metrics`` itself. It must import what it uses inside its body.
"""

from __future__ import annotations

import inspect
import json
import re
import secrets
import textwrap
import time
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]

_DONE = ("Succeeded", "Failed")
_PRINTABLE = re.compile(r"[^\s=]+")  # metric names a printed result line can carry


def _cond(obj: Obj, ctype: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype and c.get("status") == "True":
            return dict(c)
    return None


def experiment_finished(obj: Obj) -> bool:
    return any(_cond(obj, c) for c in _DONE)


def function_source(fn: Callable[..., Any]) -> str:
    if getattr(fn, "__name__", "<lambda>") == "<lambda>":
        raise ValueError("tune() needs a function defined with def (a lambda has no source)")
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise ValueError(f"tune() cannot read the source of {fn!r}: {exc}") from None
    lines = source.splitlines()
    while lines and lines[0].lstrip().startswith("@"):
        lines.pop(0)  # decorators are not available in the trial process
    return "\n".join(lines) + "\n"


def build_experiment(
    fn: Callable[..., Any],
    *,
    name: str,
    parameters: dict[str, Obj],
    objective: str | Obj,
    direction: str,
    goal: float | None,
    algorithm: str | Obj,
    algorithm_settings: dict[str, Any] | None,
    max_trials: int,
    parallel_trials: int,
    max_failed_trials: int | None,
    early_stopping: Obj | None,
    warm: str | None,
) -> Obj:
    from shipyard.tuning.function_trial import RESULT_FORMAT
    from shipyard.tuning.templates import imports_of

    source = function_source(fn)
    if isinstance(objective, str):
        objective = {"type": direction, "objectiveMetricName": objective}
    if goal is not None:
        objective = {**objective, "goal": goal}
    if isinstance(algorithm, str):
        algorithm = {"algorithmName": algorithm}
    if algorithm_settings:
        algorithm = {
            **algorithm,
            "algorithmSettings": [
                {"name": k, "value": str(v)} for k, v in algorithm_settings.items()
            ],
        }
    params = [{"name": n, **spec} for n, spec in parameters.items()]
    types = {p["name"]: p.get("parameterType") for p in params}
    metric_names = [
        objective["objectiveMetricName"],
        *(objective.get("additionalMetricNames") or []),
    ]
    # A function that never calls report_metrics has its returned value printed to its log
    # (StdOut, only the result's lines) rather than pushed: no HTTP round trip per trial.
    printed = "report_metrics" not in source and all(
        _PRINTABLE.fullmatch(str(n)) for n in metric_names
    )
    collector: Obj = (
        {"collector": {"kind": "StdOut"}, "source": {"filter": {"metricsFormat": [RESULT_FORMAT]}}}
        if printed
        else {"collector": {"kind": "Push"}}
    )
    container = {
        "name": "trial",
        "image": "python",
        "command": ["python", "-m", "shipyard.tuning.function_trial"],
        "args": [f"{n}=${{trialParameters.{n}}}" for n in parameters],
        "env": [
            {"name": "SHIPYARD_TRIAL_FUNCTION", "value": source},
            {"name": "SHIPYARD_TRIAL_FUNCTION_NAME", "value": fn.__name__},
            {"name": "SHIPYARD_TRIAL_OBJECTIVE", "value": objective["objectiveMetricName"]},
            {"name": "SHIPYARD_TRIAL_TYPES", "value": json.dumps(types)},
            *([{"name": "SHIPYARD_TRIAL_RESULT", "value": "stdout"}] if printed else []),
        ],
    }
    spec: Obj = {
        "objective": objective,
        "algorithm": algorithm,
        "parameters": params,
        "maxTrialCount": max_trials,
        "parallelTrialCount": parallel_trials,
        "metricsCollectorSpec": collector,
        "trialTemplate": {
            "primaryContainerName": "trial",
            "trialParameters": [{"name": n, "reference": n} for n in parameters],
            "trialSpec": {
                "apiVersion": "v1",
                "kind": "Pod",
                "spec": {"restartPolicy": "Never", "containers": [container]},
            },
        },
    }
    if max_failed_trials is not None:
        spec["maxFailedTrialCount"] = max_failed_trials
    if early_stopping:
        spec["earlyStopping"] = early_stopping
    preload = warm if warm is not None else ",".join(imports_of(source))
    return {
        "apiVersion": "shipyard.dev/v1",
        "kind": "Experiment",
        "metadata": {"name": name, "annotations": {"shipyard.dev/warm": preload}},
        "spec": spec,
    }


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")[:40] or "fn"


class TuningMixin:
    """Client methods for tuning (mixed into :class:`shipyard.Client`)."""

    def tune(
        self,
        objective_fn: Callable[..., Any],
        *,
        parameters: dict[str, Obj],
        objective: str | Obj = "objective",
        direction: str = "maximize",
        goal: float | None = None,
        algorithm: str | Obj = "tpe",
        algorithm_settings: dict[str, Any] | None = None,
        max_trials: int = 10,
        parallel_trials: int = 1,
        max_failed_trials: int | None = None,
        early_stopping: Obj | None = None,
        name: str | None = None,
        namespace: str | None = None,
        warm: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
        progress: bool = False,
    ) -> Obj:
        """Create an Experiment tuning ``objective_fn`` and (by default) wait for it.

        ``parameters`` maps names to specs from :mod:`shipyard.tuning.search`
        (``search.double(0.01, 0.5, distribution="logUniform")``). Returns the experiment
        (its ``status.currentOptimalTrial`` holds the best assignment).
        """
        exp = build_experiment(
            objective_fn,
            name=name or f"tune-{_slug(objective_fn.__name__)}-{secrets.token_hex(3)}",
            parameters=parameters,
            objective=objective,
            direction=direction,
            goal=goal,
            algorithm=algorithm,
            algorithm_settings=algorithm_settings,
            max_trials=max_trials,
            parallel_trials=parallel_trials,
            max_failed_trials=max_failed_trials,
            early_stopping=early_stopping,
            warm=warm,
        )
        created: Obj = self.create(exp, namespace)  # type: ignore[attr-defined]
        if not wait:
            return created
        return self.wait_experiment(
            created["metadata"]["name"], namespace=namespace, timeout=timeout, progress=progress
        )

    def wait_experiment(
        self,
        name: str,
        *,
        namespace: str | None = None,
        timeout: float | None = None,
        progress: bool = False,
    ) -> Obj:
        """Block until the experiment succeeds or fails; optionally show a progress bar.

        One GET, then the watch's own events: each carries the experiment, so nothing is
        fetched again per change (an experiment changes a few times per trial)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = _Progress(name) if progress else None
        try:
            obj: Obj = self.get("experiment", name, namespace)  # type: ignore[attr-defined]
            while True:
                if bar is not None:
                    bar.update(obj)
                if experiment_finished(obj):
                    return obj
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"experiment {name} did not finish in {timeout}s")
                for event in self.watch(  # type: ignore[attr-defined]
                    "experiment",
                    namespace,
                    name=name,
                    resource_version=obj["metadata"]["resourceVersion"],
                    timeout=min(left or 5.0, 5.0),
                ):
                    if event["type"] == "DELETED":
                        break
                    seen: Obj = event["object"]
                    if bar is not None:
                        bar.update(seen)
                    if experiment_finished(seen):
                        return seen
                # The stream ended (its timeout) or the experiment was deleted: read it
                # afresh (NotFound if it is gone, the new one if it was recreated).
                obj = self.get("experiment", name, namespace)  # type: ignore[attr-defined]
        finally:
            if bar is not None:
                bar.close()


class _Progress:
    def __init__(self, name: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[best]}"),
            TimeElapsedColumn(),
        )
        self.task = self.progress.add_task(name, total=None, best="")
        self.progress.start()

    def update(self, obj: Obj) -> None:
        s = obj.get("status") or {}
        done = sum(
            int(s.get(k) or 0)
            for k in (
                "trialsSucceeded",
                "trialsFailed",
                "trialsKilled",
                "trialsEarlyStopped",
                "trialMetricsUnavailable",
            )
        )
        best = ""
        opt = s.get("currentOptimalTrial") or {}
        for m in (opt.get("observation") or {}).get("metrics") or []:
            if m.get("name") == obj["spec"]["objective"]["objectiveMetricName"]:
                best = f"best {m['name']}={m.get('latest')} ({opt.get('bestTrialName')})"
        self.progress.update(
            self.task, completed=done, total=obj["spec"].get("maxTrialCount"), best=best
        )

    def close(self) -> None:
        self.progress.stop()
