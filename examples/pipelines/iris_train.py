"""A real ML pipeline: load scikit-learn's iris data, split, train, evaluate, and register
the model only when its accuracy clears a threshold (a condition on the metric).

    shipyard run examples/pipelines/iris_train.py -p min_accuracy=0.9 --watch
"""

from shipyard import dsl
from shipyard.dsl import Dataset, Input, Metrics, Model, Output


@dsl.component
def load_data(data: Output[Dataset]):
    import numpy as np
    from sklearn.datasets import load_iris

    iris = load_iris()
    table = np.column_stack([iris.data, iris.target])
    np.savetxt(data.path, table, delimiter=",")
    data.metadata["rows"] = len(table)


@dsl.component
def split(data: Input[Dataset], test_size: float, train: Output[Dataset], test: Output[Dataset]):
    import numpy as np
    from sklearn.model_selection import train_test_split

    table = np.loadtxt(data.path, delimiter=",")
    tr, te = train_test_split(table, test_size=test_size, random_state=0, stratify=table[:, -1])
    np.savetxt(train.path, tr, delimiter=",")
    np.savetxt(test.path, te, delimiter=",")


@dsl.component
def train_model(train: Input[Dataset], n_estimators: int, model: Output[Model]):
    import pickle

    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    table = np.loadtxt(train.path, delimiter=",")
    clf = RandomForestClassifier(n_estimators=n_estimators, random_state=0)
    clf.fit(table[:, :-1], table[:, -1])
    with open(model.path, "wb") as fh:
        pickle.dump(clf, fh)
    model.metadata["framework"] = "sklearn"


@dsl.component
def evaluate(test: Input[Dataset], model: Input[Model], metrics: Output[Metrics]) -> float:
    import pickle

    import numpy as np

    table = np.loadtxt(test.path, delimiter=",")
    with open(model.path, "rb") as fh:
        clf = pickle.load(fh)
    accuracy = float(clf.score(table[:, :-1], table[:, -1]))
    metrics.log_metric("accuracy", accuracy)
    print(f"accuracy={accuracy}")
    return accuracy


@dsl.component
def register(model: Input[Model], accuracy: float) -> str:
    print(f"registering {model.uri} (accuracy {accuracy:.3f})")
    return model.uri


@dsl.component
def report_low(accuracy: float, threshold: float) -> str:
    message = f"accuracy {accuracy:.3f} is below {threshold}: not registered"
    print(message)
    return message


@dsl.pipeline(name="iris-train")
def iris_pipeline(test_size: float = 0.3, n_estimators: int = 50, min_accuracy: float = 0.9):
    data = load_data()
    parts = split(data=data.outputs["data"], test_size=test_size)
    trained = train_model(train=parts.outputs["train"], n_estimators=n_estimators)
    scored = evaluate(test=parts.outputs["test"], model=trained.outputs["model"])
    with dsl.If(scored.output >= min_accuracy):
        register(model=trained.outputs["model"], accuracy=scored.output)
    with dsl.Else():
        report_low(accuracy=scored.output, threshold=min_accuracy)
