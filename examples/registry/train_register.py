"""Train in a pipeline and register the model: the registry's end-to-end example.

    shipyard run examples/registry/train_register.py --name iris-reg --watch
    shipyard alias iris production 1
    shipyard apply -f examples/registry/iris-production.yaml
    shipyard wait isvc/iris --for=condition=Ready --timeout=120s
    shipyard predict iris -d @examples/serving/input-v1.json
    shipyard lineage model/iris/production

The train task logs its input dataset (with its digest), params and a metric history, then
``shipyard.log_model`` saves the model as ``model.joblib`` (what the sklearn runtime loads),
uploads it and registers it as the next version of ``iris``, pointing back at the task.
"""

from shipyard import dsl
from shipyard.dsl import Dataset, Input, Output


@dsl.component
def load_data(data: Output[Dataset]):
    import numpy as np
    from sklearn.datasets import load_iris

    iris = load_iris()
    np.savetxt(data.path, np.column_stack([iris.data, iris.target]), delimiter=",")
    data.metadata["rows"] = len(iris.target)


@dsl.component
def train(data: Input[Dataset], n_estimators: int, model_name: str) -> str:
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    import shipyard

    shipyard.log_input(data.uri, name="iris-data")
    shipyard.log_params({"n_estimators": n_estimators, "max_depth": 4})
    table = np.loadtxt(data.path, delimiter=",")
    x_tr, x_te, y_tr, y_te = train_test_split(
        table[:, :-1], table[:, -1], test_size=0.3, random_state=0, stratify=table[:, -1]
    )
    clf = RandomForestClassifier(n_estimators=n_estimators, max_depth=4, random_state=0)
    clf.fit(x_tr, y_tr)
    for step, n in enumerate(range(10, n_estimators + 1, 10)):
        partial = RandomForestClassifier(n_estimators=n, max_depth=4, random_state=0)
        shipyard.log_metric("accuracy", partial.fit(x_tr, y_tr).score(x_te, y_te), step=step)
    shipyard.log_metric("accuracy", float(clf.score(x_te, y_te)), step=n_estimators // 10)
    version = shipyard.log_model(clf, model_name, input_example=x_te[:2])
    print(f"registered {version['metadata']['name']}")
    return str(version["spec"]["version"])


@dsl.pipeline(name="iris-register")
def iris_register(n_estimators: int = 30, model_name: str = "iris"):
    data = load_data()
    train(data=data.outputs["data"], n_estimators=n_estimators, model_name=model_name)
