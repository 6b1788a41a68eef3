"""One trial of the tuning example: 3-fold CV accuracy of a GradientBoostingClassifier on
scikit-learn's bundled breast_cancer data. Prints ``accuracy=...`` for the StdOut collector."""

import argparse

from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.model_selection import cross_val_score

parser = argparse.ArgumentParser()
parser.add_argument("--n-estimators", type=int, required=True)
parser.add_argument("--learning-rate", type=float, required=True)
parser.add_argument("--max-depth", type=int, required=True)
parser.add_argument("--subsample", type=float, required=True)
args = parser.parse_args()

X, y = load_breast_cancer(return_X_y=True)
model = GradientBoostingClassifier(
    n_estimators=args.n_estimators,
    learning_rate=args.learning_rate,
    max_depth=args.max_depth,
    subsample=args.subsample,
    random_state=0,
)
print(f"accuracy={cross_val_score(model, X, y, cv=3).mean()}")
