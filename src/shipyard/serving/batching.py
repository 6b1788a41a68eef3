"""Adaptive batching: the rows of concurrent requests go through one predict call.

A batch starts with the first waiting request and takes whatever else is already queued,
up to ``max_batch_size`` rows — never more (KServe #3071). While the queue keeps growing it
waits, at most ``max_latency`` seconds from the first request, for the batch to fill; when
nothing new arrives within one turn of the event loop it goes at once, so a lone request is
not delayed. A single request larger than ``max_batch_size`` rows is split.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np


class Batcher:
    def __init__(
        self,
        predict: Callable[[Any], Any],
        max_batch_size: int = 32,
        max_latency: float = 0.005,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("maxBatchSize must be at least 1")
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_latency = max_latency
        self.on_batch = on_batch
        self._queue: deque[tuple[np.ndarray, asyncio.Future[Any]]] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.largest_batch = 0

    async def submit(self, rows: np.ndarray) -> Any:
        """Predict ``rows`` as part of a batch; returns this request's slice of the result."""
        if rows.shape[0] > self.max_batch_size:
            parts = [
                await self.submit(rows[i : i + self.max_batch_size])
                for i in range(0, rows.shape[0], self.max_batch_size)
            ]
            return np.concatenate(parts)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run())
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.append((rows, fut))
        assert self._wake is not None
        self._wake.set()
        return await fut

    def _take(self, batch: list[tuple[np.ndarray, asyncio.Future[Any]]], rows: int) -> int:
        q = self._queue
        while q:
            x, fut = q[0]
            if rows + x.shape[0] > self.max_batch_size:
                break
            if batch and (x.dtype != batch[0][0].dtype or x.shape[1:] != batch[0][0].shape[1:]):
                break
            q.popleft()
            batch.append((x, fut))
            rows += x.shape[0]
        return rows

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            batch: list[tuple[np.ndarray, asyncio.Future[Any]]] = []
            rows = self._take(batch, 0)
            deadline = time.monotonic() + self.max_latency
            while rows < self.max_batch_size and time.monotonic() < deadline:
                before = len(self._queue)
                await asyncio.sleep(0)
                if len(self._queue) == before:
                    break
                rows = self._take(batch, rows)
            if not batch:
                continue
            self._execute(batch, rows)

    def _execute(self, batch: list[tuple[np.ndarray, asyncio.Future[Any]]], rows: int) -> None:
        self.largest_batch = max(self.largest_batch, rows)
        if self.on_batch is not None:
            self.on_batch(rows)
        try:
            x = batch[0][0] if len(batch) == 1 else np.concatenate([b[0] for b in batch])
            y = self.predict(x)
        except Exception as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        start = 0
        for xi, fut in batch:
            n = xi.shape[0]
            if not fut.done():
                fut.set_result(y[start : start + n])
            start += n
