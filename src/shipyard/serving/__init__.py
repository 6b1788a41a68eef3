"""Model serving: KServe's InferenceService, the model server, gateway and autoscaler."""

from shipyard.serving.api import INFERENCE_SERVICE, register

__all__ = ["INFERENCE_SERVICE", "register"]
