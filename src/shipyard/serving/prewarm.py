"""Start the model servers' warm zygotes ahead of the first InferenceService.

``shipyard up`` calls :func:`prewarm` once it serves: the zygote for scikit-learn models
(and for every runtime an existing InferenceService uses) imports its libraries in its own
process, so the first service becomes ready as fast as the next ones. Embedded platforms
(tests, ``Client.embedded``) do not, to keep their start cheap.
"""

from __future__ import annotations

import logging
from typing import Any

from shipyard.serving.api import BUILTIN_RUNTIMES, INFERENCE_SERVICE, builtin_runtime_for

log = logging.getLogger(__name__)

SERVER = "shipyard.serving.server"


def warm_annotation(runtime: str) -> str:
    """The ``shipyard.dev/warm`` value the controller gives a replica of ``runtime``."""
    warm = str(BUILTIN_RUNTIMES.get(runtime, {}).get("warm", "numpy"))
    return warm + "," + SERVER


def prewarm(platform: Any, runtimes: tuple[str, ...] = ("shipyard-sklearn",)) -> list[str]:
    """Pre-start warm zygotes for ``runtimes`` and those of existing InferenceServices.
    Returns the annotations started; nothing on runtimes without a warm pool."""
    pool = getattr(platform.runtime, "warm", None)
    if pool is None:
        return []
    wanted = list(runtimes)
    for isvc in platform.store.list(INFERENCE_SERVICE.key).items:
        model = ((isvc.get("spec") or {}).get("predictor") or {}).get("model") or {}
        fmt = str((model.get("modelFormat") or {}).get("name") or "").lower()
        runtime = model.get("runtime") or builtin_runtime_for(fmt)
        if runtime in BUILTIN_RUNTIMES and runtime not in wanted:
            wanted.append(runtime)
    started = []
    for runtime in wanted:
        annotation = warm_annotation(runtime)
        try:
            if pool.prestart(annotation):
                started.append(annotation)
        except OSError as exc:  # a missing library only costs the first replica its warm start
            log.warning("could not pre-start the %s zygote: %s", runtime, exc)
    return started
