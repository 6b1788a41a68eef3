"""The calls of kfp-kubernetes (``from kfp import kubernetes``), as ``from shipyard import
kubernetes`` gives them: they set where a task's environment comes from and where it may
run, so a pipeline using them ports by changing its import:

    task = train(...)
    kubernetes.use_secret_as_env(task, secret_name="db", secret_key_to_env={"password": "PW"})

Secrets and ConfigMaps are Shipyard's own (``shipyard apply -f secret.yaml``), read when the
task's Pod starts; locally, as on Kubernetes, a missing one keeps the Pod Pending with
CreateContainerConfigError.
"""

from __future__ import annotations

from shipyard.pipelines.dsl import PipelineTask


def use_secret_as_env(
    task: PipelineTask,
    secret_name: str,
    secret_key_to_env: dict[str, str],
    optional: bool = False,
) -> PipelineTask:
    """Set env var ``secret_key_to_env[key]`` to the Secret's ``key``, for each key."""
    return _refs(task, "secretKeyRef", secret_name, secret_key_to_env, optional)


def use_config_map_as_env(
    task: PipelineTask,
    config_map_name: str,
    config_map_key_to_env: dict[str, str],
    optional: bool = False,
) -> PipelineTask:
    """Set env var ``config_map_key_to_env[key]`` to the ConfigMap's ``key``, for each key."""
    return _refs(task, "configMapKeyRef", config_map_name, config_map_key_to_env, optional)


def add_node_selector(task: PipelineTask, label_key: str, label_value: str) -> PipelineTask:
    """Run the task on nodes with this label (honoured on Kubernetes; the local runtime
    records it on the Pod as accepted but not enforced)."""
    task.node_selector[label_key] = label_value
    return task


def add_toleration(
    task: PipelineTask,
    key: str | None = None,
    operator: str = "Equal",
    value: str | None = None,
    effect: str | None = None,
    toleration_seconds: int | None = None,
) -> PipelineTask:
    """Let the task's Pod run on nodes with a matching taint (honoured on Kubernetes; the
    local runtime records it on the Pod as accepted but not enforced)."""
    t: dict[str, object] = {"operator": operator}
    for name, v in (("key", key), ("value", value), ("effect", effect)):
        if v is not None:
            t[name] = v
    if toleration_seconds is not None:
        t["tolerationSeconds"] = int(toleration_seconds)
    task.tolerations.append(t)
    return task


def _refs(
    task: PipelineTask, kind: str, name: str, key_to_env: dict[str, str], optional: bool
) -> PipelineTask:
    from shipyard.pipelines.dsl import CompileError

    if not isinstance(task, PipelineTask):
        raise CompileError(
            f"expected a task (what a component returns in a pipeline), got {task!r}"
        )
    for key, env in sorted(key_to_env.items()):
        ref = {"name": str(env), kind: {"name": str(name), "key": str(key)}}
        if optional:
            ref[kind]["optional"] = True  # type: ignore[index]
        task.env_refs.append(ref)
    return task
