"""A lean pooled HTTP/1.1 client for the gateway's hop to a replica.

Keep-alive connections per replica, each an :class:`asyncio.Protocol` feeding httptools
(uvicorn's parser) straight from ``data_received``: a request is one ``write`` and one
future, with no stream reader, no task and no ``wait_for`` per request. The hop carries
every inference request, so it avoids a general-purpose client's per-request overhead.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import httptools

Response = tuple[int, list[tuple[bytes, bytes]], bytes]


class _Conn(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep_alive = False
        self._fut: asyncio.Future[Response] | None = None
        self._parser: Any = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._parser is None:
            self._fail(ConnectionError("the replica sent data with no request in flight"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad response from the replica: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError("the replica closed the connection"))

    # -- httptools callbacks --------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        # Asked here: once the message is complete, httptools always answers False.
        self.keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        fut, parser = self._fut, self._parser
        self._fut = self._parser = None
        if fut is not None and not fut.done():
            fut.set_result((parser.get_status_code(), self._headers, b"".join(self._body)))

    # -- use ------------------------------------------------------------------------------

    def send(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._fut = fut
        self._parser = httptools.HttpResponseParser(self)
        self._headers = []
        self._body = []
        self.keep_alive = False
        self.transport.write(data)
        return fut

    def _fail(self, exc: Exception) -> None:
        fut = self._fut
        self._fut = self._parser = None
        if fut is not None and not fut.done():
            fut.set_exception(exc)
        if self.transport is not None:
            self.closed = True
            self.transport.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """Idle keep-alive connections to one replica (``http://host:port``)."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.host_header = f"{self.host}:{self.port}".encode()
        self.timeout = timeout
        self._idle: list[_Conn] = []

    async def request(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Response:
        head = [f"{method} {path} HTTP/1.1\r\n".encode(), b"host: ", self.host_header, b"\r\n"]
        for k, v in headers:
            head += [k, b": ", v, b"\r\n"]
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        head.append(body)
        data = b"".join(head)
        conn = self._take()
        if conn is not None:
            try:
                return await self._exchange(conn, data)
            except ConnectionError:
                pass  # a kept-alive connection the replica closed meanwhile: once more, fresh
        return await self._exchange(await self._connect(), data)

    def _take(self) -> _Conn | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return None

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(loop.create_connection(_Conn, self.host, self.port), 2.0)
        return conn

    async def _exchange(self, conn: _Conn, data: bytes) -> Response:
        fut = conn.send(data)
        timer = asyncio.get_running_loop().call_later(self.timeout, _expire, conn, fut)
        try:
            result = await fut
        except BaseException:
            conn.close()
            raise
        finally:
            timer.cancel()
        if conn.keep_alive and not conn.closed:
            self._idle.append(conn)
        else:
            conn.close()
        return result

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


def _expire(conn: _Conn, fut: asyncio.Future[Response]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError("the replica did not answer in time"))
    conn.close()
