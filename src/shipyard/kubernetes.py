"""``from shipyard import kubernetes``: kfp-kubernetes' task calls (env from Secrets and
ConfigMaps, node selectors, tolerations), so a pipeline using them ports by changing its
import (the code is in :mod:`shipyard.pipelines.kubernetes_config`)."""

from shipyard.pipelines.kubernetes_config import (
    add_node_selector,
    add_toleration,
    use_config_map_as_env,
    use_secret_as_env,
)

__all__ = ["add_node_selector", "add_toleration", "use_config_map_as_env", "use_secret_as_env"]
