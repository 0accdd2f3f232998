"""The micro-batcher: requests' rows gathered into one network call, split back.

Each request hands its encoded rows to score(); the batcher's loop waits for the first, gathers the ones that come
within max_wait seconds (or until max_batch rows), scores them in one call, and answers each request with its own
slice. A small batch (up to `inline_values` input values) is scored on the event loop itself, where the handoff to
a thread would cost more than the network call; a larger one on a worker thread, while the next batch gathers. Either
way, requests that arrive while a batch is scored wait together for the next call, so batches grow with the load. A
request whose client went away meanwhile is dropped from its batch, or its answer discarded.
"""
from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np


@dataclass
class _Job:
    x: np.ndarray
    answer: asyncio.Future


INLINE_VALUES = 1 << 16  # a batch of up to this many input values (83 MNIST rows) is scored on the event loop


class MicroBatcher:
    """Gathers concurrent score() calls into calls of `score` on up to `max_batch` rows (1: every request alone)."""

    def __init__(self, score: Callable[[np.ndarray], np.ndarray], max_batch: int, max_wait: float,
                 inline_values: int = INLINE_VALUES) -> None:
        self._score, self.max_batch, self.max_wait, self.inline_values = score, max_batch, max_wait, inline_values
        self._jobs: collections.deque[_Job] = collections.deque()
        self._arrived: asyncio.Event | None = None  # made on the event loop that runs the batcher
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="deepwater-score")
        self._loop: asyncio.Task | None = None
        self.calls = 0  # network calls made, for /model and the tests
        self.requests = 0

    def start(self) -> None:
        """Start the gathering loop on the running event loop."""
        self._arrived = asyncio.Event()
        self._loop = asyncio.get_running_loop().create_task(self._run(), name="deepwater-batcher")

    async def stop(self) -> None:
        """Stop the loop (requests still waiting are cancelled) and the worker thread."""
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        for job in self._jobs:
            job.answer.cancel()
        self._executor.shutdown(wait=True)

    async def score(self, x: np.ndarray) -> np.ndarray:
        """The outputs of the rows `x`, scored with other requests' rows."""
        if self._arrived is None:
            raise RuntimeError("the micro-batcher is not started: call start() on the event loop first.")
        job = _Job(x, asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self.requests += 1
        self._arrived.set()
        return await job.answer

    def _pending_rows(self) -> int:
        return sum(len(job.x) for job in self._jobs)

    async def _gather(self) -> list[_Job]:
        """The next batch: the oldest request and those behind it, up to max_batch rows in all."""
        while not self._jobs:
            self._arrived.clear()
            await self._arrived.wait()
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while self.max_batch > 1 and self._pending_rows() < self.max_batch:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                break
        batch = [self._jobs.popleft()]
        rows = len(batch[0].x)
        while self._jobs and rows + len(self._jobs[0].x) <= self.max_batch:
            rows += len(self._jobs[0].x)
            batch.append(self._jobs.popleft())
        return [job for job in batch if not job.answer.done()]  # done: cancelled, its client gone

    async def _run(self) -> None:
        while True:
            batch = await self._gather()
            if not batch:
                continue
            x = batch[0].x if len(batch) == 1 else np.concatenate([job.x for job in batch])
            try:
                if x.size <= self.inline_values:
                    out = self._call(x)
                else:
                    out = await asyncio.get_running_loop().run_in_executor(self._executor, self._call, x)
            except Exception as error:  # handed to each request, which answers it
                for job in batch:
                    if not job.answer.done():
                        job.answer.set_exception(error)
                continue
            ends = np.cumsum([len(job.x) for job in batch])
            for job, part in zip(batch, np.split(out, ends[:-1])):
                if not job.answer.done():
                    job.answer.set_result(part)

    def _call(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self._score(x)
