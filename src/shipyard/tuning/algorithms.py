"""Search algorithms: Katib's algorithm names and settings on Optuna's samplers.

The experiment controller asks a :class:`Suggester` for new parameter assignments, handing it
the experiment and every stored Trial. The Suggester keeps an in-memory Optuna study per
experiment (keyed by uid) only as a cache: whatever it lacks (after a control-plane restart,
or for trials it never saw) it rebuilds from the stored trials, so nothing the controller
needs lives outside the store. A rebuilt sampler is seeded with ``random_state`` plus the
number of stored trials, so it never replays suggestions it already made.

Grid and Hyperband are schedules rather than samplers, derived from the stored trials
alone: grid walks the Cartesian product in order, skipping points already tried; Hyperband
runs Katib's brackets (``r_l``, ``eta``) and promotes the best trials of each rung with more
of the ``resource_name`` parameter, drawing fresh configurations with Optuna's random sampler.
"""

from __future__ import annotations

import itertools
import math
import threading
import warnings
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from shipyard.core.resource import Obj
from shipyard.errors import Invalid

HYPERBAND_ANNOTATION = "tuning.shipyard.dev/hyperband"

_TPE = {
    "random_state": int,
    "n_startup_trials": int,
    "n_ei_candidates": int,
    "gamma": float,
    "prior_weight": float,
    "consider_magic_clip": bool,
    "consider_endpoints": bool,
    "constant_liar": bool,
}
SETTINGS: dict[str, dict[str, type]] = {
    "random": {"random_state": int},
    "grid": {"random_state": int},
    "tpe": _TPE,
    "multivariate-tpe": {**_TPE, "group": bool},
    "cmaes": {
        "random_state": int,
        "sigma": float,
        "restart_strategy": str,
        "popsize": int,
        "inc_popsize": int,
        "n_startup_trials": int,
        "use_separable_cma": bool,
        "with_margin": bool,
    },
    "sobol": {"random_state": int, "scramble": bool},
    "bayesianoptimization": {
        "random_state": int,
        "n_startup_trials": int,
        "n_initial_points": int,
        "deterministic_objective": bool,
        "base_estimator": str,
    },
    "hyperband": {"random_state": int, "r_l": int, "eta": int, "resource_name": str},
}

# Normal and log-normal priors: the sampler works on u in [Φ(-3), Φ(3)], mapped to the
# parameter by the inverse CDF with mean at the middle of [min, max] and 3 sigma at its ends.
_STD = NormalDist()
_U_LO, _U_HI = _STD.cdf(-3.0), _STD.cdf(3.0)


def _convert(name: str, raw: str | None, kind: type, where: str) -> Any:
    if raw is None:
        raise Invalid(f"{where}: setting {name!r} needs a value", field=where)
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false"):
                raise ValueError
            return raw.lower() == "true"
        return kind(raw)
    except ValueError:
        raise Invalid(
            f"{where}: setting {name!r} must be {kind.__name__}, got {raw!r}", field=where
        ) from None


def settings_of(spec: Obj) -> dict[str, Any]:
    """The algorithm settings, typed; unknown names refused."""
    algo = spec["algorithm"]["algorithmName"]
    allowed = SETTINGS[algo]
    out: dict[str, Any] = {}
    for i, s in enumerate(spec["algorithm"].get("algorithmSettings") or []):
        where = f"spec.algorithm.algorithmSettings[{i}]"
        if s["name"] not in allowed:
            raise Invalid(
                f"{where}: unknown setting {s['name']!r} for algorithm {algo}; known: "
                + ", ".join(sorted(allowed)),
                field=f"{where}.name",
            )
        out[s["name"]] = _convert(s["name"], s.get("value"), allowed[s["name"]], f"{where}.value")
    return out


def check_settings(spec: Obj) -> None:
    algo = spec["algorithm"]["algorithmName"]
    settings = settings_of(spec)
    if algo == "cmaes" and settings.get("restart_strategy") not in (None, "ipop", "bipop"):
        raise Invalid(
            "spec.algorithm.algorithmSettings: restart_strategy must be ipop or bipop",
            field="spec.algorithm.algorithmSettings",
        )
    if algo == "bayesianoptimization" and settings.get("base_estimator") not in (None, "GP"):
        raise Invalid(
            "spec.algorithm.algorithmSettings: base_estimator must be GP (Gaussian process)",
            field="spec.algorithm.algorithmSettings",
        )
    if algo == "hyperband":
        for key in ("r_l", "resource_name"):
            if key not in settings:
                raise Invalid(
                    f"spec.algorithm.algorithmSettings: hyperband needs {key}",
                    field="spec.algorithm.algorithmSettings",
                )
        params = {p["name"]: p for p in spec["parameters"]}
        res = params.get(settings["resource_name"])
        if res is None or res["parameterType"] not in ("int", "double"):
            raise Invalid(
                f"spec.algorithm.algorithmSettings: resource_name {settings['resource_name']!r} "
                "must name an int or double parameter",
                field="spec.algorithm.algorithmSettings",
            )
        if settings.get("eta", 3) < 2 or settings["r_l"] < 1:
            raise Invalid(
                "spec.algorithm.algorithmSettings: eta must be ≥ 2 and r_l ≥ 1",
                field="spec.algorithm.algorithmSettings",
            )


