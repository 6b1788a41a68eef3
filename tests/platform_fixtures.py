"""Fixtures for tests that need a running platform (imported by conftest.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.client import Client

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "shipyard"
    d.mkdir()
    return d


@pytest.fixture
def client(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """An embedded platform (SQLite + local processes in a temp folder) on a free loopback
    port, with a fast restart backoff so restart tests do not wait seconds."""
    monkeypatch.setenv("SHIPYARD_RESTART_BACKOFF", "0.05")
    c = Client.embedded(data_dir)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def cli_env(client: Client) -> dict[str, str]:
    """Environment for running the ``shipyard`` CLI against the ``client`` platform."""
    env = dict(os.environ)
    env["SHIPYARD_URL"] = client.url
    return env


def shipyard_cmd() -> list[str]:
    return [str(Path(sys.executable).parent / "shipyard")]
