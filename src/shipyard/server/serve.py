"""Running the platform behind uvicorn: in the foreground (``shipyard up``) or on a
background thread (``Client.embedded``)."""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from shipyard.core.config import Settings
from shipyard.errors import ShipyardError
from shipyard.platform import Platform
from shipyard.server.app import create_app

log = logging.getLogger(__name__)


class PortInUse(ShipyardError):
    status = 500
    code = "PortInUse"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so 'port in use' is a clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortInUse(
            f"cannot listen on {host}:{port} ({exc.strerror}): stop what uses it or pass --port"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _server(platform: Platform, sock: socket.socket) -> uvicorn.Server:
    app = create_app(platform)
    # Everything alive now (imports, the platform, the app) lives as long as the server: out
    # of the cyclic collector's way. Otherwise each full collection walks it all and stalls
    # every request in flight for ~100 ms, which is the gateway's p99.
    gc.freeze()
    config = uvicorn.Config(
        app,
        log_level="warning",
        # httptools writes each response in one piece; h11 hits Nagle + delayed ACK (40 ms).
        http="httptools",
        loop="auto",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


def _announce(platform: Platform, sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    platform.url = url
    env = getattr(platform.runtime, "base_env", None)
    if isinstance(env, dict):
        env["SHIPYARD_URL"] = url
    return url


def run_foreground(
    settings: Settings, *, on_ready: Callable[[Platform, str], None] | None = None
) -> None:
    """``shipyard up``: serve until SIGINT/SIGTERM, then stop the platform and its Pods."""
    sock = bind(settings.host, settings.port)
    platform = Platform(settings)
    url = _announce(platform, sock)
    platform.start()
    server = _server(platform, sock)
    if on_ready is not None:

        def ready() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.01)
            if server.started:
                on_ready(platform, url)

        threading.Thread(target=ready, daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        platform.stop()
        sock.close()


class BackgroundServer:
    """A platform served on a loopback port from a thread of this process."""

    def __init__(self, settings: Settings, runtime: Any = None) -> None:
        self.sock = bind(settings.host, settings.port)
        self.platform = Platform(settings, runtime=runtime)
        self.url = _announce(self.platform, self.sock)
        self.platform.start()
        self.server = _server(self.platform, self.sock)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True, name="api"
        )
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the embedded API server did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        with contextlib.suppress(OSError):
            self.sock.close()
        self.platform.stop()
