"""A custom Python model: counts the words of each text it is sent.

Serve it with an InferenceService whose predictor has ``modelFormat: {name: custom}`` and a
``storageUri`` pointing at this folder (see ../custom-model.yaml). V1 takes
``{"instances": ["some text", ...]}``; V2 takes one BYTES input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.serving.model import Model


class WordCounter(Model):
    def load(self) -> None:
        self.separator = None  # split on any whitespace
        self.ready = True

    def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> list[str]:
        if isinstance(payload, dict):  # V2: {input name: numpy array}
            (arr,) = payload.values()
            items = arr.reshape(-1).tolist()
        else:  # V1: the instances list
            items = payload
        return [x.decode() if isinstance(x, bytes) else str(x) for x in items]

    def predict(self, inputs: list[str]) -> np.ndarray:
        return np.array([len(text.split(self.separator)) for text in inputs], dtype=np.int32)

    def postprocess(self, outputs: Any, headers: dict[str, str] | None = None) -> Any:
        return {"word_count": outputs}
