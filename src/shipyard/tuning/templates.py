"""From a trial template to what runs: parameter substitution and the trial's Pod.

``${trialParameters.NAME}`` in the experiment's trialSpec becomes the trial's assignment
(or ``${trialSpec.Name}`` and friends). A ``batch/v1`` Job runs as its pod template; a Pod
runs as it is; any other kind the platform knows (TrainJob, PyTorchJob, ...) is created as a
resource owned by the trial. Trial Pods running Python carry the ``shipyard.dev/warm``
annotation, naming the modules to preload, so the local runtime can fork them from a warm
worker that already imported them.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

from shipyard.core.resource import Obj, owner_ref
from shipyard.tuning.api import EXPERIMENT_LABEL, TRIAL_LABEL, WARM_ANNOTATION

SOURCE_DIR = "shipyard.dev/source-dir"
_REF = re.compile(r"\$\{trialParameters\.([^}]+)\}")
_META = re.compile(r"^\$\{trialSpec\.(\w+)(?:\[([^\]]+)\])?\}$")


def _meta_value(ref: str, trial: Obj) -> str:
    m = _META.match(ref)
    if not m:
        return ref
    md = trial["metadata"]
    what, key = m.group(1), m.group(2)
    if what == "Name":
        return str(md["name"])
    if what == "Namespace":
        return str(md.get("namespace", ""))
    if what == "Kind":
        return str(trial["spec"]["runSpec"].get("kind", ""))
    if what == "APIVersion":
        return str(trial["spec"]["runSpec"].get("apiVersion", ""))
    if what == "Labels":
        return str((md.get("labels") or {}).get(key or "", ""))
    return str((md.get("annotations") or {}).get(key or "", ""))


def substitute(template: Obj, exp_spec: Obj, assignments: dict[str, str], trial: Obj) -> Obj:
    """The trialSpec with every ``${trialParameters.x}`` replaced."""
    refs = {
        tp["name"]: tp.get("reference") or tp["name"]
        for tp in exp_spec["trialTemplate"].get("trialParameters") or []
    }

    def value(m: re.Match[str]) -> str:
        ref = str(refs.get(m.group(1)) or m.group(1))
        raw = assignments[ref] if ref in assignments else _meta_value(ref, trial)
        return json.dumps(raw)[1:-1]

    out: Obj = json.loads(_REF.sub(value, json.dumps(template)))
    return out


def runs_a_pod(run: Obj) -> bool:
    """Whether :func:`pod_template` has a Pod for this runSpec (without copying it)."""
    kind = run.get("kind")
    return kind == "Pod" or (kind == "Job" and str(run.get("apiVersion", "")).startswith("batch/"))


def pod_template(run: Obj) -> tuple[Obj, Obj] | None:
    """(metadata, spec) of the Pod a Job or Pod runSpec runs; None for other kinds."""
    kind = run.get("kind")
    if kind == "Pod":
        return dict(run.get("metadata") or {}), copy.deepcopy(run.get("spec") or {})
    if kind == "Job" and str(run.get("apiVersion", "")).startswith("batch/"):
        job_spec = run.get("spec") or {}
        tpl = job_spec.get("template") or {}
        spec = copy.deepcopy(tpl.get("spec") or {})
        spec.setdefault("restartPolicy", "Never")
        if job_spec.get("activeDeadlineSeconds") and not spec.get("activeDeadlineSeconds"):
            spec["activeDeadlineSeconds"] = job_spec["activeDeadlineSeconds"]
        return dict(tpl.get("metadata") or {}), spec
    return None


def build_pod(trial: Obj, experiment_name: str, warm: str | None) -> Obj | None:
    parts = pod_template(trial["spec"]["runSpec"])
    if parts is None:
        return None
    tmeta, spec = parts
    md = trial["metadata"]
    labels = {
        **(tmeta.get("labels") or {}),
        **(trial["spec"].get("primaryPodLabels") or {}),
        "shipyard.dev/namespace": md.get("namespace", "default"),
        "shipyard.dev/owner": md["name"],
        "shipyard.dev/kind": "Trial",
        EXPERIMENT_LABEL: experiment_name,
        TRIAL_LABEL: md["name"],
    }
    annotations = dict(tmeta.get("annotations") or {})
    if (md.get("annotations") or {}).get(SOURCE_DIR):
        annotations[SOURCE_DIR] = md["annotations"][SOURCE_DIR]
    primary = trial["spec"].get("primaryContainerName")
    container = next((c for c in spec.get("containers") or [] if c.get("name") == primary), None)
    if warm is None and container is not None:
        warm = preload_modules(container, annotations.get(SOURCE_DIR))
    if warm is not None:
        annotations[WARM_ANNOTATION] = warm
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": md["name"],
            "namespace": md.get("namespace", "default"),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_ref(trial)],
        },
        "spec": spec,
    }


def build_resource(trial: Obj) -> Obj:
    """A runSpec of another kind, named after the trial and owned by it."""
    run: Obj = copy.deepcopy(trial["spec"]["runSpec"])
    md = trial["metadata"]
    rmd = run.setdefault("metadata", {})
    rmd.update(name=md["name"], namespace=md.get("namespace", "default"))
    rmd["labels"] = {**(rmd.get("labels") or {}), TRIAL_LABEL: md["name"]}
    if (md.get("annotations") or {}).get(SOURCE_DIR):
        rmd["annotations"] = {
            **(rmd.get("annotations") or {}),
            SOURCE_DIR: md["annotations"][SOURCE_DIR],
        }
    rmd["ownerReferences"] = [owner_ref(trial)]
    return run


def rewrite_paths(pod: Obj, mapping: dict[str, str]) -> None:
    """Replace container paths (the File collector's) by their local places, in place."""
    for c in pod["spec"].get("containers") or []:
        for key in ("command", "args"):
            if c.get(key):
                c[key] = [_replace(str(a), mapping) for a in c[key]]
        for env in c.get("env") or []:
            if "value" in env and env["value"] is not None:
                env["value"] = _replace(str(env["value"]), mapping)


def _replace(text: str, mapping: dict[str, str]) -> str:
    for old, new in mapping.items():
        text = text.replace(old, new)
    return text


# ---------------------------------------------------------------------------------------------
# Warm workers: which modules a Python trial will import


def is_python(argv: list[str]) -> bool:
    return bool(argv) and re.match(r"^python(\d+(\.\d+)?)?$", os.path.basename(argv[0])) is not None


def imports_of(source: str) -> list[str]:
    """Modules a piece of Python imports, as written (``sklearn.ensemble``), leaving out
    the standard library and what is not installed here (a script's own sibling modules):
    importing them all in a warm worker must not fail."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found: list[str] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top == "__future__" or name in found:
                continue
            if _installed(top):
                found.append(name)
    return found


def _installed(top: str) -> bool:
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def preload_modules(container: Obj, source_dir: str | None) -> str | None:
    """The warm annotation for a container, or None if it does not run Python."""
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    if not is_python(argv):
        return None
    rest = [a for a in argv[1:] if a not in ("-u", "-B", "-O")]
    source = ""
    if len(rest) >= 2 and rest[0] == "-c":
        source = rest[1]
    elif len(rest) >= 2 and rest[0] == "-m":
        return rest[1].split(".")[0]
    elif rest and rest[0].endswith(".py"):
        base = Path(container.get("workingDir") or source_dir or ".")
        script = Path(rest[0]) if os.path.isabs(rest[0]) else base / rest[0]
        try:
            st = script.stat()
        except OSError:
            return ""
        return _script_imports(str(script), st.st_mtime_ns, st.st_size)
    return ",".join(imports_of(source))


@functools.lru_cache(maxsize=64)
def _script_imports(path: str, mtime_ns: int, size: int) -> str:
    """The warm annotation for a script, parsed once per version of the file (every trial
    of an experiment runs the same script: parsing it and looking up its imports each time
    was on the path from a trial's creation to its Pod's)."""
    try:
        source = Path(path).read_text()
    except OSError:
        source = ""
    return ",".join(imports_of(source))
