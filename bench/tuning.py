"""Tuning benchmark: 80 trials, 2 in parallel, TPE (five seeds), of 3-fold CV accuracy
of a GradientBoostingClassifier on scikit-learn's breast_cancer data, measured side by side:

(a) Optuna in one process, n_jobs=2 (no isolation between trials);
(b) a fresh ``python`` process per trial (2 at a time), Optuna in the driver;
(c) Shipyard: the Katib Experiment examples/tuning/gbm-experiment.yaml (Job trials);
(d) Shipyard: ``Client.tune`` of the same objective (function trials).

Prints trials/min and the best accuracy of each, and (c), (d) as ratios of (a).
``--trials N`` changes the trial count; ``--only a,c`` runs only those (the ratios need (a)).
(a), (c) and (d) run once per seed (``--seeds``, default 1 to 12; ``--seeds 42`` for one)
and each one's median trials/min over the seeds is reported, with the ratios of those
medians; (b), the slowest, runs once. With the platform in its own process (the default) the
three take turns seed by seed, so a spell in which this machine runs slower (its speed
drifts by up to 2x over seconds) falls on all of them alike; ``--embedded`` runs (a) for
every seed first, before the platform's threads exist in this process. The last column
compares fit work done per minute (trials/min x fit work), which depends less on the path a
search happened to take.
Shipyard runs as users run it, ``shipyard up`` in its own process driven by the client;
``--embedded`` runs the platform in this process instead.

Also the trials' mean "fit work", n_estimators x max_depth x subsample, which a trial's CPU
time follows closely (28 ms at 5, 111 at 30, 466 at 240 on this machine). Each search takes
its own path through the space, and paths differ a lot: Optuna alone, one trial at a time,
averages from 45 to 135 fit work per trial over seeds 1 to 20; and with two trials at once,
which results TPE has seen when it suggests depends on timing, so one seed's runs differ
too. Hence twelve seeds by default. (a) keeps its seed: Optuna's optimize with n_jobs > 1
reseeds the sampler at random before every trial, which would leave (a) unseeded, while the
search is a seeded TPE and (c), (d) are seeded; ``--unseeded-a`` runs (a) as Optuna does by
default instead.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "tuning"))

import optuna  # noqa: E402
from tune_gbm import PARAMETERS, objective  # noqa: E402

from pods import platform  # noqa: E402  (bench/ is on the path: this script's folder)

SEED = 42
SEEDS = ",".join(map(str, range(1, 13)))  # one seed's search path decides too much (above)
SCRIPT = ROOT / "examples" / "tuning" / "train_gbm.py"


def _suggest(trial: optuna.Trial) -> dict:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 10, 60),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.5, log=True),
        "max_depth": trial.suggest_int("max_depth", 1, 4),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
    }


Result = tuple[float, float, float]  # seconds, best accuracy, mean fit work


def _work(assignments: list[dict]) -> float:
    return sum(
        float(a["n_estimators"]) * float(a["max_depth"]) * float(a["subsample"])
        for a in assignments
    ) / max(1, len(assignments))


class SeededTPE(optuna.samplers.TPESampler):
    """TPE that keeps its seed under ``optimize(n_jobs=2)``, which reseeds the sampler at
    random before each trial (``reseed_rng``, there so that copies of a sampler in other
    processes do not suggest the same values; here there is one sampler)."""

    def reseed_rng(self) -> None:
        pass


def optuna_in_process(n: int, seed: int = SEED, seeded: bool = True) -> Result:
    kind = SeededTPE if seeded else optuna.samplers.TPESampler
    study = optuna.create_study(direction="maximize", sampler=kind(seed=seed))
    start = time.perf_counter()
    study.optimize(lambda t: objective(_suggest(t)), n_trials=n, n_jobs=2)
    secs = time.perf_counter() - start
    return secs, study.best_value, _work([t.params for t in study.trials])


def process_per_trial(n: int) -> Result:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=SEED))
    lock = threading.Lock()

    def one(_: int) -> None:
        with lock:
            trial = study.ask()
            p = _suggest(trial)
        out = subprocess.run(
            [
                sys.executable,
                str(SCRIPT),
                f"--n-estimators={p['n_estimators']}",
                f"--learning-rate={p['learning_rate']}",
                f"--max-depth={p['max_depth']}",
                f"--subsample={p['subsample']}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        value = float(out.strip().rpartition("accuracy=")[2])
        with lock:
            study.tell(trial, value)

    start = time.perf_counter()
    with cf.ThreadPoolExecutor(2) as pool:
        list(pool.map(one, range(n)))
    secs = time.perf_counter() - start
    return secs, study.best_value, _work([t.params for t in study.trials])


def _best(exp: dict) -> float:
    metrics = exp["status"]["currentOptimalTrial"]["observation"]["metrics"]
    return float(next(m["latest"] for m in metrics if m["name"] == "accuracy"))


def _trials_work(client, name: str) -> float:
    trials = client.list("trials", selector=f"experiment={name}")
    return _work(
        [{a["name"]: a["value"] for a in t["spec"]["parameterAssignments"]} for t in trials]
    )


def shipyard_yaml(client, n: int, seed: int = SEED) -> Result:
    from shipyard.client import read_sources

    ((exp, _),) = read_sources([ROOT / "examples" / "tuning" / "gbm-experiment.yaml"])
    name = f"bench-yaml-{seed}"
    exp["metadata"]["name"] = name
    exp["spec"]["maxTrialCount"] = n
    exp["spec"]["algorithm"]["algorithmSettings"] = [{"name": "random_state", "value": str(seed)}]
    start = time.perf_counter()
    client.create(exp)
    done = client.wait_experiment(name, timeout=3600)
    return time.perf_counter() - start, _best(done), _trials_work(client, name)


def shipyard_tune(client, n: int, seed: int = SEED) -> Result:
    name = f"bench-tune-{seed}"
    start = time.perf_counter()
    done = client.tune(
        objective,
        parameters=PARAMETERS,
        objective="accuracy",
        direction="maximize",
        algorithm="tpe",
        algorithm_settings={"random_state": seed},
        max_trials=n,
        parallel_trials=2,
        name=name,
        timeout=3600,
    )
    return time.perf_counter() - start, _best(done), _trials_work(client, name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=80)
    parser.add_argument("--only", default="a,b,c,d", help="which of a,b,c,d to run")
    parser.add_argument("--seeds", default=SEEDS, help="comma-separated TPE seeds")
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="run the platform in this process (default: `shipyard up` in its own process)",
    )
    parser.add_argument(
        "--unseeded-a",
        action="store_true",
        help="run (a) as optimize(n_jobs=2) does by default: the sampler reseeded per trial",
    )
    args = parser.parse_args()
    n = args.trials
    only = set(args.only.replace(" ", "").split(","))
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("shipyard: " + ("embedded in this process" if args.embedded else "`shipyard up`"))
    labels = {
        "a": "(a) Optuna in-process, n_jobs=2" + (" (unseeded)" if args.unseeded_a else ""),
        "b": "(b) fresh python process per trial",
        "c": "(c) Shipyard Experiment (Katib YAML)",
        "d": "(d) Shipyard tune()",
    }
    runs: dict[str, list[Result]] = {k: [] for k in "abcd" if k in only}
    if "b" in only:
        runs["b"].append(process_per_trial(n))
    if args.embedded:  # the peer first, before the platform's threads exist in this process
        for seed in seeds if "a" in only else []:
            runs["a"].append(optuna_in_process(n, seed, not args.unseeded_a))
    with contextlib.ExitStack() as stack:
        client = None
        if only & {"c", "d"}:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            client = stack.enter_context(platform(tmp, args.embedded))
        for seed in seeds:
            if "a" in only and not args.embedded:
                runs["a"].append(optuna_in_process(n, seed, not args.unseeded_a))
            if "c" in only:
                runs["c"].append(shipyard_yaml(client, n, seed))
            if "d" in only:
                runs["d"].append(shipyard_tune(client, n, seed))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    def rate(r: Result) -> float:
        return n / r[0] * 60

    medians = {k: statistics.median(rate(r) for r in rs) for k, rs in runs.items() if rs}
    # Fit work done per minute: the ratio a search would show if it took the same path.
    works = {k: statistics.median(rate(r) * r[2] for r in rs) for k, rs in runs.items() if rs}
    base, base_work = medians.get("a"), works.get("a")
    what = f"seed {seeds[0]}"
    if len(seeds) > 1:
        what = "median over seeds " + ",".join(map(str, seeds))
    print(f"{n} trials, 2 in parallel, TPE ({what}); GradientBoostingClassifier on breast_cancer")
    print(
        f"{'':40s} {'trials/min':>10s} {'vs (a)':>7s} {'best accuracy':>14s} {'fit work':>9s}"
        f" {'work/min vs (a)':>16s}"
    )
    for k, rs in runs.items():
        ratio = f"{medians[k] / base:6.2f}x" if base else "      -"
        per_work = f"{works[k] / base_work:15.2f}x" if base_work else f"{'-':>16s}"
        best = max(r[1] for r in rs)
        work = statistics.mean(r[2] for r in rs)
        print(f"{labels[k]:40s} {medians[k]:10.1f} {ratio} {best:14.4f} {work:9.1f} {per_work}")
        if len(rs) > 1:
            each = ", ".join(f"{rate(r):.0f} (work {r[2]:.0f})" for r in rs)
            print(f"{'':40s} each seed: {each}")


if __name__ == "__main__":
    main()
