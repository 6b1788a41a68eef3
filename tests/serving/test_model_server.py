"""The model server as a real process, through tritonclient and plain HTTP."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

IRIS_ROWS = [[6.8, 2.8, 4.8, 1.4], [5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]]
IRIS_CLASSES = [1, 0, 2]


def _triton(url: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url.removeprefix("http://"))


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("datatype", ["FP32", "FP64", "FP16"])
def test_tritonclient_infer(model_server: tuple[str, Path], binary: bool, datatype: str) -> None:
    url, _ = model_server
    c = _triton(url)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("iris")
    inp = triton.InferInput("x", [3, 4], datatype)
    inp.set_data_from_numpy(np.array(IRIS_ROWS, dtype=triton_np(datatype)), binary_data=binary)
    out = triton.InferRequestedOutput("output-0", binary_data=binary)
    result = c.infer("iris", [inp], outputs=[out], request_id="req-7")
    assert result.as_numpy("output-0").tolist() == IRIS_CLASSES
    assert result.get_response()["id"] == "req-7"


def triton_np(datatype: str) -> type:
    return {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16}[datatype]


@pytest.mark.parametrize("binary", [False, True])
def test_bytes_tensor_to_custom_model(model_server: tuple[str, Path], binary: bool) -> None:
    url, _ = model_server
    c = _triton(url)
    inp = triton.InferInput("text", [2], "BYTES")
    inp.set_data_from_numpy(np.array([b"one two three", b"four"], dtype=np.object_), binary)
    result = c.infer(
        "wordcount", [inp], outputs=[triton.InferRequestedOutput("word_count", binary)]
    )
    assert result.as_numpy("word_count").tolist() == [3, 1]


def test_metadata_and_listing(model_server: tuple[str, Path]) -> None:
    url, _ = model_server
    meta = _triton(url).get_model_metadata("iris")
    assert meta["name"] == "iris" and meta["inputs"][0]["shape"] == [-1, 4]
    assert httpx.get(url + "/v2").json()["extensions"] == ["binary_tensor_data"]
    assert set(httpx.get(url + "/v1/models").json()["models"]) == {"iris", "wordcount"}
    assert httpx.get(url + "/v1/models/iris").json() == {"name": "iris", "ready": True}


def test_v1_predict(model_server: tuple[str, Path]) -> None:
    url, _ = model_server
    r = httpx.post(url + "/v1/models/iris:predict", json={"instances": IRIS_ROWS})
    assert r.status_code == 200 and r.json() == {"predictions": IRIS_CLASSES}
    r = httpx.post(url + "/v1/models/wordcount:predict", json={"instances": ["a b", "c"]})
    assert r.json() == {"predictions": {"word_count": [2, 1]}}


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v2/models/iris/infer", b"{not json", 400, "not valid JSON"),
        ("/v2/models/iris/infer", b"[]", 400, "inputs"),
        (
            "/v2/models/iris/infer",
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
            400,
            "input 'x'",
        ),
        (
            "/v2/models/iris/infer",
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3]}]},
            400,
            "input 'x'",
        ),
        (
            "/v2/models/iris/infer",
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP99", "data": [1, 2, 3, 4]}]},
            400,
            "input 'x'",
        ),
        (
            "/v2/models/iris/infer",
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BYTES", "data": ["a"] * 4}]},
            400,
            "input 'x'",
        ),
        ("/v2/models/nope/infer", {"inputs": []}, 404, "nope"),
        ("/v1/models/iris:predict", b"{", 400, "not valid JSON"),
        ("/v1/models/iris:predict", {"instances": [[1, 2]]}, 400, "expects 4"),
        ("/v1/models/nope:predict", {"instances": [[1]]}, 404, "nope"),
        ("/v3/anything", b"", 404, "no such path"),
    ],
)
def test_errors_have_the_protocol_shape(
    model_server: tuple[str, Path], path: str, body: object, status: int, needle: str
) -> None:
    url, _ = model_server
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    r = httpx.post(url + path, content=content)
    assert r.status_code == status
    assert set(r.json()) == {"error"} and needle in r.json()["error"]


def test_tritonclient_sees_errors(model_server: tuple[str, Path]) -> None:
    url, _ = model_server
    inp = triton.InferInput("x", [1, 2], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 2), dtype=np.float32), binary_data=True)
    with pytest.raises(InferenceServerException, match="expects 4"):
        _triton(url).infer("iris", [inp])


def _batch_buckets(url: str) -> dict[str, float]:
    out = {}
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith('shipyard_serving_batch_size_bucket{le="') and 'model="iris"' in line:
            le = line.split('le="')[1].split('"')[0]
            out[le] = float(line.rsplit(" ", 1)[1])
    return out


def test_concurrent_requests_are_batched_never_beyond_max(
    model_server: tuple[str, Path],
) -> None:
    url, _ = model_server
    before = _batch_buckets(url)
    results: list[int] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with httpx.Client() as h:
                for _ in range(20):
                    rows = [IRIS_ROWS[i % 3]] * (1 + i % 3)  # 1-3 rows per request
                    r = h.post(url + "/v1/models/iris:predict", json={"instances": rows})
                    assert r.status_code == 200
                    assert r.json()["predictions"] == [IRIS_CLASSES[i % 3]] * len(rows)
                    results.append(len(rows))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 240
    after = _batch_buckets(url)
    calls = after["+Inf"] - before["+Inf"]
    assert after["4.0"] - before["4.0"] == calls  # no predict call over maxBatchSize rows
    assert calls < 240  # some requests shared a predict call
    r = httpx.post(url + "/v1/models/iris:predict", json={"instances": [IRIS_ROWS[0]] * 9})
    assert r.json()["predictions"] == [1] * 9  # a request over the limit is split
    assert _batch_buckets(url)["4.0"] == _batch_buckets(url)["+Inf"]


def test_request_logger_writes_requests_and_responses(model_server: tuple[str, Path]) -> None:
    url, sink = model_server
    body = {
        "id": "log-me",
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROWS[0]}],
    }
    assert httpx.post(url + "/v2/models/iris/infer", json=body).status_code == 200
    records = [orjson.loads(line) for line in sink.read_bytes().splitlines()]
    mine = [r for r in records if r["id"] == "log-me"]
    assert [r["type"] for r in mine] == ["request", "response"]
    assert mine[0]["body"]["inputs"][0]["data"] == IRIS_ROWS[0]
    assert mine[1]["body"]["outputs"][0]["data"] == [1]


def test_metrics_count_requests_per_model(model_server: tuple[str, Path]) -> None:
    url, _ = model_server
    httpx.post(url + "/v2/models/nope/infer", json={"inputs": []})
    text = httpx.get(url + "/metrics").text
    assert 'shipyard_serving_requests_total{code="200",model="iris",protocol="v2"}' in text
    assert 'shipyard_serving_requests_total{code="404",model="nope",protocol="v2"}' in text
    assert 'shipyard_serving_request_duration_seconds_count{model="iris"}' in text
