"""Polling for tests that watch real processes and servers change state."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_until(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy, and return that; fail naming
    ``what`` (or the check) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or check}")
        time.sleep(0.02)


def process_gone(pid: int) -> bool:
    """Whether process ``pid`` has ended: gone, or a zombie its parent has yet to reap. A
    process reaped between two looks counts as gone (psutil then raises NoSuchProcess)."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True
