"""Runs one trial of ``Client.tune``: the objective function's source and its parameters.

``python -m shipyard.tuning.function_trial`` reads the function's source from
``SHIPYARD_TRIAL_FUNCTION`` (its name in ``SHIPYARD_TRIAL_FUNCTION_NAME``) and the
parameters as ``name=value`` arguments (typed by ``SHIPYARD_TRIAL_TYPES``, a JSON object of
Katib parameter types), calls the function with a dict of them, and
reports what it returns: a number as the objective metric, a mapping as several metrics.
Like Katib's ``tune()``, the function must import what it uses inside its body.

With ``SHIPYARD_TRIAL_RESULT=stdout`` (``tune()`` sets it when the function never calls
``report_metrics``, and collects with StdOut and :data:`RESULT_FORMAT`), what the function
returns is printed as ``shipyard-trial-metric NAME=VALUE`` lines rather than posted to the
platform: the trial's log carries it, and the process spends no HTTP round trip on it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

RESULT_PREFIX = "shipyard-trial-metric"
# The StdOut filter of a trial that prints its result: only these lines, not the function's
# own prints, are metrics (Katib's filter: group 1 the name, group 2 the value).
RESULT_FORMAT = rf"^{RESULT_PREFIX} (\S+?)=(\S+)$"


def _typed(arg: str, types: dict[str, str]) -> tuple[str, Any]:
    name, _, raw = arg.partition("=")
    kind = types.get(name, "categorical")
    if kind == "int":
        return name, int(float(raw))
    if kind == "double":
        return name, float(raw)
    if kind == "discrete":
        value = float(raw)
        return name, int(value) if value.is_integer() and "." not in raw else value
    return name, raw


def run(argv: list[str]) -> int:
    source = os.environ["SHIPYARD_TRIAL_FUNCTION"]
    fn_name = os.environ["SHIPYARD_TRIAL_FUNCTION_NAME"]
    objective = os.environ.get("SHIPYARD_TRIAL_OBJECTIVE", "objective")
    types = json.loads(os.environ.get("SHIPYARD_TRIAL_TYPES") or "{}")
    params = dict(_typed(arg, types) for arg in argv)
    namespace: dict[str, Any] = {"__name__": "__shipyard_trial__"}
    exec(compile(source, f"<objective {fn_name}>", "exec"), namespace)
    result = namespace[fn_name](params)
    if result is None:
        return 0  # the function reported its metrics itself
    metrics = dict(result) if isinstance(result, dict) else {objective: float(result)}
    if os.environ.get("SHIPYARD_TRIAL_RESULT") == "stdout":
        _print_metrics(metrics)
        return 0
    from shipyard.tuning.report import report_metrics

    report_metrics(metrics)
    return 0


def _print_metrics(metrics: dict[Any, Any]) -> None:
    import math

    lines = []
    for name, raw in metrics.items():
        value = float(raw)
        if not math.isfinite(value):  # as the platform refuses a pushed one
            raise ValueError(f"metric {str(name)!r} must be a finite number, got {raw!r}")
        lines.append(f"{RESULT_PREFIX} {name}={value!r}\n")
    sys.stdout.write("".join(lines))
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
