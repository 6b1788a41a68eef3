"""Tuning: Katib's Experiment and Trial on Optuna's algorithms, every trial its own process.

Kept import-light: trial processes import ``shipyard.tuning.function_trial`` and
``shipyard.tuning.report``, which must not pull in the platform.
"""

from __future__ import annotations

from typing import Any


def register(platform: Any) -> None:
    from shipyard.tuning.algorithms import Suggester
    from shipyard.tuning.api import EXPERIMENT, TRIAL
    from shipyard.tuning.controller import ExperimentController
    from shipyard.tuning.push import PREFIX, make_app
    from shipyard.tuning.trials import TrialController
    from shipyard.tuning.webhook import admission

    platform.registry.add(EXPERIMENT)
    platform.registry.add(TRIAL)
    platform.service.admission.append(admission)
    platform.manager.add(ExperimentController(platform, Suggester()))
    platform.manager.add(TrialController(platform))
    platform.mounts.append((PREFIX, make_app(platform)))