# ---------------------------------------------------------------------------------------------
# Parameters ↔ Optuna distributions


def _bounds(space: Obj) -> tuple[float, float]:
    return float(space["min"]), float(space["max"])


def distribution(p: Obj) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space, ptype = p["feasibleSpace"], p["parameterType"]
    if ptype in ("categorical", "discrete"):
        return CategoricalDistribution([str(v) for v in space["list"]])
    dist = space.get("distribution") or "uniform"
    lo, hi = _bounds(space)
    if dist in ("normal", "logNormal"):
        return FloatDistribution(_U_LO, _U_HI)
    step = float(space["step"]) if space.get("step") is not None else None
    if ptype == "int":
        return IntDistribution(int(lo), int(hi), step=int(step or 1), log=dist == "logUniform")
    return FloatDistribution(lo, hi, step=step, log=dist == "logUniform")


def _normal_params(p: Obj) -> tuple[float, float, bool]:
    lo, hi = _bounds(p["feasibleSpace"])
    log = p["feasibleSpace"].get("distribution") == "logNormal"
    if log:
        lo, hi = math.log(lo), math.log(hi)
    return (lo + hi) / 2, max((hi - lo) / 6, 1e-12), log


def to_value(p: Obj, internal: Any) -> str:
    """The assignment (a string, as Katib keeps it) for an Optuna value."""
    ptype, space = p["parameterType"], p["feasibleSpace"]
    if ptype in ("categorical", "discrete"):
        return str(internal)
    if (space.get("distribution") or "uniform") in ("normal", "logNormal"):
        mu, sigma, log = _normal_params(p)
        x = mu + sigma * _STD.inv_cdf(min(max(float(internal), _U_LO), _U_HI))
        x = math.exp(x) if log else x
        lo, hi = _bounds(space)
        x = min(max(x, lo), hi)
        return str(round(x)) if ptype == "int" else repr(x)
    return str(int(internal)) if ptype == "int" else repr(float(internal))


def to_internal(p: Obj, value: str) -> Any:
    ptype, space = p["parameterType"], p["feasibleSpace"]
    if ptype in ("categorical", "discrete"):
        return str(value)
    x = float(value)
    if (space.get("distribution") or "uniform") in ("normal", "logNormal"):
        mu, sigma, log = _normal_params(p)
        z = ((math.log(x) if log else x) - mu) / sigma
        return min(max(_STD.cdf(z), _U_LO), _U_HI)
    return round(x) if ptype == "int" else x


def grid_points(params: list[Obj]) -> list[list[str]]:
    axes: list[list[str]] = []
    for p in params:
        space = p["feasibleSpace"]
        if p["parameterType"] in ("categorical", "discrete"):
            axes.append([str(v) for v in space["list"]])
            continue
        lo, hi = _bounds(space)
        step = float(space.get("step") or 1)
        n = math.floor((hi - lo) / step + 1e-9) + 1
        values = [lo + i * step for i in range(n)]
        axes.append([str(int(v)) if p["parameterType"] == "int" else repr(v) for v in values])
    return axes


def grid_size(params: list[Obj]) -> int:
    return math.prod(len(a) for a in grid_points(params))


# ---------------------------------------------------------------------------------------------
# Suggestions


@dataclass
class TrialView:
    """What the algorithms need of a stored Trial."""

    name: str
    params: dict[str, str]
    state: str  # running | complete | fail | pruned
    value: float | None = None
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class _Cached:
    study: Any
    numbers: dict[str, int] = field(default_factory=dict)
    told: set[str] = field(default_factory=set)


