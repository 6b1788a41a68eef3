"""Client SDK for training, in the spirit of Kubeflow's TrainerClient.

    handle = client.train(train_fn, num_nodes=2, resources_per_node={"cpu": "1"})
    handle.wait()            # "Succeeded" (raises TrainingFailed on failure)
    print(handle.logs())     # every node's log, prefixed by replica

The function's source travels in the job (``SHIPYARD_TRAIN_FN``) and runs on every node with
the PyTorch env contract (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ...), so
``torch.distributed.init_process_group("gloo")`` works in it as is. It must be a plain
top-level function whose imports are inside it.
"""

from __future__ import annotations

import inspect
import json
import os
import secrets
import textwrap
import time
from collections.abc import Callable
from typing import Any

from shipyard.errors import BadRequest, ShipyardError

Obj = dict[str, Any]
_RUN = (
    "import json, os; exec(compile(os.environ['SHIPYARD_TRAIN_FN'], 'train_fn', 'exec'), "
    "{'__name__': '__train__'})"
)


class TrainingFailed(ShipyardError):
    status = 500
    code = "TrainingFailed"


def function_script(fn: Callable[..., Any], kwargs: Obj | None = None) -> str:
    """Python source that defines ``fn`` and calls it with ``kwargs``."""
    if not callable(fn) or getattr(fn, "__name__", "<lambda>") == "<lambda>":
        raise BadRequest("train() needs a named function defined with def")
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise BadRequest(f"cannot read the source of {fn.__name__!r}: {exc}") from None
    call = f"{fn.__name__}(**json.loads({json.dumps(json.dumps(kwargs or {}))}))"
    return f"import json\n{source}\n{call}\n"


class TrainJobHandle:
    """A submitted job: wait for it, read its logs, status and metrics."""

    def __init__(self, client: Any, name: str, namespace: str) -> None:
        self.client = client
        self.name = name
        self.namespace = namespace

    def get(self) -> Obj:
        obj: Obj = self.client.get("trainjobs.shipyard.dev", self.name, self.namespace)
        return obj

    @staticmethod
    def state(obj: Obj) -> str | None:
        for cond in (obj.get("status") or {}).get("conditions") or []:
            if cond.get("type") in ("Succeeded", "Failed") and cond.get("status") == "True":
                return str(cond["type"])
        return None

    def wait(self, timeout: float = 600.0) -> str:
        """Block until the job finished; ``"Succeeded"``, or TrainingFailed with the reason."""
        deadline = time.monotonic() + timeout
        obj = self.get()
        while self.state(obj) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"trainjob/{self.name} did not finish in {timeout:g}s")
            for event in self.client.watch(
                "trainjobs.shipyard.dev",
                self.namespace,
                name=self.name,
                resource_version=obj["metadata"]["resourceVersion"],
                timeout=left,
            ):
                obj = event["object"]
                if self.state(obj) is not None:
                    break
            else:
                obj = self.get()
        if self.state(obj) == "Failed":
            cond = next(c for c in obj["status"]["conditions"] if c["type"] == "Failed")
            raise TrainingFailed(f"trainjob/{self.name} failed: {cond.get('message', '')}")
        return "Succeeded"

    def metrics(self) -> dict[str, float]:
        return dict((self.get().get("status") or {}).get("metrics") or {})

    def logs(self, replica: str | None = None) -> str:
        """One replica's log (``worker-0``), or all of them prefixed by replica."""
        pods = self.client.list(
            "pods", self.namespace, selector=f"training.kubeflow.org/job-name={self.name}"
        )
        out: list[str] = []
        for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
            key = pod["metadata"]["labels"].get("shipyard.dev/replica", "")
            if replica is not None and key != replica:
                continue
            text = "".join(self.client.logs(pod["metadata"]["name"], self.namespace))
            if replica is not None:
                return text
            out += [f"[{key}] {line}" for line in text.splitlines()]
        if replica is not None:
            raise BadRequest(f"trainjob/{self.name} has no replica {replica!r}")
        return "\n".join(out) + ("\n" if out else "")


class TrainingMixin:
    """``Client.train``: run a Python function as a distributed training job."""

    def train(
        self,
        fn: Callable[..., Any],
        *,
        num_nodes: int = 1,
        resources_per_node: dict[str, str | int] | None = None,
        packages: list[str] | None = None,
        kwargs: Obj | None = None,
        env: dict[str, str] | None = None,
        name: str | None = None,
        namespace: str | None = None,
        restart_policy: str = "Never",
        backoff_limit: int | None = None,
    ) -> TrainJobHandle:
        if num_nodes < 1:
            raise BadRequest("num_nodes must be at least 1", field="num_nodes")
        name = name or f"train-{secrets.token_hex(3)}"
        ns = namespace or "default"
        command = ["python", "-c", _RUN]
        if packages:
            command = [
                "sh",
                "-c",
                'python -m pip install --quiet "$@" && exec python -c "$SHIPYARD_TRAIN_RUN"',
                "sh",
                *packages,
            ]
        variables = {
            "SHIPYARD_TRAIN_FN": function_script(fn, kwargs),
            "SHIPYARD_TRAIN_RUN": _RUN,
            **(env or {}),
        }
        container: Obj = {
            "name": "pytorch",
            "image": "python",
            "command": command,
            "env": [{"name": k, "value": v} for k, v in variables.items()],
        }
        if resources_per_node:
            limits = {k: str(v) for k, v in resources_per_node.items()}
            container["resources"] = {"requests": limits, "limits": limits}
        run_policy: Obj = {}
        if backoff_limit is not None:
            run_policy["backoffLimit"] = backoff_limit
        job = {
            "apiVersion": "shipyard.dev/v1",
            "kind": "TrainJob",
            "metadata": {
                "name": name,
                "namespace": ns,
                "annotations": {"shipyard.dev/source-dir": os.getcwd()},
            },
            "spec": {
                "framework": "pytorch",
                "runPolicy": run_policy,
                "replicaSpecs": {
                    "Worker": {
                        "replicas": num_nodes,
                        "restartPolicy": restart_policy,
                        "template": {"spec": {"containers": [container]}},
                    }
                },
            },
        }
        self.apply(job)  # type: ignore[attr-defined]
        return TrainJobHandle(self, name, ns)
