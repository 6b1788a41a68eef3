"""``from shipyard import compiler``: kfp.compiler's shape, so a script that compiles a
pipeline with ``compiler.Compiler().compile(pipeline, "pipeline.yaml")`` ports by changing
its import (the code is in :mod:`shipyard.pipelines.compiler`)."""

from shipyard.pipelines.compiler import Compiler

__all__ = ["Compiler"]