def _sampler(spec: Obj, settings: dict[str, Any], offset: int) -> Any:
    import optuna

    algo = spec["algorithm"]["algorithmName"]
    seed = settings.get("random_state")
    seed = None if seed is None else seed + offset
    if algo in ("tpe", "multivariate-tpe"):
        kw: dict[str, Any] = {
            k: settings[k]
            for k in (
                "n_startup_trials",
                "n_ei_candidates",
                "prior_weight",
                "consider_magic_clip",
                "consider_endpoints",
                "constant_liar",
            )
            if k in settings
        }
        if "gamma" in settings:
            frac = settings["gamma"]
            kw["gamma"] = lambda n: min(math.ceil(frac * n), 25)
        if algo == "multivariate-tpe":
            kw.update(multivariate=True, group=settings.get("group", False))
        return optuna.samplers.TPESampler(seed=seed, **kw)
    if algo == "cmaes":
        kw = {
            k: settings[k] for k in ("restart_strategy", "popsize", "inc_popsize") if k in settings
        }
        kw.update(
            {
                k: settings[k]
                for k in ("n_startup_trials", "use_separable_cma", "with_margin")
                if k in settings
            }
        )
        if "sigma" in settings:
            kw["sigma0"] = settings["sigma"]
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False, **kw)
    if algo == "sobol":
        return optuna.samplers.QMCSampler(
            qmc_type="sobol",
            scramble=settings.get("scramble", True),
            seed=settings.get("random_state"),
            warn_independent_sampling=False,
            warn_asynchronous_seeding=False,
        )
    if algo == "bayesianoptimization":
        n0 = settings.get("n_startup_trials", settings.get("n_initial_points", 10))
        return optuna.samplers.GPSampler(
            seed=seed,
            n_startup_trials=n0,
            deterministic_objective=settings.get("deterministic_objective", False),
            warn_independent_sampling=False,
        )
    return optuna.samplers.RandomSampler(seed=seed)


_STATES = {"complete": "COMPLETE", "fail": "FAIL", "pruned": "PRUNED", "running": "RUNNING"}


