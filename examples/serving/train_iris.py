"""Train the two iris models the serving examples use: models/iris-v1 and models/iris-v2.

python examples/serving/train_iris.py [OUT_DIR]      # default: examples/serving/models
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def main(out: Path) -> None:
    x, y = load_iris(return_X_y=True)
    for version, c in (("iris-v1", 1.0), ("iris-v2", 0.05)):
        folder = out / version
        folder.mkdir(parents=True, exist_ok=True)
        model = LogisticRegression(C=c, max_iter=1000).fit(x, y)
        joblib.dump(model, folder / "model.joblib")
        print(f"{folder / 'model.joblib'}: accuracy {model.score(x, y):.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "models")
