"""Continuous batching for `modmt serve`: sentences join and leave the running batches between decoding steps.

Requests put their sentences in a queue. One worker thread decodes; each turn it
  1. admits waiting sentences, one per request in turn (first come, first served across requests),
     a group of a quarter of `max_batch` at a time within `max_batch` in flight, plus at once, while a
     long request runs, the first sentence of a request with nothing in flight (a reserve of a quarter
     of `max_batch`); the
     sentences of a long request (more texts than a group) are prefilled as a new RunningBatch
     (runtime/decoding.py) of their own, those of the short requests admitted together as one (prompts
     padded to the backend's join multiple, not to 64: the same bits, less padding to compute);
  2. steps one running batch: the one holding the request that has had the least decoding time so
     far (steps and prefills are charged to their requests by rows, a short request's charge divided
     by SHORT_WEIGHT, and a new request starts level with the least-served one), so a short request
     arriving behind a long one takes most of the CPU instead of waiting for it, and a stream of
     short requests cannot starve a long one (it keeps a fixed share);
  3. hands each finished sentence to its request at once; a request answers when its last is done;
  4. joins two batches of one backend within `max_batch`: batches of short requests whatever their
     sizes, others only of like size (at most twice the rows: a short request's sentence in a long
     one's batch many times its size would step at that batch's pace). With join="aligned" only
     when their caches line up (same length modulo the backend's join multiple: 64, or the smaller
     one runtime/join_alignment.py measures; that keeps every row's arithmetic, so answers do not
     depend on what ran beside them), and a small batch at most CATCH_UP steps behind one it may
     join is stepped alone until they do (step 2 yields to this, for a bounded number of steps);
     with join="any" whenever they fit. A stepped batch first drops the leading cache columns that no row
     attends to any more (by multiples of the join multiple: RunningBatch.trim), so a batch that lives on
     while sentences come and go keeps a cache the length of what it holds.
Beam search is kept: a sentence's beams are rows that enter and leave together. The queue is bounded
in sentences (queued or decoding): a request that would overfill it is refused at once (`Busy`). A
client that goes away (`cancel`) frees its rows at the next turn. Decoding runs in the thread, so the
event loop keeps answering while batches decode.
"""
import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from modmt.runtime.decoding import PAD_MULTIPLE, DecodeSettings, RunningBatch, hypotheses_of

CATCH_UP = 16  # steps a small batch may take alone to line up with a bigger one and join it
SHORT_WEIGHT = 2.0  # a short request's share of the CPU against a long one's (weighted fair sharing)


class Busy(Exception):
    """The queue is full, or the server is shutting down: answer 503 now."""


@dataclass
class Job:
    """One request: its sentences (pieces), each with its backend and routing item."""
    texts: list[str]
    directions: list[tuple]            # (src, tgt, w) per text
    alternatives: int
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    results: list = field(default_factory=list)   # per text: [best, alternative, ...]
    left: int = 0
    waiting: deque = field(default_factory=deque)  # indices not yet admitted
    in_flight: int = 0
    served: float = 0.0                # decoding seconds charged to this request
    cancelled: bool = False
    truncated: int = 0                 # sentences whose translation stopped at max_new_tokens


@dataclass(frozen=True, eq=False)
class Row:
    """What a RunningBatch carries per sentence: its request, its index there, its backend's routing item."""
    job: Job
    index: int
    item: object


