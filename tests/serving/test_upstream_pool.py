"""The gateway's pooled hop to replicas: keep-alive connections are reused, a connection
the replica closes is replaced, and ``Connection: close`` is honoured."""

from __future__ import annotations

import asyncio

import pytest

from shipyard.serving.upstream import UpstreamPool


async def _server(
    close: bool, silent_close: bool = False, mute: bool = False
) -> tuple[asyncio.Server, list[int], int]:
    """A tiny HTTP/1.1 server counting the connections it accepts; ``silent_close`` drops
    each connection after one response without saying so, ``mute`` never answers."""
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        if mute:
            await reader.read()
            return
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            extra = b"connection: close\r\n" if close else b""
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)
            )
            await writer.drain()
            if close or silent_close:
                writer.close()
                return

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, accepted, port


def _run(close: bool, n: int, silent_close: bool = False) -> tuple[list[bytes], int]:
    async def go() -> tuple[list[bytes], int]:
        server, accepted, port = await _server(close, silent_close)
        pool = UpstreamPool(f"http://127.0.0.1:{port}", timeout=10)
        bodies = []
        try:
            for i in range(n):
                if silent_close:
                    await asyncio.sleep(0.05)  # let the close reach the pool's connection
                status, _, body = await pool.request("POST", "/x", [], b"req-%d" % i)
                assert status == 200
                bodies.append(body)
        finally:
            pool.close()
            server.close()
        return bodies, len(accepted)

    return asyncio.run(go())


def test_keep_alive_connection_is_reused() -> None:
    bodies, connections = _run(close=False, n=5)
    assert bodies == [b"req-%d" % i for i in range(5)]
    assert connections == 1


def test_connection_close_is_honoured() -> None:
    bodies, connections = _run(close=True, n=3)
    assert bodies == [b"req-0", b"req-1", b"req-2"]
    assert connections == 3


def test_a_connection_the_replica_dropped_is_replaced() -> None:
    bodies, connections = _run(close=False, n=3, silent_close=True)
    assert bodies == [b"req-0", b"req-1", b"req-2"]
    assert connections == 3


def test_a_replica_that_does_not_answer_times_out() -> None:
    async def go() -> None:
        server, _, port = await _server(close=False, mute=True)
        pool = UpstreamPool(f"http://127.0.0.1:{port}", timeout=0.2)
        try:
            with pytest.raises(TimeoutError):
                await pool.request("POST", "/x", [], b"hello")
        finally:
            pool.close()
            server.close()

    asyncio.run(go())
