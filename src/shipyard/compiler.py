"""``from shipyard import compiler``: kfp.compiler's shape, so a script that compiles a
pipeline with ``compiler.Compiler().compile(pipeline, "pipeline.yaml")`` ports by changing
its import. It writes Shipyard's Pipeline YAML (what ``shipyard compile`` writes), which
``shipyard run FILE``, ``client.run_pipeline(FILE)`` and ``kubectl``-style ``apply`` take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.pipelines.dsl import CompileError, Component, Pipeline


class Compiler:
    """kfp's ``Compiler``: ``Compiler().compile(pipeline_func, package_path)``."""

    def compile(
        self,
        pipeline_func: Any,
        package_path: str | Path,
        pipeline_name: str | None = None,
        pipeline_parameters: dict[str, Any] | None = None,
        type_check: bool = True,
    ) -> None:
        """Write ``pipeline_func`` (a ``@dsl.pipeline`` function) as YAML to
        ``package_path``; ``pipeline_parameters`` replace parameters' defaults. Types are
        always checked (``type_check`` is kfp's switch, and has no effect here)."""
        from shipyard.pipelines.compiler import compile_pipeline, to_yaml

        if isinstance(pipeline_func, Component):
            raise CompileError(
                f"{pipeline_func.name!r} is a component: compile a @dsl.pipeline that uses it "
                "(Shipyard has no component files of their own)"
            )
        if not isinstance(pipeline_func, Pipeline):
            raise CompileError(f"expected a @dsl.pipeline function, got {pipeline_func!r}")
        obj = compile_pipeline(pipeline_func, pipeline_name, pipeline_parameters)
        Path(package_path).write_text(to_yaml(obj))
