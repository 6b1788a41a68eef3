"""A transformer in front of the iris predictor (examples/serving/transformer.yaml).

Requests name their features; the predictor gets rows in its column order. Its class ids
come back as species names. The controller runs this file with KServe's transformer
arguments (--model_name, --predictor_host, --http_port).
"""

from typing import Any

import numpy as np

from shipyard.serving.transformer import Transformer, serve

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = np.array(["setosa", "versicolor", "virginica"], dtype=object)


class IrisTransformer(Transformer):
    def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        if isinstance(payload, dict):  # V2: tensors pass through
            return payload
        return [[float(inst[f]) for f in FEATURES] for inst in payload]  # V1: named features

    def postprocess(self, outputs: Any, headers: dict[str, str] | None = None) -> Any:
        if isinstance(outputs, dict):  # V2: add the species next to the class ids
            ids = next(iter(outputs.values()))
            return {**outputs, "species": SPECIES[np.asarray(ids, dtype=int)]}
        return [str(SPECIES[int(i)]) for i in outputs]


if __name__ == "__main__":
    serve(IrisTransformer)
