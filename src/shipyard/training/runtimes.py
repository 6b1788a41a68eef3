"""Built-in training runtimes for Trainer v2 ``TrainJob`` (``spec.runtimeRef.name``).

Kubeflow ships these as ClusterTrainingRuntime objects; here they are fixed templates. A
runtime gives the framework (which env contract the nodes get), the default image, the
default command (None: the TrainJob must give ``trainer.command``), the default number of
nodes and processes per node.
"""

from __future__ import annotations

from typing import Any

BUILTIN: dict[str, dict[str, Any]] = {
    "torch-distributed": {
        "framework": "torch",
        "image": "pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime",
        "command": None,
        "numNodes": 1,
        "numProcPerNode": "auto",
    },
}
