"""``--executor ray``: the E-step's passes on Ray actors, each holding the model and an adapter bank.

Needs the ``ray`` extra (``pip install 'seal[ray]'``). Without an address a local Ray instance is started with
this machine's cores; ``--ray-address auto`` (after ``ray start --head`` and ``ray start --address ...`` on the
workers) or ``ray://HOST:10001`` joins a cluster, whose workers need seal and the model installed. One actor
per GPU of the cluster (``num_gpus=1`` each), or without GPUs one per ``threads`` CPU cores (``--workers N``
to choose); each loads the model once, with the run's config, and runs whole passes (:func:`seal.executor.
run_pass`), exactly as the local engine would, so the same seeds give the same records (same device, dtype
and ``model.threads``; the engine's grader is sent along, a judge's key included). The policy reaches every actor (:meth:`RayExecutor.set_policy`) before a round's
sampling; the driver keeps the M-step and the logs.

Faults: when an actor dies (killed, out of memory) its pass goes to another actor and a replacement actor is
started; a pass that fails twice (an actor death or an error in it) is recorded as failed, with the reason,
for each of its inner loops, and the round goes on. A driver killed mid-round resumes with ``--resume`` like a
local run: finished passes are in the logs and are not redone::

    ex = RayExecutor(seal.cfg, domain, workers=2)
    rest_em.train(seal, domain, contexts, "runs/r1", executor=ex)
    ex.close()
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from seal.config import SealConfig
from seal.domains.base import Domain
from seal.executor import POLICY_SLOT, PassJob, PassResult, failed_records, run_pass

MAX_ATTEMPTS = 2
"""A pass is tried on at most this many actors before it is recorded as failed."""


class _Worker:
    """A Ray actor: one engine (model + bank) running passes."""

    def __init__(self, cfg: dict, domain: Domain, slots: int, name: str, grader=None) -> None:
        from seal.engine import Seal

        self.name = name
        self.seal = Seal.load(SealConfig.from_dict(cfg), slots=slots, grader=grader)
        self.domain = domain

    def apply(self, fn: Callable, *args) -> Any:
        """``fn(engine, domain, *args)`` on this actor (a pass, or setting up its adapters)."""
        result = fn(self.seal, self.domain, *args)
        if hasattr(result, "worker"):
            result.worker = self.name
        return result

    def pid(self) -> int:
        return os.getpid()


def set_policy_slot(seal, domain, tensors) -> bool:
    """Put the policy adapter (None: an untrained one) into the policy slot."""
    if tensors is None:
        seal.bank.reset(POLICY_SLOT, seed=0)
    else:
        seal.bank.load_state_dict(POLICY_SLOT, tensors)
    return True


class RayExecutor:
    """See the module docstring."""

    name = "ray"

    def __init__(self, cfg: SealConfig, domain: Domain, *, address: str | None = None, workers: int = 0,
                 grader=None, threads: int = 0) -> None:
        try:
            import ray
        except ImportError:
            raise RuntimeError("--executor ray needs Ray: pip install 'seal[ray]'") from None
        self.ray, self.cfg, self.domain, self.grader = ray, cfg, domain, grader
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "ignore_reinit_error": True}
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                         else os.cpu_count(), **kwargs)
            self._started = True
        else:
            self._started = False
        res = ray.cluster_resources()
        gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 1))
        self.gpu = gpus > 0
        self.threads = threads or cfg.model.threads or (1 if self.gpu else max(1, min(2, cpus)))
        self.workers = workers or (gpus if self.gpu else max(1, cpus // self.threads))
        rest = cfg.rest_em
        self.slots = 1 + rest.samples * rest.repeats * min(rest.contexts_per_pass, rest.contexts)
        data = cfg.to_dict()
        data["model"]["threads"] = self.threads
        self._cfg = data
        self._remote = ray.remote(num_gpus=1 if self.gpu else 0, num_cpus=0 if self.gpu else self.threads,
                                  max_restarts=0)(_Worker)
        self.setup: dict[str, tuple] = {}
        """Named calls every actor has had (the policy, an evaluation's adapters), replayed on replacements."""
        self.actors: dict[int, Any] = {}
        self._next = 0
        self.deaths = 0
        self.retries = 0
        for _ in range(self.workers):
            self._spawn()
        self.pids()  # every actor has loaded the model

    def _spawn(self) -> int:
        wid = self._next
        self._next += 1
        self.actors[wid] = self._remote.remote(self._cfg, self.domain, self.slots, f"ray-worker-{wid}", self.grader)
        for fn, args in self.setup.values():
            self.actors[wid].apply.remote(fn, *args)
        return wid

    def _each(self, method: str, *args) -> dict[int, Any]:
        """Call ``method`` on every actor; an actor found dead is replaced (the replacement gets the setup)."""
        futures = {wid: getattr(a, method).remote(*args) for wid, a in list(self.actors.items())}
        out = {}
        for wid, fut in futures.items():
            try:
                out[wid] = self.ray.get(fut)
            except (self.ray.exceptions.RayActorError, self.ray.exceptions.ActorDiedError):
                self.deaths += 1
                self.actors.pop(wid, None)
                new = self._spawn()
                out[new] = self.ray.get(getattr(self.actors[new], method).remote(*args))
        return out

    def pids(self) -> dict[int, int]:
        """Process id of every live actor (the fault tests kill one)."""
        return self._each("pid")

    def broadcast(self, name: str, fn: Callable, *args) -> None:
        """``fn(engine, domain, *args)`` on every actor now and on every later replacement (``name`` replaces
        an earlier call of that name)."""
        self.setup[name] = (fn, args)
        self._each("apply", fn, *args)

    def set_policy(self, tensors) -> None:
        self.broadcast("policy", set_policy_slot, tensors)

    def run(self, jobs: Iterable[Any], on_texts: Callable[[list[dict]], None] | None = None, *,
            fn: Callable = run_pass, failed: Callable[[Any, str], Any] | None = None) -> Iterator[Any]:
        """``fn(engine, domain, job)`` for every job on the actors, results yielded as they finish. A job that
        fails ``MAX_ATTEMPTS`` times gives ``failed(job, reason)`` (default: the ReST-EM pass's failed records;
        None raises)."""
        ray = self.ray
        if failed is None and fn is run_pass:
            def failed(job, reason):
                return PassResult(job.index, [], failed_records(job, self.domain, reason), worker="none")
        queue = deque((job, 0, None) for job in jobs)  # (job, attempts so far, last error)
        running: dict[Any, tuple[PassJob, int, int]] = {}  # future -> (job, attempts, worker id)
        idle = deque(self.actors)
        while queue or running:
            while queue and idle:
                job, attempts, last = queue.popleft()
                if attempts >= MAX_ATTEMPTS:
                    if failed is None:
                        raise RuntimeError(f"a pass failed on {MAX_ATTEMPTS} workers: {last}")
                    yield failed(job, f"worker failed: {last}")
                    continue
                wid = idle.popleft()
                if wid not in self.actors:
                    queue.appendleft((job, attempts, last))
                    continue
                running[self.actors[wid].apply.remote(fn, job)] = (job, attempts, wid)
            if not running:
                continue
            [ready], _ = ray.wait(list(running), num_returns=1)
            job, attempts, wid = running.pop(ready)
            try:
                result = ray.get(ready)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorDiedError) as exc:
                self.deaths += 1
                self.retries += 1
                self.actors.pop(wid, None)
                idle.append(self._spawn())  # a replacement, with the current policy
                queue.appendleft((job, attempts + 1, f"actor died ({type(exc).__name__})"))
                continue
            except ray.exceptions.RayTaskError as exc:
                self.retries += 1
                idle.append(wid)
                reason = str(exc.cause if getattr(exc, "cause", None) else exc).splitlines()[0][:300]
                queue.append((job, attempts + 1, reason))
                continue
            idle.append(wid)
            yield result

    def close(self) -> None:
        for a in self.actors.values():
            try:
                self.ray.kill(a)
            except Exception:  # already gone
                pass
        self.actors.clear()
        if self._started:
            self.ray.shutdown()


def overhead_ms(executor: RayExecutor, n: int = 50) -> float:
    """The round-trip cost of one (empty) actor call, in ms: what each pass pays for running on Ray."""
    actor = next(iter(executor.actors.values()))
    executor.ray.get(actor.pid.remote())
    t = time.perf_counter()
    for _ in range(n):  # one after another: the latency a pass pays, not the pipelined throughput
        executor.ray.get(actor.pid.remote())
    return 1000 * (time.perf_counter() - t) / n


__all__ = ["RayExecutor", "MAX_ATTEMPTS", "overhead_ms"]
