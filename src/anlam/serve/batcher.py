"""Dynamic micro-batching: concurrent requests share one forward pass.

A CPU forward pass over 32 short sentences costs little more than over one, so requests that
arrive together are queued and merged. The dispatcher takes the oldest request, then keeps adding
queued ones until the batch reaches ``max_batch_size`` texts or ``max_batch_tokens`` padded
tokens, or ``max_wait_ms`` has passed; it runs one ``encode`` on a model thread (the event loop
keeps accepting requests meanwhile) and hands each request its rows. Under load the queue fills
while a batch runs, so batches form without any waiting; the wait only matters when the server
is idle.

With ``workers`` > 1 (an int8 export runs one OpenVINO stream per core) several batches run at
once: a batch formed while other workers are idle is shared between them, shortest requests
together, so one batch's forward pass overlaps the next one's HTTP work instead of waiting for
it. Other calls on the model (a search, a calibration) passed with ``call`` run alone, in queue
order, after every batch before them. The queue is bounded; ``QueueFull`` tells the caller to
shed load instead of letting latency grow without limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from anlam.errors import AnlamError

logger = logging.getLogger(__name__)

EncodeFn = Callable[[list[str]], np.ndarray]


class QueueFull(Exception):
    """The request queue is at capacity; retry later."""


@dataclass(eq=False)
class _Job:
    future: asyncio.Future
    texts: list[str] = field(default_factory=list)
    longest: int = 0  # tokens of the longest text: a batch costs about len(texts) * longest
    call: Callable[[], Any] | None = None  # model work that is not an encode; runs alone


class MicroBatcher:
    """Queue + worker that merges concurrent ``embed`` calls into shared ``encode`` calls.

    Args:
        encode: texts -> ``(n, dim)`` array; called on a model thread, from ``workers`` threads at once.
        max_batch_size: texts per merged batch (a single larger request still runs whole).
        max_batch_tokens: bound on ``texts * longest text`` of a merged batch.
        max_wait_ms: how long a batch waits for company after its first request.
        queue_size: requests waiting at most; beyond it ``embed``/``call`` raise ``QueueFull``.
        batching: ``False`` runs every request alone (one forward pass per request).
        workers: model threads; ``encode`` must be safe to call from that many threads at once.
    """

    def __init__(self, encode: EncodeFn, max_batch_size: int = 64, max_batch_tokens: int = 16384,
                 max_wait_ms: float = 5.0, queue_size: int = 256, batching: bool = True, workers: int = 1) -> None:
        self.encode = encode
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_ms / 1000
        self.queue_size = queue_size
        self.batching = batching
        self.workers = max(1, workers)
        self.batches = 0  # encode calls so far (for /healthz and benchmarks)
        self.encoded = 0  # texts encoded so far
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._idle = self.workers  # model threads not running anything
        self._freed = asyncio.Event()  # set whenever a model thread finishes
        self._running: set[asyncio.Task] = set()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the worker on the running event loop."""
        self._queue = asyncio.Queue(self.queue_size)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="anlam-model")
        self._idle = self.workers
        self._worker = asyncio.create_task(self._run(), name="anlam-batcher")

    async def stop(self) -> None:
        """Stop the worker; queued requests fail with ``CancelledError``."""
        for task in [t for t in (self._worker, *self._running) if t is not None]:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        while self._queue is not None and not self._queue.empty():
            self._queue.get_nowait().future.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._worker = self._executor = None

    @property
    def queued(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    # -- submitting ------------------------------------------------------------------------

    async def embed(self, texts: Sequence[str], tokens: Sequence[int]) -> np.ndarray:
        """Rows of ``encode(texts)``, computed together with whatever else is queued.

        Args:
            tokens: token count of each text (sizes the batch).

        Raises:
            QueueFull: the queue is at capacity.
        """
        return await self._submit(_Job(self._future(), list(texts), max(tokens, default=0)))

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` on the model thread, in queue order, alone.

        Raises:
            QueueFull: the queue is at capacity.
        """
        return await self._submit(_Job(self._future(), call=fn))

    @property
    def _jobs(self) -> asyncio.Queue[_Job]:
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        return self._queue

    def _future(self) -> asyncio.Future:
        return asyncio.get_running_loop().create_future()

    async def _submit(self, job: _Job) -> Any:
        try:
            self._jobs.put_nowait(job)
        except asyncio.QueueFull:
            raise QueueFull(f"{self.queue_size} requests already queued") from None
        return await job.future

    # -- the worker ------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        held: _Job | None = None  # a job that did not fit the previous batch: it opens the next one
        while True:
            await self._until_idle(1)  # a job leaves the queue only when a model thread can take it
            first = held or await self._jobs.get()
            held = None
            alone = first.call is not None
            if alone:
                await self._until_idle(self.workers)
            batch = [first]
            if not alone and self.batching:
                batch, held = await self._fill(first, loop.time() + self.max_wait)
            live = [job for job in batch if not job.future.done()]  # skip requests whose caller left
            if not live:
                continue
            for part in [live] if alone else _share(live, self._idle):
                self._idle -= 1
                task = asyncio.create_task(self._execute(part))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            if alone:  # nothing starts beside it
                await self._until_idle(self.workers)

    async def _until_idle(self, workers: int) -> None:
        while self._idle < workers:
            self._freed.clear()
            await self._freed.wait()

    async def _execute(self, jobs: list[_Job]) -> None:
        """Run one batch (or one call) on a model thread and hand each job its result."""
        loop = asyncio.get_running_loop()
        first = jobs[0]
        fn = first.call if first.call is not None else partial(self.encode, [t for job in jobs for t in job.texts])
        try:
            result = await loop.run_in_executor(self._executor, fn)
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request
            if not isinstance(exc, AnlamError):  # a user's mistake is answered, not logged as a failure
                logger.exception("model call failed")
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        finally:
            self._idle += 1
            self._freed.set()
        if first.call is not None:
            _resolve(first, result)
            return
        self.batches += 1
        self.encoded += len(result)
        start = 0
        for job in jobs:
            _resolve(job, result[start : start + len(job.texts)])
            start += len(job.texts)

    async def _fill(self, first: _Job, deadline: float) -> tuple[list[_Job], _Job | None]:
        """``first`` plus queued encode jobs that fit, waiting until ``deadline`` for more."""
        loop = asyncio.get_running_loop()
        batch, size, longest = [first], len(first.texts), first.longest
        while size < self.max_batch_size:
            try:
                job = self._jobs.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._jobs.get(), remaining)
                except TimeoutError:
                    break
            grown, tall = size + len(job.texts), max(longest, job.longest)
            if job.call is not None or grown > self.max_batch_size or grown * tall > self.max_batch_tokens:
                return batch, job
            batch.append(job)
            size, longest = grown, tall
        return batch, None


def _share(jobs: list[_Job], workers: int) -> list[list[_Job]]:
    """``jobs`` as up to ``workers`` batches of about equal texts, shortest jobs together (less padding)."""
    if workers <= 1 or len(jobs) <= 1:
        return [jobs]
    jobs = sorted(jobs, key=lambda job: job.longest)
    total, size = sum(len(job.texts) for job in jobs), 0
    parts: list[list[_Job]] = []
    part: list[_Job] = []
    for job in jobs:
        part.append(job)
        size += len(job.texts)
        if size * workers >= total * (len(parts) + 1) and len(parts) < workers - 1:
            parts.append(part)
            part = []
    return [*parts, part] if part else parts


def _resolve(job: _Job, result: Any) -> None:
    if not job.future.done():
        job.future.set_result(result)
