"""A pipeline as a kfp user writes it, ported by changing ``from kfp import dsl`` to
``from shipyard import dsl``: an importer, a container component, InputPath / OutputPath,
dsl.If / dsl.Else with dsl.OneOf, a run-time placeholder and ignore_upstream_failure.

    shipyard run examples/pipelines/kfp_port.py --watch
    shipyard run examples/pipelines/kfp_port.py -p model=forest --watch
"""

from importlib.resources import files

from shipyard import dsl
from shipyard.dsl import Dataset, Input, InputPath, Metrics, Model, Output, OutputPath

# The iris CSV scikit-learn ships (a header line, then 150 rows of 4 features and a label).
IRIS_CSV = str(files("sklearn.datasets") / "data" / "iris.csv")


@dsl.container_component
def count_rows(data: Input[Dataset], rows: OutputPath(int)):
    return dsl.ContainerSpec(
        image="alpine:3.20",
        command=["sh", "-c", 'tail -n +2 "$0" | wc -l > "$1"'],
        args=[data.path, rows],
    )


@dsl.component
def split(data: InputPath("Dataset"), test_fraction: float, train: Output[Dataset],
          test: Output[Dataset]):  # fmt: skip
    import numpy as np

    table = np.loadtxt(data, delimiter=",", skiprows=1)
    rng = np.random.default_rng(0)
    rng.shuffle(table)
    cut = int(len(table) * (1 - test_fraction))
    np.savetxt(train.path, table[:cut], delimiter=",")
    np.savetxt(test.path, table[cut:], delimiter=",")


@dsl.component
def train_tree(train: Input[Dataset], model: Output[Model]):
    import joblib
    import numpy as np
    from sklearn.tree import DecisionTreeClassifier

    table = np.loadtxt(train.path, delimiter=",")
    joblib.dump(DecisionTreeClassifier(random_state=0).fit(table[:, :4], table[:, 4]), model.path)
    model.metadata["kind"] = "tree"


@dsl.component
def train_forest(train: Input[Dataset], model: Output[Model]):
    import joblib
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    table = np.loadtxt(train.path, delimiter=",")
    forest = RandomForestClassifier(n_estimators=50, random_state=0)
    joblib.dump(forest.fit(table[:, :4], table[:, 4]), model.path)
    model.metadata["kind"] = "forest"


@dsl.component
def evaluate(model: Input[Model], test: Input[Dataset], metrics: Output[Metrics]) -> float:
    import joblib
    import numpy as np

    table = np.loadtxt(test.path, delimiter=",")
    accuracy = float(joblib.load(model.path).score(table[:, :4], table[:, 4]))
    metrics.log_metric("accuracy", accuracy)
    return accuracy


@dsl.component
def report(run: str, rows: int = 0, accuracy: float = -1.0) -> str:
    if accuracy < 0:
        return f"{run}: {rows} rows, no model"
    return f"{run}: {rows} rows, accuracy {accuracy:.3f}"


@dsl.pipeline(name="kfp-port", description="A kfp-style pipeline: import, count, split, train.")
def kfp_port(data_uri: str = IRIS_CSV, model: str = "tree", test_fraction: float = 0.3) -> str:
    data = dsl.importer(artifact_uri=data_uri, artifact_class=Dataset, metadata={"of": "iris"})
    rows = count_rows(data=data.output)
    parts = split(data=data.output, test_fraction=test_fraction)
    with dsl.If(model == "tree"):
        tree = train_tree(train=parts.outputs["train"])
    with dsl.Else():
        forest = train_forest(train=parts.outputs["train"])
    trained = dsl.OneOf(tree.outputs["model"], forest.outputs["model"])
    score = evaluate(model=trained, test=parts.outputs["test"])
    summary = report(
        rows=rows.outputs["rows"], run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER, accuracy=score.output
    ).ignore_upstream_failure()
    return summary.output
