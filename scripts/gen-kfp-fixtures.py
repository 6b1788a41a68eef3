"""Compile the KFP test fixtures and the kfp example with the real ``kfp`` compiler.

The kfp SDK cannot be installed beside Shipyard's test dependencies (it pins
``kubernetes<31``), so this script runs itself in a separate venv that has ``kfp``:

    python scripts/gen-kfp-fixtures.py            # makes ~/.cache/shipyard/kfp-venv if needed
    KFP_PYTHON=/path/to/python python scripts/gen-kfp-fixtures.py

It writes ``tests/pipelines/kfp_fixtures/<pipeline>.yaml`` for each pipeline in
``tests/pipelines/kfp_fixtures/pipelines.py`` (and ``component_<name>.yaml`` for each
component in its ``COMPONENT_FIXTURES``) and ``examples/pipelines/kfp_hello.yaml``.
``--check`` compiles into a temporary folder instead and exits 1 if a committed file differs.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import tempfile
import venv
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "pipelines" / "kfp_fixtures"
KFP_VERSION = "2.17.0"
SOURCES = {
    FIXTURES / "pipelines.py": FIXTURES,
    ROOT / "examples" / "pipelines" / "kfp_hello.py": ROOT / "examples" / "pipelines",
}


def kfp_python() -> str:
    if os.environ.get("KFP_PYTHON"):
        return os.environ["KFP_PYTHON"]
    env = Path.home() / ".cache" / "shipyard" / "kfp-venv"
    py = env / "bin" / "python"
    if not py.exists():
        venv.create(env, with_pip=True)
        pins = [f"kfp=={KFP_VERSION}", f"kfp-kubernetes=={KFP_VERSION}"]
        subprocess.run([str(py), "-m", "pip", "install", "-q", *pins], check=True)
    return str(py)


def compile_all(check: bool = False) -> int:
    warnings.simplefilter("ignore", FutureWarning)
    from kfp import compiler
    from kfp.dsl.base_component import BaseComponent

    stale = 0
    for source, out_dir in SOURCES.items():
        ns = runpy.run_path(str(source), run_name="__kfp_fixture__")
        targets = []
        for obj in ns.values():
            if not (isinstance(obj, BaseComponent) and obj.name.startswith("kfp-")):
                continue
            if not obj.pipeline_spec.root.HasField("dag"):
                continue
            name = obj.name.removeprefix("kfp-").replace("-", "_")
            if out_dir != FIXTURES:
                name = source.stem
            targets.append((obj, out_dir / f"{name}.yaml"))
        # Single components compiled on their own (for components.load_component_from_file).
        for comp in ns.get("COMPONENT_FIXTURES", []):
            targets.append((comp, out_dir / f"component_{comp.name.replace('-', '_')}.yaml"))
        for obj, path in targets:
            if not check:
                compiler.Compiler().compile(obj, str(path))
                print(f"wrote {path.relative_to(ROOT)}")
                continue
            with tempfile.TemporaryDirectory() as tmp:
                fresh = Path(tmp) / path.name
                compiler.Compiler().compile(obj, str(fresh))
                if not path.exists() or fresh.read_text() != path.read_text():
                    print(f"stale: {path.relative_to(ROOT)}")
                    stale += 1
    return 1 if stale else 0


def main() -> None:
    try:
        import kfp  # noqa: F401
    except ImportError:
        py = kfp_python()
        sys.exit(subprocess.run([py, __file__, *sys.argv[1:]]).returncode)
    sys.exit(compile_all(check="--check" in sys.argv[1:]))


if __name__ == "__main__":
    main()