class Suggester:
    """Suggestions for every experiment of a platform (thread-safe per experiment)."""

    def __init__(self) -> None:
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def forget(self, uid: str) -> None:
        with self._lock:
            self._cache.pop(uid, None)

    def suggest(
        self, exp: Obj, trials: list[TrialView], names: list[str]
    ) -> tuple[list[dict[str, str]], bool]:
        """Assignments for up to ``len(names)`` new trials, and whether the search space is
        exhausted (grid, hyperband)."""
        spec = exp["spec"]
        algo = spec["algorithm"]["algorithmName"]
        if algo == "grid":
            return self._grid(spec, trials, len(names))
        if algo == "hyperband":
            return self._hyperband(exp, trials, names)
        space = {p["name"]: p for p in spec["parameters"]}
        return self._ask(exp, trials, names, space), False

    # -- Optuna samplers ----------------------------------------------------------------------

    def _study(self, exp: Obj, trials: list[TrialView], space: dict[str, Obj]) -> _Cached:
        import optuna

        uid = exp["metadata"]["uid"]
        with self._lock:
            cached = self._cache.get(uid)
            if cached is not None:
                return cached
        spec = exp["spec"]
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sampler = _sampler(spec, settings_of(spec), len(trials))
        maximize = spec["objective"]["type"] == "maximize"
        cached = _Cached(
            optuna.create_study(direction="maximize" if maximize else "minimize", sampler=sampler)
        )
        if spec["algorithm"]["algorithmName"] == "sobol" and trials:
            dists = {n: distribution(p) for n, p in space.items()}
            advance = getattr(sampler, "_find_sample_id", None)
            if advance is not None:
                for _ in range(len(trials)):
                    advance(cached.study, dists)
        with self._lock:
            return self._cache.setdefault(uid, cached)

    def _sync(self, cached: _Cached, trials: list[TrialView], space: dict[str, Obj]) -> None:
        from optuna.trial import TrialState, create_trial

        dists = {n: distribution(p) for n, p in space.items()}
        for t in trials:
            if t.name in cached.told:
                continue  # finished and told already: nothing can change it
            state = TrialState[_STATES[t.state]]
            value = t.value if t.state == "complete" else None
            if t.state == "complete" and value is None:
                state = TrialState.FAIL
            if t.name not in cached.numbers:
                params = {n: to_internal(space[n], v) for n, v in t.params.items() if n in space}
                if set(params) != set(dists):
                    continue  # not from this search space (e.g. edited by hand)
                cached.study.add_trial(
                    create_trial(state=state, value=value, params=params, distributions=dists)
                )
                cached.numbers[t.name] = cached.study.trials[-1].number
                if state != TrialState.RUNNING:
                    cached.told.add(t.name)
            elif state != TrialState.RUNNING:
                cached.study.tell(cached.numbers[t.name], value, state=state)
                cached.told.add(t.name)

    def _ask(
        self, exp: Obj, trials: list[TrialView], names: list[str], space: dict[str, Obj]
    ) -> list[dict[str, str]]:
        cached = self._study(exp, trials, space)
        out: list[dict[str, str]] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._sync(cached, trials, space)
            dists = {n: distribution(p) for n, p in space.items()}
            for name in names:
                asked = cached.study.ask(dists)
                cached.numbers[name] = asked.number
                out.append({n: to_value(space[n], asked.params[n]) for n in space})
        return out

    # -- grid ---------------------------------------------------------------------------------

    def _grid(
        self, spec: Obj, trials: list[TrialView], count: int
    ) -> tuple[list[dict[str, str]], bool]:
        params = spec["parameters"]
        names = [p["name"] for p in params]
        seen = {tuple(t.params.get(n) for n in names) for t in trials}
        out: list[dict[str, str]] = []
        remaining = 0
        for point in itertools.product(*grid_points(params)):
            if point in seen:
                continue
            if len(out) < count:
                out.append(dict(zip(names, point, strict=True)))
            else:
                remaining += 1
        return out, not out and remaining == 0

    # -- hyperband ----------------------------------------------------------------------------

    def _hyperband(
        self, exp: Obj, trials: list[TrialView], names: list[str]
    ) -> tuple[list[dict[str, str]], bool]:
        spec = exp["spec"]
        settings = settings_of(spec)
        res_name, r_l, eta = settings["resource_name"], settings["r_l"], settings.get("eta", 3)
        res_param = next(p for p in spec["parameters"] if p["name"] == res_name)
        space = {p["name"]: p for p in spec["parameters"] if p["name"] != res_name}
        maximize = spec["objective"]["type"] == "maximize"
        by_rung: dict[str, list[TrialView]] = {}
        for t in trials:
            by_rung.setdefault(t.annotations.get(HYPERBAND_ANNOTATION, ""), []).append(t)
        for s, i, n_i, r_i in hyperband_rungs(r_l, eta):
            key = f"{s},{i}"
            have = by_rung.get(key, [])
            if len(have) >= n_i:
                if any(t.state == "running" for t in have):
                    return [], False  # the rung must finish before the next is chosen
                continue
            want = min(n_i - len(have), len(names))
            if i == 0:
                random_exp = {
                    **exp,
                    "spec": {**spec, "algorithm": _random_algorithm(settings)},
                }
                chosen = self._ask(random_exp, trials, names[:want], space)
            else:
                prev = [t for t in by_rung.get(f"{s},{i - 1}", []) if t.value is not None]
                prev.sort(key=lambda t: t.value or 0.0, reverse=maximize)
                promoted = {
                    tuple(sorted((k, v) for k, v in t.params.items() if k != res_name))
                    for t in have
                }
                chosen = []
                for t in prev:
                    key_params = tuple(sorted((k, v) for k, v in t.params.items() if k != res_name))
                    if key_params in promoted:
                        continue
                    promoted.add(key_params)
                    chosen.append({k: v for k, v in t.params.items() if k != res_name})
                    if len(chosen) == want:
                        break
            resource = (
                str(math.ceil(r_i)) if res_param["parameterType"] == "int" else repr(float(r_i))
            )
            return [{**c, res_name: resource, HYPERBAND_ANNOTATION: key} for c in chosen], False
        return [], True


def _random_algorithm(settings: dict[str, Any]) -> Obj:
    seed = settings.get("random_state")
    given = [] if seed is None else [{"name": "random_state", "value": str(seed)}]
    return {"algorithmName": "random", "algorithmSettings": given}


def hyperband_rungs(r_l: int, eta: int) -> list[tuple[int, int, int, float]]:
    """Katib's Hyperband schedule: (bracket s, rung i, configurations n_i, resource r_i)."""
    s_max = math.floor(math.log(r_l) / math.log(eta) + 1e-9)
    budget = (s_max + 1) * r_l
    rungs: list[tuple[int, int, int, float]] = []
    for s in range(s_max, -1, -1):
        n = math.ceil(budget / r_l * eta**s / (s + 1))
        r = r_l * eta ** (-s)
        for i in range(s + 1):
            n_i = max(1, math.floor(n * eta ** (-i)))
            rungs.append((s, i, n_i, r * eta**i))
    return rungs
