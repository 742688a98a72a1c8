"""The engine thread of ``seal serve``: the one thread that touches the model, batching requests, running jobs.

torch and the adapter bank's routing state are not thread-safe, so one thread owns the model, the store's
writer connection and every slot. HTTP handlers call :meth:`Engine.submit` (a :class:`GenRequest` with a
``concurrent.futures.Future``) or :meth:`Engine.submit_job` and await; the thread loops:

1. Generation first: it waits ``batch_wait_s`` (a few ms) after the oldest waiting request so that requests
   arriving together are answered together, checks the store's current version (a ``seal learn`` from the CLI,
   serialised by the store's lock, is noticed here and served), then runs them as shared
   ``generator.complete(...)`` calls with one adapter slot per row, one call per group of equal sampling
   parameters (greedy requests with the same ``max_tokens`` share one call; a seeded sampling request runs
   alone so that its seed reproduces).
2. Else the oldest queued learning job (:mod:`seal.serve.jobs`, run by :mod:`seal.serve.runner`): learn /
   forget / rollback of :mod:`seal.learning`, in the learning slots. Between optimiser steps (learning's
   progress callback) the thread answers waiting requests from the serving slots, with the model in eval mode
   and the RNG state saved and restored, so a learn gives the same result as without traffic. A job's new
   version is loaded into a serving slot after its store transaction has committed and only then becomes
   ``seal`` (:class:`seal.serve.versions.ServingSlots`). On a ``merge`` store, a ``forget`` rebuilds the base
   weights, so requests wait until it ends.

The engine is started by ``seal serve`` (``seal.cli_serve``) or by the app's lifespan::

    engine = Engine(seal, "seal-store", serving_slots=3, batch_wait_s=0.005)
    engine.start()              # opens the store, loads the live version, recovers interrupted jobs
    result = engine.submit(GenRequest(["<prompt>"], max_tokens=16, model="seal")).result()
    engine.stop()
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections import Counter, deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import torch

from seal.engine import Seal
from seal.serve.jobs import Job, JobStore, QueueFull
from seal.serve.protocol import APIError
from seal.serve.runner import Stopping, recover, run_job
from seal.serve.versions import DEFAULT_SERVING_SLOTS, NoFreeSlot, ServingSlots
from seal.store import LOCK_NAME, Store

log = logging.getLogger("seal.serve")
INTERNAL = "internal server error (see the server log)"


@dataclass
class GenRequest:
    prompts: list[str]
    max_tokens: int
    model: str = "seal"
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stops: list[str] = field(default_factory=list)
    queries: list[str] | None = None
    """What a routed store routes each prompt by (the user's question); default: the prompts themselves."""
    future: Future = field(default_factory=Future)
    arrived: float = field(default_factory=time.monotonic)
    claimed: bool = False

    @property
    def rows(self) -> int:
        return len(self.prompts) * self.n

    def key(self) -> tuple:
        if self.temperature == 0:
            return ("greedy", self.max_tokens)
        if self.seed is not None:
            return ("seeded", id(self))
        return ("sample", self.temperature, self.top_p, self.max_tokens)


@dataclass
class GenResult:
    choices: list[dict]
    """Per row (prompt-major, then the n choices): ``text``, ``finish_reason``, ``completion_tokens``."""
    prompt_tokens: int
    completion_tokens: int
    version: int
    """The store version that answered (0: the base model)."""
    routes: list[dict | None] | None = None
    """Routed stores: per prompt, the router's decision (document answering or None, score, coverage)."""


class Engine:
    """See the module docstring. Public attributes are read by HTTP threads (plain values, never the model)."""

    def __init__(self, seal: Seal, store_path: str | Path, *, serving_slots: int = DEFAULT_SERVING_SLOTS,
                 batch_wait_s: float = 0.005, max_batch_rows: int = 32, max_pending: int = 64,
                 poll_s: float = 0.5, jobs: JobStore | None = None) -> None:
        self.seal, self.store_path = seal, Path(store_path)
        self.batch_wait_s, self.max_batch_rows, self.max_pending, self.poll_s = (
            batch_wait_s, max_batch_rows, max_pending, poll_s)
        self.slots = ServingSlots(seal, serving_slots)
        self.jobs = jobs or JobStore(self.store_path)
        self.store_locked = False
        """Another process (``seal learn``, ``seal forget``...) holds the store's writer lock: jobs wait."""
        self.stats: Counter = Counter(batches=0, requests=0, rows=0, batches_during_jobs=0, deferred=0)
        self.job: Job | None = None
        self.progress: dict | None = None
        self.max_positions = getattr(getattr(seal.lm.model, "config", None), "max_position_embeddings", None)
        self.store: Store | None = None  # the engine thread's own connection
        self._pending: deque[GenRequest] = deque()
        self._cond = threading.Condition()
        self._wake = self._stop = False
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.serve_in_job = True
        """Whether the running job lets requests be answered between its steps (see ``runner.run_job``)."""
        self._bad_version = None

    # ----------------------------------------------------------------------------- lifecycle
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop

    def start(self) -> None:
        """Start the thread; returns once the live version is loaded (re-raising what went wrong)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._main, name="seal-engine", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def stop(self, timeout: float = 60) -> None:
        """Stop after the current step (a running job is re-queued); fail waiting requests with 503."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._fail_pending(APIError(503, "the server is shutting down", "shutting_down"))

    def _main(self) -> None:
        try:
            self.store = Store.open(self.store_path)
            self.slots.activate(self.store)
            recover(self)
        except BaseException as e:
            self._error = e
            self._ready.set()
            if self.store is not None:
                self.store.close()
            return
        self._ready.set()
        try:
            self._loop()
        except BaseException:
            log.exception("the engine thread stopped")
        finally:
            self._stop = True
            self._fail_pending(APIError(503, "the engine is not running", "engine_unavailable"))
            self.store.close()

    def _loop(self) -> None:
        last_poll = 0.0
        while not self._stop:
            if self._pending:
                self._poll_version()
                self._serve(self.batch_wait_s)
                continue
            job = None if self._store_busy() else self.jobs.claim_next(self._current_id())
            if job is not None:
                run_job(self, job)
                continue
            if time.monotonic() - last_poll >= self.poll_s:
                self._poll_version()
                last_poll = time.monotonic()
            with self._cond:
                if not self._pending and not self._wake and not self._stop:
                    self._cond.wait(self.poll_s)
                self._wake = False

    def _store_busy(self) -> bool:
        """Whether another process holds the store's writer lock. A job then waits here, between requests,
        instead of inside ``learn`` (which would wait for the lock on this thread, and nothing would be served)."""
        try:
            fd = os.open(self.store_path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return False  # the job will report it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.store_locked = False
        except BlockingIOError:
            self.store_locked = True
        finally:
            os.close(fd)  # (closing drops the probe's lock)
        return self.store_locked

    def _current_id(self) -> int:
        cur = self.store.current_version()
        return cur.id if cur is not None else 0

    def _poll_version(self) -> None:
        """Serve the store's current version if another process (``seal learn``, ``seal rollback``) made one."""
        cid = self._current_id()
        if cid == self.slots.live or cid == self._bad_version:
            return
        try:
            self.slots.activate(self.store)
            log.info("now serving store version %d (made outside this server)", cid)
        except Exception:
            self._bad_version = cid
            log.exception("cannot load store version %d; still serving version %d", cid, self.slots.live)

    # ----------------------------------------------------------------------------- submitting (any thread)
    def submit(self, req: GenRequest) -> Future:
        with self._cond:  # (stop() sets _stop under this lock, then fails what is pending: nothing is left behind)
            if not self.running:
                raise APIError(503, "the engine is not running", "engine_unavailable")
            if len(self._pending) >= self.max_pending:
                raise APIError(429, f"{len(self._pending)} generation requests are already waiting; try again",
                               "too_many_requests")
            self._pending.append(req)
            self._cond.notify_all()
        return req.future

    def submit_job(self, kind: str, params: dict, max_queue: int) -> Job:
        if not self.running:
            raise APIError(503, "the engine is not running", "engine_unavailable")
        try:
            job = self.jobs.submit(kind, params, max_queue)
        except QueueFull as e:
            raise APIError(429, str(e), "queue_full") from None
        with self._cond:
            self._wake = True
            self._cond.notify_all()
        return job

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _fail_pending(self, error: APIError) -> None:
        with self._cond:
            waiting, self._pending = list(self._pending), deque()
        for req in waiting:
            if req.claimed or req.future.set_running_or_notify_cancel():
                req.future.set_exception(error)

    # ----------------------------------------------------------------------------- generation
    def _serve(self, wait_s: float, in_job: bool = False) -> None:
        """Take what is waiting (up to ``max_batch_rows`` rows) and answer it in shared generation calls."""
        if wait_s > 0 and self._pending:
            delay = self._pending[0].arrived + wait_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        batch, rows = [], 0
        with self._cond:
            while self._pending and (not batch or rows + self._pending[0].rows <= self.max_batch_rows):
                req = self._pending.popleft()
                if req.claimed or req.future.set_running_or_notify_cancel():  # a gone client's request is dropped
                    req.claimed = True
                    batch.append(req)
                    rows += req.rows
        groups: dict[tuple, list] = {}
        deferred, pinned = [], set()
        for req in batch:
            try:
                route, version, sources, decisions = self.slots.route(self.store, req.model, pinned,
                                                                      req.queries or req.prompts)
            except NoFreeSlot:  # (never for a request alone: there is always a slot besides the live one)
                deferred.append(req)
                continue
            except APIError as e:
                req.future.set_exception(e)
                continue
            except Exception:
                log.exception("cannot load the adapter for %s", req.model)
                req.future.set_exception(APIError(500, INTERNAL))
                continue
            pinned |= sources
            groups.setdefault(req.key(), []).append((req, route, version, decisions))
        if deferred:
            self.stats.update(deferred=len(deferred))
            with self._cond:
                self._pending.extendleft(reversed(deferred))
        for items in groups.values():
            self._generate(items, in_job)

    def _generate(self, items: list, in_job: bool) -> None:
        tok, add = self.seal.lm.tokenizer, not self.seal.lm.has_chat_template
        lengths: dict[str, int] = {}
        ok = []
        for req, route, version, decisions in items:
            for p in req.prompts:
                if p not in lengths:
                    lengths[p] = len(tok(p, add_special_tokens=add)["input_ids"])
            longest = max(lengths[p] for p in req.prompts)
            if self.max_positions and longest + req.max_tokens > self.max_positions:
                req.future.set_exception(APIError(
                    400, f"the prompt has {longest} tokens; with max_tokens {req.max_tokens} that is over the model's "
                         f"context of {self.max_positions} tokens", "context_length_exceeded"))
            else:
                ok.append((req, route, version, decisions))
        if not ok:
            return
        prompts, routes = [], []
        for req, route, _, _ in ok:
            per = route if isinstance(route, list) else [route] * len(req.prompts)
            for p, r in zip(req.prompts, per, strict=True):
                prompts += [p] * req.n
                routes += [r] * req.n
        first = ok[0][0]
        try:
            texts = self.seal.generator.complete(
                prompts, max_new_tokens=first.max_tokens, temperature=first.temperature, top_p=first.top_p,
                seed=first.seed if first.temperature > 0 else None, adapters=routes)
        except Exception:
            log.exception("generation failed")
            for req, *_ in ok:
                req.future.set_exception(APIError(500, INTERNAL))
            return
        counts = getattr(self.seal.generator, "last_counts", None) or [None] * len(texts)
        self.stats.update(batches=1, requests=len(ok), rows=len(prompts), batches_during_jobs=int(in_job))
        i = 0
        for req, _, version, decisions in ok:
            choices = []
            for _ in range(req.rows):
                choices.append(self._finish(texts[i], req, counts[i]))
                i += 1
            routed = [d.as_dict() if d is not None else None for d in decisions] if decisions is not None else None
            req.future.set_result(GenResult(choices, sum(lengths[p] for p in req.prompts),
                                            sum(c["completion_tokens"] for c in choices), version, routed))

    def _finish(self, text: str, req: GenRequest, generated: int | None) -> dict:
        """Cut at the first stop string; count tokens (as generated; a cut answer as the tokenizer encodes it)."""
        cut = min((i for i in (text.find(s) for s in req.stops) if i >= 0), default=-1)
        if cut >= 0 or generated is None:
            text = text[:cut] if cut >= 0 else text
            n = len(self.seal.lm.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0
            generated = n if generated is None else min(n, generated)
        finish = "stop" if cut >= 0 or generated < req.max_tokens else "length"
        return {"text": text, "finish_reason": finish, "completion_tokens": generated}

    # ----------------------------------------------------------------------------- jobs
    def job_progress(self, phase: str, done: int, total: int) -> None:
        """Learning's progress callback, between optimiser steps: answer waiting requests, then go on."""
        self.progress = {"phase": phase, "done": done, "total": total}
        if self._stop:
            raise Stopping
        if not self.serve_in_job or not self._pending:
            return
        model = self.seal.lm.model
        was_training = model.training
        dev = self.seal.lm.device
        try:
            with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
                model.eval()
                for _ in range(4):  # bounded: training goes on even under a flood of requests
                    if not self._pending:
                        break
                    self._serve(0.0, in_job=True)
        except Exception:
            log.exception("serving between training steps failed")
        finally:
            model.train(was_training)

    def restore(self) -> None:
        """Serve the store's current version (after a job; on a merge store this also re-merges its chain)."""
        try:
            self.slots.activate(self.store)
        except Exception:
            log.exception("cannot load store version %d", self._current_id())

__all__ = ["Engine", "GenRequest", "GenResult"]
