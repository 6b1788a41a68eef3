"""``from shipyard import dsl``: the pipeline DSL (kfp.dsl v2 names and shapes)."""

from shipyard.pipelines.dsl import *  # noqa: F403
from shipyard.pipelines.dsl import __all__ as __all__
