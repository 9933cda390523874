"""Dynamic batching for `modmt serve`: concurrent requests' sentences decoded together on one worker thread.

Requests put their sentences in one queue; the worker takes up to `max_batch` of them, waiting at
most `max_wait_ms` after the first for more to arrive, so sentences of different requests and
different directions share a batch (a routed base decodes mixed directions in one run). The queue
is bounded in sentences: a request that would overfill it is refused at once (`Busy`), never left
to time out. Decoding runs in a thread, so the event loop keeps answering while a batch decodes.
"""
import asyncio
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field


class Busy(Exception):
    """The queue is full, or the server is shutting down: answer 503 now."""


@dataclass
class Job:
    texts: list[str]
    directions: list[tuple]           # (src, tgt, w) per text
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    results: list = field(default_factory=list)
    left: int = 0


class Batcher:
    def __init__(self, backends: dict, max_batch: int = 16, max_wait_ms: float = 10.0, max_queue: int = 256,
                 decoding: dict | None = None, log_every_s: float = 10.0):
        self.backends, self.max_batch, self.max_wait = backends, max_batch, max_wait_ms / 1000
        self.max_queue, self.decoding, self.log_every = max_queue, decoding or {}, log_every_s
        self.queue: deque = deque()       # (job, index) per sentence
        self.pending = 0                  # sentences queued or decoding
        self.closed = False
        self.cond = threading.Condition()
        self.stats = {"requests": 0, "sentences": 0, "batches": 0, "refused": 0}
        self._window = (time.monotonic(), 0)
        self.thread = threading.Thread(target=self._work, name="modmt-batcher", daemon=True)

    def start(self) -> None:
        self.thread.start()

    async def translate(self, texts: list[str], directions: list[tuple]) -> list[str]:
        loop = asyncio.get_running_loop()
        job = Job(texts, directions, loop.create_future(), loop, [""] * len(texts), len(texts))
        with self.cond:
            if self.closed:
                raise Busy("the server is shutting down; retry on another instance")
            if self.pending + len(texts) > self.max_queue:
                self.stats["refused"] += 1
                raise Busy(f"the server's queue is full ({self.pending} of {self.max_queue} sentences); retry later")
            self.pending += len(texts)
            self.queue.extend((job, i) for i in range(len(texts)))
            self.stats["requests"] += 1
            self.cond.notify()
        return await job.future

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new work, finish what is queued (up to `timeout`), then refuse what is left."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.thread.join(timeout)
        with self.cond:
            left = {id(job): job for job, _ in self.queue}
            self.queue.clear()
        for job in left.values():
            job.loop.call_soon_threadsafe(_fail, job.future, Busy("the server shut down before this request ran"))

    def _take(self) -> list:
        with self.cond:
            while not self.queue and not self.closed:
                self.cond.wait()
            if not self.queue:
                return []
            deadline = time.monotonic() + self.max_wait  # a few ms for the batch to fill
            while len(self.queue) < self.max_batch and not self.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.cond.wait(remaining)
            return [self.queue.popleft() for _ in range(min(self.max_batch, len(self.queue)))]

    def _work(self) -> None:
        while batch := self._take():
            try:
                self._run(batch)
            except Exception as e:  # a decoding failure fails its requests, never the server
                for job in {id(j): j for j, _ in batch}.values():
                    job.loop.call_soon_threadsafe(_fail, job.future, e)
            with self.cond:
                self.pending -= len(batch)
            self._log(len(batch))

    def _run(self, batch: list) -> None:
        groups = {}
        for job, i in batch:  # one call per backend: a routed base takes every direction it holds at once
            backend = self.backends[job.directions[i][:2]]
            groups.setdefault(id(backend), (backend, []))[1].append((job, i))
        for backend, items in groups.values():
            outputs = backend.translate([job.texts[i] for job, i in items], [job.directions[i] for job, i in items],
                                        batch_size=self.max_batch, **self.decoding)
            for (job, i), text in zip(items, outputs):
                job.results[i] = text
                job.left -= 1
                if job.left == 0:
                    job.loop.call_soon_threadsafe(_finish, job.future, job.results)

    def _log(self, sentences: int) -> None:
        self.stats["sentences"] += sentences
        self.stats["batches"] += 1
        started, before = self._window
        now = time.monotonic()
        if now - started >= self.log_every:
            done = self.stats["sentences"] - before
            print(f"modmt serve: {self.stats['requests']} requests, {self.stats['sentences']} sentences in "
                  f"{self.stats['batches']} batches; {done / (now - started):.2f} sentences/s over the last "
                  f"{now - started:.0f} s; queue {self.pending}; refused {self.stats['refused']}",
                  file=sys.stderr, flush=True)
            self._window = (now, self.stats["sentences"])


def _finish(future: asyncio.Future, results: list) -> None:
    if not future.done():  # the client may have gone away
        future.set_result(results)


def _fail(future: asyncio.Future, error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
