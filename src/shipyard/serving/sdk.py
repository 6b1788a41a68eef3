"""Client SDK for serving: ``serve`` a model folder, ``predict`` through the gateway."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from shipyard import errors

Obj = dict[str, Any]
ISVC_API = "serving.kserve.io/v1beta1"


def inference_service(
    name: str, storage_uri: str, model_format: str = "sklearn", **predictor: Any
) -> Obj:
    """An InferenceService manifest for one model."""
    return {
        "apiVersion": ISVC_API,
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": model_format}, "storageUri": storage_uri},
                **predictor,
            }
        },
    }


class ServingMixin:
    """Mixed into :class:`shipyard.client.Client`."""

    def serve(
        self,
        path: str | Path,
        name: str,
        model_format: str = "sklearn",
        *,
        namespace: str | None = None,
        wait: bool = True,
        timeout: float = 120.0,
        **predictor: Any,
    ) -> Obj:
        """Create or update an InferenceService for the model at ``path``; with ``wait``,
        return once it is Ready (raising with the load failure if it cannot load)."""
        uri = str(path) if "://" in str(path) else str(Path(path).expanduser().resolve())
        self.apply(  # type: ignore[attr-defined]
            inference_service(name, uri, model_format, **predictor), namespace=namespace
        )
        if not wait:
            obj: Obj = self.get("isvc", name, namespace)  # type: ignore[attr-defined]
            return obj
        return self.wait_isvc_ready(name, namespace=namespace, timeout=timeout)

    def wait_isvc_ready(
        self, name: str, *, namespace: str | None = None, timeout: float = 120.0
    ) -> Obj:
        deadline = time.monotonic() + timeout
        while True:
            obj: Obj = self.get("isvc", name, namespace)  # type: ignore[attr-defined]
            status = obj.get("status") or {}
            model = status.get("modelStatus") or {}
            conds = {c["type"]: c for c in status.get("conditions") or []}
            latest_ok = conds.get("LatestDeploymentReady", {}).get("status") == "True"
            if conds.get("Ready", {}).get("status") == "True" and latest_ok:
                return obj
            if model.get("transitionStatus") in ("BlockedByFailedLoad", "InvalidSpec"):
                failure = (model.get("lastFailureInfo") or {}).get("message", "")
                raise errors.BadRequest(f"inferenceservice/{name} failed: {failure}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"inferenceservice/{name} was not ready in {timeout:g}s")
            time.sleep(0.1)

    def predict(
        self,
        name: str,
        payload: Obj,
        *,
        namespace: str | None = None,
        model: str | None = None,
    ) -> Any:
        """Send a V1 (``instances``) or V2 (``inputs``) request through the gateway."""
        obj: Obj = self.get("isvc", name, namespace)  # type: ignore[attr-defined]
        url = (obj.get("status") or {}).get("url")
        if not url:
            raise errors.Unavailable(f"inferenceservice/{name} has no URL yet: is it Ready?")
        m = model or name
        path = f"/v2/models/{m}/infer" if "inputs" in payload else f"/v1/models/{m}:predict"
        http = self._http  # type: ignore[attr-defined]
        resp = http.post(url + path, json=payload, timeout=120.0)
        body = resp.json()
        if resp.status_code >= 400:
            message = body.get("error") if isinstance(body, dict) else str(body)
            cls = {400: errors.BadRequest, 404: errors.NotFound, 503: errors.Unavailable}.get(
                resp.status_code, errors.ShipyardError
            )
            raise cls(f"inferenceservice/{name}: {message}")
        return body
