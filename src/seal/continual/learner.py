"""Sequential updates with a strategy: :class:`Learner` (train / commit / discard) and :class:`Update`.

Strategies, i.e. how update k+1 relates to updates 1..k (``STRATEGIES``):

* ``merge`` (the paper's): each update trains a *fresh* LoRA adapter on the weights as they are (every earlier
  update already merged in), then folds it into the base weights (``W += scale * (A B)^T``).
* ``accumulate``: one adapter; each update continues training it (fresh optimiser state). This is what
  ``seal learn`` always did.
* ``replay``: ``accumulate``, plus a seeded sample of earlier updates' training sequences mixed into each new
  update (``replay_ratio`` x the new update's number of sequences, at most all of them).
* ``routed`` is not sequential (one adapter per document, chosen per question): :mod:`seal.continual.routed`.

:class:`Learner` applies updates on one slot of a :class:`~seal.engine.Seal` bank with in-memory
transactions: :meth:`Learner.train` trains a *pending* update (the previous state is kept: a backup slot for
the adapter strategies, an untouched base for ``merge``), :meth:`Learner.commit` keeps it, :meth:`Learner.discard`
drops it. Evaluating the current state always routes through the learner's slot (for ``merge`` that slot is
zero after each commit, so it equals the merged base). The training seed of update k (1-based) is
``seed * 1_000_003 + k``, so rebuilding a sequence of updates (``seal forget``) reproduces it exactly::

    learner = Learner(seal, "replay", slot=0, backup_slot=1)
    update = learner.train(sequences, seed=0)
    learner.commit() if not update.result.failed else learner.discard()
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from seal.config import InnerLoopConfig
from seal.continual.merge import merge_slot, zero_slot
from seal.engine import Seal
from seal.jobs import Example, TrainJob, TrainResult

SEQUENTIAL = ("merge", "accumulate", "replay")
"""The strategies a :class:`Learner` applies (each update changes what earlier ones answer)."""
STRATEGIES = SEQUENTIAL + ("routed",)
"""Every strategy; ``routed`` (one adapter per document, :mod:`seal.continual.routed`) has no Learner."""
DEFAULT_REPLAY_RATIO = 1.0


def check_strategy(strategy: str, allowed: tuple[str, ...] = STRATEGIES) -> str:
    if strategy not in allowed:
        raise ValueError(f"unknown strategy {strategy!r} (choose from {', '.join(allowed)})")
    return strategy


def train_seed(seed: int, step: int) -> int:
    """The training seed of update number ``step`` (1-based) of a sequence learned with user seed ``seed``."""
    return seed * 1_000_003 + step


def _train_adapters():
    """``seal.continual.train_adapters``, looked up on the package at call time, so that replacing it there
    (as the tests' training spy does) intercepts every update the learner trains."""
    import seal.continual

    return seal.continual.train_adapters


@dataclass
class Update:
    result: TrainResult
    sequences: list[str]
    """The new document's training sequences."""
    replayed: list[str]
    """Earlier sequences mixed in (replay)."""
    seed: int
    """The training seed used."""
    delta: dict[str, torch.Tensor] | None = None
    """``merge``: the update's own low-rank adapter (PEFT names), set by commit."""

    @property
    def examples(self) -> list[Example]:
        return [Example("", s) for s in self.sequences + self.replayed]


class Learner:
    """Sequential updates on ``seal``'s bank slot ``slot`` (``backup_slot`` keeps the previous adapter)."""

    def __init__(self, seal: Seal, strategy: str, *, slot: int = 0, backup_slot: int = 1,
                 replay_ratio: float = DEFAULT_REPLAY_RATIO, keep_pristine: bool = True) -> None:
        self.seal, self.strategy = seal, check_strategy(strategy, SEQUENTIAL)
        if replay_ratio < 0:
            raise ValueError("replay_ratio must be >= 0")
        self.slot, self.backup_slot, self.replay_ratio = slot, backup_slot, replay_ratio
        self.keep_pristine = keep_pristine
        self.history: list[list[str]] = []
        """Training sequences of each committed update, in order (the replay pool)."""
        self.has_adapter = False
        """Adapter strategies: the slot holds a trained adapter to continue from."""
        self.pending: Update | None = None
        seal.bank.ensure_slots(max(slot, backup_slot) + 1)

    @property
    def steps(self) -> int:
        return len(self.history)

    @property
    def retry_ratio(self) -> float:
        """The replay ratio of the guard's retry: replay at the usual ratio, or twice as much under replay."""
        return max(self.replay_ratio, 0.5) * (2.0 if self.strategy == "replay" else 1.0)

    def replay_sample(self, n_new: int, ratio: float, seed: int) -> list[str]:
        pool = [s for seqs in self.history for s in seqs]
        k = min(len(pool), math.ceil(ratio * max(n_new, 1))) if ratio > 0 else 0
        return random.Random(f"seal-replay-{seed}").sample(pool, k) if k else []

    def train(self, sequences: list[str], seed: int = 0, *, replay_ratio: float | None = None,
              inner_loop: InnerLoopConfig | None = None,
              progress: Callable[[int, int], None] | None = None) -> Update:
        """Train a pending update on ``sequences`` (+ replay); a previous pending update is discarded first.
        ``replay_ratio`` None means the strategy's own (``replay``: ``self.replay_ratio``, others: none)."""
        self.discard()
        ratio = (self.replay_ratio if self.strategy == "replay" else 0.0) if replay_ratio is None else replay_ratio
        tseed = train_seed(seed, self.steps + 1)
        update = Update(TrainResult(self.slot), list(sequences), self.replay_sample(len(sequences), ratio, tseed),
                        tseed)
        cont = self.strategy != "merge" and self.has_adapter
        if cont:
            self.seal.bank.copy_slot(self.slot, self.backup_slot)
        job = TrainJob(slot=self.slot, examples=update.examples, seed=tseed, reset=not cont)
        self.pending = update
        update.result = _train_adapters()(self.seal.bank, self.seal.lm.tokenizer, [job],
                                          inner_loop or self.seal.cfg.inner_loop, progress)[0]
        return update

    def discard(self) -> None:
        """Drop the pending update: the slot is back to the committed state."""
        if self.pending is None:
            return
        if self.strategy != "merge" and self.has_adapter:
            self.seal.bank.copy_slot(self.backup_slot, self.slot)
        else:
            zero_slot(self.seal, self.slot)
        self.pending = None

    def commit(self, key: Any = None) -> Update:
        """Keep the pending update (``merge``: fold it into the base weights under ``key``)."""
        update = self.pending
        if update is None:
            raise RuntimeError("no pending update to commit")
        if update.result.failed:
            raise RuntimeError(f"cannot commit a failed update ({update.result.failed})")
        if self.strategy == "merge":
            update.delta = self.seal.bank.state_dict(self.slot)
            merge_slot(self.seal, self.slot, ("pending", self.steps) if key is None else key,
                       keep_pristine=self.keep_pristine)
            zero_slot(self.seal, self.slot)
        self.history.append(list(update.sequences))
        self.has_adapter = True
        self.pending = None
        return update


__all__ = ["STRATEGIES", "SEQUENTIAL", "DEFAULT_REPLAY_RATIO", "check_strategy", "train_seed", "Update", "Learner"]
