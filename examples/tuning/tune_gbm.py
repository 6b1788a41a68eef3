"""The same search as gbm-experiment.yaml, from Python: ``Client.tune`` runs each trial of
``objective`` in its own process. Run it against a platform (``make up``) or in-process:

    python examples/tuning/tune_gbm.py                 # uses SHIPYARD_URL or 127.0.0.1:8080
    python examples/tuning/tune_gbm.py --embedded DIR  # a platform in this process
"""

from __future__ import annotations

import argparse

from shipyard import Client
from shipyard.tuning import search


def objective(params):
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.model_selection import cross_val_score

    X, y = load_breast_cancer(return_X_y=True)
    model = GradientBoostingClassifier(random_state=0, **params)
    return cross_val_score(model, X, y, cv=3).mean()


PARAMETERS = {
    "n_estimators": search.int(10, 60),
    "learning_rate": search.double(0.01, 0.5, distribution="logUniform"),
    "max_depth": search.int(1, 4),
    "subsample": search.double(0.5, 1.0),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--embedded", help="run a platform in this process, state in DIR")
    parser.add_argument("--trials", type=int, default=80)
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    client = Client.embedded(args.embedded) if args.embedded else Client()
    with client:
        exp = client.tune(
            objective,
            parameters=PARAMETERS,
            objective="accuracy",
            direction="maximize",
            algorithm="tpe",
            algorithm_settings={"random_state": 42},
            max_trials=args.trials,
            parallel_trials=2,
            name=args.name,
            progress=True,
        )
    best = exp["status"]["currentOptimalTrial"]
    print("best trial:", best["bestTrialName"])
    print("  ", {a["name"]: a["value"] for a in best["parameterAssignments"]})
    print("  ", {m["name"]: m["latest"] for m in best["observation"]["metrics"]})


if __name__ == "__main__":
    main()
