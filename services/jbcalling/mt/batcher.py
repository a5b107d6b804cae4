"""Micro-batching: concurrent requests' sentences are translated together in one engine call.

A collector task per direction takes the first waiting sentence, waits for a free translator,
then gathers whatever else is queued (up to ``max_batch``, waiting at most ``max_wait``) and runs
the batch in the executor. While every translator is busy the queue grows, so batches grow with
load and latency stays bounded by one batch. A full queue is refused at once (:class:`Busy`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Executor

from prometheus_client import CollectorRegistry, Counter, Histogram


class Busy(Exception):
    """The queue is full: retryable later (503 with Retry-After)."""


class BatchMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.batches = Counter("jb_mt_batches_total", "Engine batch calls", ["pair"], registry=registry)
        self.size = Histogram("jb_mt_batch_size", "Sentences per batch call", ["pair"],
                              buckets=(1, 2, 4, 8, 16, 32, 64), registry=registry)
        self.seconds = Histogram("jb_mt_batch_seconds", "Duration of one batch call", ["pair"],
                                 registry=registry)


class MicroBatcher:
    def __init__(self, pair: str, fn: Callable[[list[str]], list[str]], *,
                 workers: int, max_batch: int, max_wait_s: float, max_queue: int,
                 metrics: BatchMetrics) -> None:
        self.pair = pair
        self.fn = fn
        self.executor: Executor | None = None
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.metrics = metrics
        self.workers = workers
        self.queue: asyncio.Queue[tuple[str, asyncio.Future[str]]] = asyncio.Queue()
        self.slots = asyncio.Semaphore(workers)
        self.active = 0
        self.calls = 0
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    def start(self, executor: Executor) -> None:
        self.executor = executor
        self.queue = asyncio.Queue()
        self.slots = asyncio.Semaphore(self.workers)
        self._task = asyncio.create_task(self._collect(), name=f"mt-batcher-{self.pair}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for t in list(self._running):
            with contextlib.suppress(Exception):
                await t

    async def submit(self, sentences: list[str]) -> list[str]:
        if self.queue.qsize() + len(sentences) > self.max_queue:
            raise Busy(f"{self.queue.qsize()} sentences queued for {self.pair}")
        loop = asyncio.get_running_loop()
        futures = []
        for s in sentences:
            fut: asyncio.Future[str] = loop.create_future()
            self.queue.put_nowait((s, fut))
            futures.append(fut)
        return list(await asyncio.gather(*futures))

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            await self.slots.acquire()
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch:
                if not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), remaining))
                except TimeoutError:
                    break
            task = asyncio.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[str, asyncio.Future[str]]]) -> None:
        loop = asyncio.get_running_loop()
        self.active += 1
        self.calls += 1
        self.metrics.batches.labels(self.pair).inc()
        self.metrics.size.labels(self.pair).observe(len(batch))
        t0 = loop.time()
        try:
            results = await loop.run_in_executor(self.executor, self.fn, [s for s, _ in batch])
        except Exception as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
        else:
            for (_, fut), text in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(text)
        finally:
            self.metrics.seconds.labels(self.pair).observe(loop.time() - t0)
            self.active -= 1
            self.slots.release()
