"""CLI for tuning: ``describe experiment`` (best trial and the trials sorted by objective),
``shipyard experiment wait NAME`` with a progress bar. ``get experiments`` and
``get trials -l experiment=NAME`` come from the kinds' columns."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from shipyard.cli import output
from shipyard.cli.main import DESCRIBERS, LOG_SOURCES, Namespace, app, client

Obj = dict[str, Any]

experiment_app = typer.Typer(
    help="Tuning experiments: wait for one with a progress bar.", no_args_is_help=True
)
app.add_typer(experiment_app, name="experiment")

_FINISHED = ("Succeeded", "Failed", "Killed", "MetricsUnavailable", "EarlyStopped")


def _phase(obj: Obj, order: tuple[str, ...]) -> str:
    conds = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}
    for ctype in order:
        if (conds.get(ctype) or {}).get("status") == "True":
            return ctype
    return "Pending"


def _metric(obj: Obj, name: str, key: str = "latest") -> float | None:
    for m in ((obj.get("status") or {}).get("observation") or {}).get("metrics") or []:
        if m.get("name") == name:
            try:
                return float(m[key])
            except (KeyError, TypeError, ValueError):
                return None
    return None


def describe_experiment(c: Any, obj: Obj) -> None:
    md, spec, status = obj["metadata"], obj["spec"], obj.get("status") or {}
    objective = spec["objective"]
    name = objective["objectiveMetricName"]
    strategy = next(
        (s["value"] for s in objective.get("metricStrategies") or [] if s["name"] == name), "latest"
    )
    out = output.out
    out.print(f"[bold]Name:[/bold]        {md['name']}")
    out.print(f"[bold]Namespace:[/bold]   {md.get('namespace', '')}")
    out.print(
        "[bold]Status:[/bold]      "
        + _phase(obj, ("Succeeded", "Failed", "Restarting", "Running", "Created"))
    )
    out.print(
        f"[bold]Objective:[/bold]   {objective['type']} {name}"
        + (f" (goal {objective['goal']})" if objective.get("goal") is not None else "")
    )
    out.print(f"[bold]Algorithm:[/bold]   {spec['algorithm']['algorithmName']}")
    out.print(
        f"[bold]Trials:[/bold]      {status.get('trials', 0)} of max "
        f"{spec.get('maxTrialCount', '-')}, {spec.get('parallelTrialCount')} in parallel: "
        f"{status.get('trialsSucceeded', 0)} succeeded, "
        f"{status.get('trialsRunning', 0)} running, {status.get('trialsFailed', 0)} failed, "
        f"{status.get('trialsEarlyStopped', 0)} early stopped, "
        f"{status.get('trialMetricsUnavailable', 0)} metrics unavailable, "
        f"{status.get('trialsKilled', 0)} killed"
    )
    opt = status.get("currentOptimalTrial")
    if opt:
        params = ", ".join(
            f"{a['name']}={a['value']}" for a in opt.get("parameterAssignments") or []
        )
        metrics = ", ".join(
            f"{m['name']}={m.get('latest')}"
            for m in (opt.get("observation") or {}).get("metrics") or []
        )
        out.print(f"[bold]Best trial:[/bold]  {opt.get('bestTrialName')}: {metrics}")
        out.print(f"             {params}")
    for cond in status.get("conditions") or []:
        if cond.get("status") == "True":
            out.print(
                f"[bold]Condition:[/bold]   {cond['type']} ({cond.get('reason', '')}) "
                f"{cond.get('message', '')}"
            )
    trials = c.list("trials", md.get("namespace"), selector=f"experiment={md['name']}")
    maximize = objective["type"] == "maximize"

    def key(t: Obj) -> tuple[int, float]:
        v = _metric(t, name, strategy)
        return (0, -v if maximize else v) if v is not None else (1, 0.0)

    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("TRIAL", "STATUS", name.upper(), "PARAMETERS"):
        table.add_column(col)
    for t in sorted(trials, key=key):
        v = _metric(t, name, strategy)
        params = ", ".join(
            f"{a['name']}={a['value']}" for a in t["spec"].get("parameterAssignments") or []
        )
        table.add_row(
            t["metadata"]["name"],
            _phase(t, (*_FINISHED, "Running", "Created")),
            "" if v is None else f"{v:.6g}",
            params,
        )
    out.print()
    out.print(table)


def trial_logs(
    c: Any, name: str, namespace: str | None, part: str | None
) -> list[tuple[str, str, str | None]]:
    trials = c.list("trials", namespace, selector=f"experiment={name}")
    return [
        (t["metadata"]["name"], t["metadata"]["name"], t["spec"].get("primaryContainerName"))
        for t in trials
        if not part or t["metadata"]["name"] == part
    ]


DESCRIBERS["Experiment"] = describe_experiment
LOG_SOURCES["Experiment"] = trial_logs


@experiment_app.command("wait")
def wait(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    namespace: Namespace = None,
    timeout: Annotated[str, typer.Option(help="Give up after this long (30s, 5m).")] = "30m",
) -> None:
    """Wait for an experiment to finish, showing trials done and the best objective."""
    from shipyard.client import parse_duration

    with client() as c:
        try:
            obj = c.wait_experiment(
                name, namespace=namespace, timeout=parse_duration(timeout), progress=True
            )
        except TimeoutError as exc:
            output.fail(str(exc))
        phase = _phase(obj, ("Succeeded", "Failed"))
        cond: Obj = next(
            (x for x in obj["status"].get("conditions") or [] if x["type"] == phase), {}
        )
        output.out.print(
            f"experiment/{name} {phase}: {cond.get('reason', '')} {cond.get('message', '')}"
        )
        if phase == "Failed":
            raise typer.Exit(1)