class Batcher:
    def __init__(self, backends: dict, settings: DecodeSettings = DecodeSettings(), max_batch: int = 16,
                 max_wait_ms: float = 10.0, max_queue: int = 256, log_every_s: float = 10.0, metrics=None,
                 report=None, join: str = "aligned"):
        """report(line): hears a throughput line every log_every_s seconds (the CLI prints it); metrics: a
        ServerMetrics (runtime/server_metrics.py) told of every step and sentence. join: "aligned" joins
        batches only where no row's arithmetic changes (answers equal the offline API's); "any" joins
        whatever fits (fewer, fuller batches; an answer may then differ from the offline one where a
        near-tie flips)."""
        if join not in ("aligned", "any"):
            raise ValueError(f"join is aligned or any, not {join!r}")
        self.aligned = join == "aligned"
        self.backends, self.settings, self.max_batch = backends, settings, max_batch
        self.max_wait, self.max_queue, self.log_every = max_wait_ms / 1000, max_queue, log_every_s
        self.metrics, self.report = metrics, report
        # One decoder_for per backend, made once: batches join only if theirs is the same object.
        self._decoder_for = decoders_of(backends)
        self.jobs: deque = deque()        # requests with sentences waiting, in arrival order
        self.batches: list[tuple[object, RunningBatch]] = []   # (backend, batch)
        self.pending = 0                  # sentences queued or decoding
        self.closed = False
        self.cond = threading.Condition()
        self.stats = {"requests": 0, "sentences": 0, "batches": 0, "steps": 0, "joins": 0, "refused": 0,
                      "truncated": 0}
        self._window = (time.monotonic(), 0)
        self._catching = 0                # catch-up steps in a row (_pick)
        self.thread = threading.Thread(target=self._work, name="modmt-batcher", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def swap(self, backends: dict) -> None:
        """Serve `backends` from now on (`modmt serve` reloading its paths): sentences admitted from now on go to
        them; batches decoding keep the backends they started with until they finish."""
        with self.cond:
            self._decoder_for = {**self._decoder_for, **decoders_of(backends)}
            self.backends = backends

    def _forget_old_backends(self) -> None:
        """Drop the decoders of backends a reload replaced once no batch runs on them (their sessions are freed)."""
        with self.cond:
            keep = {id(b) for b in self.backends.values()} | {id(b) for b, _ in self.batches}
            if len(self._decoder_for) > len(keep):
                self._decoder_for = {k: v for k, v in self._decoder_for.items() if k in keep}

    @property
    def in_flight(self) -> int:
        return sum(batch.sentences for _, batch in self.batches)

    async def translate(self, texts: list[str], directions: list[tuple], alternatives: int = 0,
                        detail: bool = False):
        """One translation per text, in order. detail: per text [best, alternative, ...] (at most
        `alternatives` of those, from the beam's finished hypotheses), and how many texts' translations
        stopped at max_new_tokens."""
        loop = asyncio.get_running_loop()
        job = Job(texts, directions, alternatives, loop.create_future(), loop, [None] * len(texts), len(texts),
                  deque(range(len(texts))))
        if not texts:
            return ([], 0) if detail else []
        with self.cond:
            if self.closed:
                raise Busy("the server is shutting down; retry on another instance")
            if self.pending + len(texts) > self.max_queue:
                self.stats["refused"] += 1
                raise Busy(f"the server's queue is full ({self.pending} of {self.max_queue} sentences); retry later")
            self.pending += len(texts)
            job.served = min((j.served for j in self._live_jobs()), default=0.0)
            self.jobs.append(job)
            self.stats["requests"] += 1
            self.cond.notify()
        try:
            results = await job.future
        except asyncio.CancelledError:
            self.cancel(job)
            raise
        return (results, job.truncated) if detail else [r[0] for r in results]

    def cancel(self, job: Job) -> None:
        """The client went away: its queued sentences are dropped now, its rows at the worker's next turn."""
        with self.cond:
            job.cancelled = True
            self.pending -= len(job.waiting)
            job.waiting.clear()

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new work, finish what is queued or decoding (up to `timeout`), then refuse what is left."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.thread.join(timeout)
        with self.cond:
            left = list(self.jobs)
            self.jobs.clear()
            for job in left:
                self.pending -= len(job.waiting)
                job.waiting.clear()
        for job in left:  # a sentence of it never ran: the request cannot be answered whole
            job.cancelled = True
            job.loop.call_soon_threadsafe(_fail, job.future, Busy("the server shut down before this request ran"))

    # ---- the worker ------------------------------------------------------------------------------------

    def _live_jobs(self):
        seen = {}
        for _, batch in self.batches:
            for row in batch.items():
                seen[id(row.job)] = row.job
        for job in self.jobs:
            seen[id(job)] = job
        return list(seen.values())

    def _take(self) -> list:
        """Sentences to admit now, one per request in turn; waits when idle.

        Within max_batch in flight, a group of a quarter of max_batch at a time: one batch of four
        sentences steps faster than four of one, a prefill of a few sentences does not hold up the others'
        steps for long (a short request arriving behind a long one is not kept waiting for a prefill of
        its 16 sentences), and groups prefilled one after another catch up and join.
        Beyond max_batch, a reserve of a quarter of it admits the first sentence of a request that has
        nothing in flight at once, so a short request is not held behind a long one's sentences.
        """
        with self.cond:
            while not self.jobs and not self.batches and not self.closed:
                self.cond.wait()
            if not self.jobs:
                return []
            group = max(1, self.max_batch // 4)
            if not self.batches:  # idle: a few ms for more sentences to arrive and share the first batch
                deadline = time.monotonic() + self.max_wait
                while sum(len(j.waiting) for j in self.jobs) < group and not self.closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self.cond.wait(remaining)
            in_flight, taken = self.in_flight, []
            waiting = sum(len(j.waiting) for j in self.jobs)
            room = self.max_batch - in_flight
            if room >= min(waiting, group) or not self.batches:  # a group at a time: steps go on between prefills
                taken = self._round_robin(min(room, group))
            # The reserve protects short requests from long ones; among short requests alone it would only
            # make more, smaller prefills and joins (each join copies the running batch's cache).
            long_running = any(not self._short(row.job) for _, batch in self.batches for row in batch.items())
            reserve = self.max_batch + group - in_flight - len(taken) if long_running else 0
            for job in list(self.jobs):
                if reserve <= 0:
                    break
                if job.in_flight == 0 and job.waiting:
                    taken.append((job, job.waiting.popleft()))
                    job.in_flight += 1
                    reserve -= 1
            self.jobs = deque(j for j in self.jobs if j.waiting)
            return taken

    def _round_robin(self, room: int) -> list:
        """One sentence per request in turn. A request with rows in flight takes more only while it is the
        least served: the fair share rules prefills as it rules steps, so a long request's next group waits
        while a short request that arrived behind it catches up."""
        least = min((j.served for j in self._live_jobs()), default=0.0)
        taken, passed = [], 0
        while room > 0 and self.jobs and passed < len(self.jobs):
            job = self.jobs.popleft()
            if job.waiting and (job.in_flight == 0 or job.served <= least):
                taken.append((job, job.waiting.popleft()))
                job.in_flight += 1
                room -= 1
                passed = 0
            else:
                passed += 1
            if job.waiting:
                self.jobs.append(job)
        return taken

    def _short(self, job: Job) -> bool:
        """A request of at most a group's texts (a quarter of max_batch): many of them are best served in one
        batch; a longer one is kept apart from them (_may_join) so that it cannot set their pace."""
        return len(job.texts) <= max(1, self.max_batch // 4)

    def _weight(self, job: Job) -> float:
        """Time charged to a request is divided by this: a short request competing with a long one gets
        SHORT_WEIGHT times its share, so it answers sooner, and the long one still gets a fixed share."""
        return SHORT_WEIGHT if self._short(job) else 1.0

    def _admit(self, taken: list) -> None:
        # One new batch per (backend, long request), and one for the short requests admitted together;
        # batches then join others by the rules of _may_join.
        groups = {}
        for job, i in taken:
            src, tgt, w = job.directions[i]
            try:
                backend = self.backends[(src, tgt)]  # a reload may have taken the direction away since
                row = Row(job, i, backend.item(src, tgt, w))
                prompt = backend.encode(job.texts[i], row.item)[0]
            except Exception as e:  # checked by the app before; a failure here fails its request only
                self._fail(job, e, admitted=1)
                continue
            key = (id(backend), "short" if self._short(job) else id(job))
            groups.setdefault(key, (backend, []))[1].append((row, prompt))
        # The short requests' prefill first: a long request's group must not hold them up.
        for _, (backend, rows) in sorted(groups.items(), key=lambda kv: kv[0][1] != "short"):
            rows.sort(key=lambda rp: len(rp[1]))  # little padding within each new batch
            for start in range(0, len(rows), self.max_batch):
                chunk = rows[start:start + self.max_batch]
                started = time.monotonic()
                try:
                    batch = RunningBatch(self._decoder_for[id(backend)], [r for r, _ in chunk],
                                         [p for _, p in chunk], self.settings, backend.stop_ids, backend.pad_id,
                                         self._multiple(backend))
                    elapsed = time.monotonic() - started
                    for row, _ in chunk:  # the prefill is decoding time too: its requests pay for it
                        row.job.served += elapsed / len(chunk) / self._weight(row.job)
                    if self.metrics is not None:
                        self.metrics.prefill(elapsed)
                except Exception as e:
                    for row, _ in chunk:
                        self._fail(row.job, e, admitted=1)
                    continue
                self.stats["batches"] += 1
                self._deliver(backend, batch.finished_at_start)
                if not batch.done:
                    self.batches.append((backend, batch))

    def _work(self) -> None:
        while True:
            taken = self._take()
            if taken:
                self._admit(taken)
            self._drop_cancelled()
            if not self.batches:
                with self.cond:
                    if self.closed and not self.jobs:
                        return
                continue
            backend, batch = self._pick()
            started = time.monotonic()
            try:
                finished = batch.step()
            except Exception as e:  # a decoding failure fails its requests, never the server
                with self.cond:
                    self.pending -= batch.sentences
                for job in {id(r.job): r.job for r in batch.items()}.values():
                    self._fail(job, e)
                self.batches.remove((backend, batch))
                continue
            elapsed = time.monotonic() - started
            rows = batch.items() + [f.item for f in finished]
            for row in rows:  # each request pays for its rows' share of the step
                row.job.served += elapsed / len(rows) / self._weight(row.job)
            self.stats["steps"] += 1
            if self.metrics is not None:
                self.metrics.step(elapsed, len(rows))
            self._deliver(backend, finished)
            batch.trim(self._multiple(backend))  # the columns only sentences that left attended to
            self._join()
            self.batches = [(b, x) for b, x in self.batches if not x.done]
            self._log()

    def _pick(self) -> tuple:
        """The batch to step: one that catches up with a bigger one it can join within CATCH_UP steps of its
        own (small steps, then one batch instead of two), else the one whose least-served request has had
        the least decoding time."""
        catch_up = None
        for backend, x in (self.batches if self.aligned else []):
            for _, y in self.batches:
                if not x.can_join(y, None) or not self._may_join(x, y):
                    continue
                behind = (y.width - x.width) % self._multiple(backend)  # x's steps until the two line up
                if 0 < behind <= CATCH_UP and (catch_up is None or behind < catch_up[0]):
                    catch_up = (behind, (backend, x))
        self._catching = self._catching + 1 if catch_up is not None else 0
        if catch_up is not None and self._catching <= 2 * CATCH_UP:  # bounded: the others are never starved
            return catch_up[1]
        self._catching = 0
        return min(self.batches, key=lambda bb: min(r.job.served for r in bb[1].items()))

    def _may_join(self, small, big) -> bool:
        """Within max_batch: batches of short requests only, whatever their sizes (one full batch serves
        many short requests best); otherwise only batches of like size (at most twice the rows): a
        sentence joining a batch many times its size would step at that batch's pace, so a short request
        would wait on a long one's big batch; like sizes still merge, doubling, into full batches."""
        if small.sentences + big.sentences > self.max_batch:
            return False
        if all(self._short(row.job) for row in small.items() + big.items()):
            return True
        return small.rows <= big.rows <= 2 * small.rows

    def _multiple(self, backend) -> int:
        """Cache lengths of two of backend's batches must agree modulo this to join, and its prompts are padded
        and its caches trimmed by it (1 with join="any": any lengths join)."""
        return getattr(backend, "join_multiple", PAD_MULTIPLE) if self.aligned else 1

    def _join(self) -> None:
        for i, (backend, a) in enumerate(self.batches):
            for _, b in self.batches[i + 1:]:
                if a.can_join(b, self._multiple(backend)) and self._may_join(*sorted((a, b), key=lambda x: x.rows)):
                    a.join(b)
                    self.stats["joins"] += 1

    def _drop_cancelled(self) -> None:
        for _, batch in self.batches:
            if any(r.job.cancelled for r in batch.items()):
                gone = batch.drop(lambda row: row.job.cancelled)
                with self.cond:
                    self.pending -= gone
        self.batches = [(b, x) for b, x in self.batches if not x.done]
        self._forget_old_backends()
        self._forget_old_backends()

    def _deliver(self, backend, finished: list) -> None:
        for f in finished:
            row, job = f.item, f.item.job
            try:
                texts = self._answers(backend, f)
            except Exception as e:  # a failure here fails its request, never the worker
                with self.cond:
                    self.pending -= 1
                job.in_flight -= 1
                self._fail(job, e)
                continue
            job.results[row.index] = texts[: 1 + job.alternatives]
            job.left -= 1
            job.in_flight -= 1
            job.truncated += not f.complete
            with self.cond:
                self.pending -= 1
                self.stats["sentences"] += 1
                self.stats["truncated"] += not f.complete
            if self.metrics is not None:
                self.metrics.sentence(job.directions[row.index][:2])
            if job.left == 0 and not job.cancelled:
                job.loop.call_soon_threadsafe(_finish, job.future, job.results)

    def _answers(self, backend, f) -> list[str]:
        """A finished sentence's texts, the one to answer with first: the beam's best, or with the guard on the
        best in the target language (as the offline API answers), then the others in the beam's order."""
        texts = hypotheses_of(f, backend.tokenizer)
        if self.settings.guard:
            row = f.item
            direction = row.job.directions[row.index]
            index, verdict = backend.guard.choose(texts, row.job.texts[row.index], direction[1])
            texts = [texts[index], *texts[:index], *texts[index + 1:]]
            if self.metrics is not None:
                self.metrics.guarded(direction[:2], verdict)
        return texts

    def _fail(self, job: Job, error: Exception, admitted: int = 0) -> None:
        """Fail the request; `admitted` of its sentences were taken from the queue but are in no batch."""
        with self.cond:
            self.pending -= len(job.waiting) + admitted
            job.in_flight -= admitted
            job.waiting.clear()
        job.cancelled = True  # its other rows are dropped at the next turn
        job.loop.call_soon_threadsafe(_fail, job.future, error)

    def _log(self) -> None:
        started, before = self._window
        now = time.monotonic()
        if now - started >= self.log_every:
            done = self.stats["sentences"] - before
            if self.report is not None:
                self.report(f"modmt serve: {self.stats['requests']} requests, {self.stats['sentences']} sentences, "
                            f"{self.stats['steps']} steps of {self.stats['batches']} batches ({self.stats['joins']} "
                            f"joins); {done / (now - started):.2f} sentences/s over the last {now - started:.0f} s; "
                            f"queue {self.pending}; refused {self.stats['refused']}")
            self._window = (now, self.stats["sentences"])


def decoders_of(backends: dict) -> dict:
    """{id(backend): decoder_for(rows)} of each distinct backend: what RunningBatch routes its rows with."""
    return {id(b): (lambda rows, b=b: b.decoder_for([r.item for r in rows])) for b in backends.values()}


def _finish(future: asyncio.Future, results: list) -> None:
    if not future.done():  # the client may have gone away
        future.set_result(results)


def _fail(future: asyncio.Future, error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
