"""``from shipyard import components``: kfp.components' loaders, so a reusable component kept
as YAML ports by changing its import (the code is in :mod:`shipyard.pipelines.components`)."""

from shipyard.pipelines.components import (
    load_component_from_file,
    load_component_from_text,
    load_component_from_url,
)

__all__ = ["load_component_from_file", "load_component_from_text", "load_component_from_url"]
