"""A lean pooled HTTP/1.1 client for the gateway's hop to a replica.

Keep-alive connections per replica, requests written in one piece, responses parsed by
httptools (uvicorn's parser). The hop carries every inference request, so it avoids a
general-purpose client's per-request overhead.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import httptools


class _Response:
    __slots__ = ("body", "done", "headers", "keep_alive", "parser")

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.done = False
        self.keep_alive = False
        self.parser: Any = None

    def on_headers_complete(self) -> None:
        # Asked here: once the message is complete, httptools always answers False.
        self.keep_alive = self.parser.should_keep_alive()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True


class UpstreamPool:
    """Idle keep-alive connections to one replica (``http://host:port``)."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.host_header = f"{self.host}:{self.port}".encode()
        self.timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        reused = bool(self._idle)
        conn = self._idle.pop() if reused else await self._connect()
        try:
            return await asyncio.wait_for(
                self._exchange(conn, method, path, headers, body), self.timeout
            )
        except (ConnectionError, asyncio.IncompleteReadError, httptools.HttpParserError):
            conn[1].close()
            if not reused:
                raise
            # A kept-alive connection the replica closed meanwhile: once more, fresh.
            conn = await self._connect()
            return await asyncio.wait_for(
                self._exchange(conn, method, path, headers, body), self.timeout
            )
        except BaseException:
            conn[1].close()
            raise

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 2.0)

    async def _exchange(
        self,
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        method: str,
        path: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        reader, writer = conn
        head = [f"{method} {path} HTTP/1.1\r\n".encode(), b"host: ", self.host_header, b"\r\n"]
        for k, v in headers:
            head += [k, b": ", v, b"\r\n"]
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        writer.write(b"".join(head) + body)
        resp = _Response()
        parser: Any = httptools.HttpResponseParser(resp)
        resp.parser = parser
        while not resp.done:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("the replica closed the connection")
            parser.feed_data(data)
        if resp.keep_alive:
            self._idle.append(conn)
        else:
            writer.close()
        return parser.get_status_code(), resp.headers, b"".join(resp.body)

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()
