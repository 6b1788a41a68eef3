"""Fixtures for the model server tests: a trained iris model and a running server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def train_iris(folder: Path, c: float = 1.0, max_iter: int = 1000) -> Path:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    folder.mkdir(parents=True, exist_ok=True)
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(C=c, max_iter=max_iter).fit(x, y), folder / "model.joblib")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(args: list[str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    fh = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipyard.serving.server", "--http-port", str(port), *args],
        stdout=fh,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"model server exited: {log.read_text()}")
        try:
            if httpx.get(url + "/v2/health/ready").status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("model server did not become ready")


@pytest.fixture
def launch_server() -> Callable[[list[str], Path], tuple[subprocess.Popen[bytes], str]]:
    """:func:`start_server` for tests (a conftest's functions are not importable)."""
    return start_server


@pytest.fixture(scope="session")
def iris_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_iris(tmp_path_factory.mktemp("iris"))


@pytest.fixture(scope="module")
def model_server(
    iris_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """iris (sklearn, batching up to 4 rows) and wordcount (custom) on one server, with a
    request/response log sink."""
    tmp = tmp_path_factory.mktemp("server")
    sink = tmp / "requests.jsonl"
    proc, url = start_server(
        [
            "--model",
            f"iris:sklearn:{iris_dir}",
            "--model",
            f"wordcount:custom:{ROOT / 'examples' / 'serving' / 'custom'}",
            "--max-batch-size",
            "4",
            "--max-latency-ms",
            "20",
            "--log-sink",
            str(sink),
        ],
        tmp / "server.log",
    )
    try:
        yield url, sink
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
