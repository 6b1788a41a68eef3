"""Run inside test Pods: log params, a metric history, a dataset, an artifact and a model."""

import os
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

import shipyard

c = float(sys.argv[1])
work = Path(sys.argv[2])
work.mkdir(parents=True, exist_ok=True)
data = work / "data.csv"
rng = np.random.default_rng(0)
x = rng.normal(size=(60, 3))
y = (x[:, 0] + x[:, 1] > 0).astype(int)
np.savetxt(data, np.column_stack([x, y]), delimiter=",")
shipyard.log_input(data, name="dataset")
shipyard.log_params({"C": c, "solver": "lbfgs"})
for step, loss in enumerate([0.9, 0.5, 0.3]):
    shipyard.log_metric("loss", loss * c, step=step)
model = LogisticRegression(C=c).fit(x, y)
shipyard.log_metric("accuracy", float(model.score(x, y)))
(work / "notes.txt").write_text(f"pod {os.environ['SHIPYARD_POD_NAME']}")
shipyard.log_artifact(work / "notes.txt")
mv = shipyard.log_model(model, "clf", input_example=x[:2])
print("registered", mv["metadata"]["name"], flush=True)
