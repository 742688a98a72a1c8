"""The ``routed`` strategy: one adapter per learned document (or group of documents), chosen per question.

Nothing is ever merged and no adapter is trained twice, so learning a document cannot change what an earlier
one answers: forgetting is zero by construction, at the cost of one adapter on disk per document (or group)
and a routing step per question (:mod:`seal.continual.router`).

* :func:`train_adapter` trains a fresh adapter (from PEFT's init, seeded) on a document's sequences in one slot
  and returns its tensors; the base weights are untouched.
* :func:`assign_group` picks the group a new document joins (``group_size`` > 1): the group of the learned
  document it matches best, if that group is not full and the match passes the router's threshold.
* :class:`AdapterCache` is a bounded LRU of adapters in bank slots; the others stay wherever ``load`` reads
  them from (the store's safetensors files, or memory in the forgetting experiment).
* :func:`answer_routed` routes each question, loads the adapters it needs (at most the cache's size at a time)
  and answers every row in batched generation calls, each row through its own adapter::

    cache = AdapterCache(seal, slots=range(2, 10), load=lambda key: store.load_adapter(key))
    answers, decisions = answer_routed(seal, cache, router, prompts, questions, adapter_of=routes.get,
                                       max_new_tokens=24)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import torch

from seal.config import InnerLoopConfig
from seal.continual.router import RouteDecision, Router
from seal.engine import Seal
from seal.jobs import Example, TrainJob, TrainResult


def train_adapter(seal: Seal, slot: int, sequences: Sequence[str], seed: int,
                  inner_loop: InnerLoopConfig | None = None,
                  progress: Callable[[int, int], None] | None = None) -> tuple[TrainResult, dict[str, torch.Tensor]]:
    """A fresh adapter trained on ``sequences`` in ``slot`` (reset from ``seed`` first): (result, its tensors)."""
    from seal.continual.learner import _train_adapters

    job = TrainJob(slot=slot, examples=[Example("", s) for s in sequences], seed=seed, reset=True)
    result = _train_adapters()(seal.bank, seal.lm.tokenizer, [job], inner_loop or seal.cfg.inner_loop, progress)[0]
    return result, seal.bank.state_dict(slot)


def assign_group(router: Router, groups: dict[int, list[int]], title: str, text: str, group_size: int) -> int:
    """The group (id) a new document joins: its best match's group if that has room, else a new group.

    ``router`` is keyed by document id over the learned documents; ``groups`` maps group id -> document ids."""
    new_group = max(groups, default=0) + 1
    if group_size <= 1 or not len(router):
        return new_group
    [d] = router.route([f"{title}\n{text}"[:4000]])
    if d.key is None:
        return new_group
    for gid, docs in groups.items():
        if d.key in docs:
            return gid if len(docs) < group_size else new_group
    return new_group


class AdapterCache:
    """A bounded LRU of adapters in the bank's ``slots``; ``load(key)`` returns a missing adapter's tensors."""

    def __init__(self, seal: Seal, slots: Sequence[int], load: Callable[[Hashable], dict[str, torch.Tensor]]) -> None:
        self.seal, self.slots, self.load = seal, list(slots), load
        if not self.slots:
            raise ValueError("an adapter cache needs at least one slot")
        seal.bank.ensure_slots(max(self.slots) + 1)
        self.loaded: OrderedDict[Hashable, int] = OrderedDict()
        self.hits = self.misses = self.evictions = 0

    @property
    def size(self) -> int:
        return len(self.slots)

    def slot(self, key: Hashable, pinned: set[Hashable] = frozenset()) -> int:
        """The slot holding ``key``'s adapter (loaded, evicting the least recently used unpinned one, on a miss)."""
        if key in self.loaded:
            self.hits += 1
            self.loaded.move_to_end(key)
            return self.loaded[key]
        self.misses += 1
        tensors = self.load(key)  # read (and checksummed) before a slot is touched
        used = set(self.loaded.values())
        free = [s for s in self.slots if s not in used]
        if free:
            slot = free[0]
        else:
            victim = next((k for k in self.loaded if k not in pinned), None)
            if victim is None:
                raise RuntimeError("every cached adapter is in use by this batch")
            slot = self.loaded.pop(victim)
            self.evictions += 1
        self.seal.bank.load_state_dict(slot, tensors)
        self.loaded[key] = slot
        return slot

    def drop(self, key: Hashable) -> None:
        """Forget ``key`` (its adapter changed or was deleted); its slot is reused by the next miss."""
        self.loaded.pop(key, None)

    def stats(self) -> dict[str, int]:
        return {"size": self.size, "loaded": len(self.loaded), "hits": self.hits, "misses": self.misses,
                "evictions": self.evictions}


def answer_routed(seal: Seal, cache: AdapterCache, router: Router, prompts: Sequence[str],
                  questions: Sequence[str], adapter_of: Callable[[Hashable], Hashable | None], *,
                  max_new_tokens: int, progress: Callable[[int, int], None] | None = None
                  ) -> tuple[list[str], list[RouteDecision]]:
    """Answer ``prompts`` (one per question), each through the adapter of the document its question routes to.

    ``adapter_of(document key)`` gives the cache key of that document's adapter (None: the base model). Rows
    are answered in rounds of at most ``cache.size`` distinct adapters (the base model's rows join the first),
    each round one batched ``generator.complete`` call, so a store of any size fits in a bounded bank."""
    if len(prompts) != len(questions):
        raise ValueError("one question per prompt")
    decisions = router.route(questions)
    keys = [None if d.key is None else adapter_of(d.key) for d in decisions]
    order: list[Hashable] = list(dict.fromkeys(k for k in keys if k is not None))
    rounds = [order[i:i + cache.size] for i in range(0, len(order), cache.size)] or [[]]
    answers: list[str] = [""] * len(prompts)
    done = 0
    for r, group in enumerate(rounds):
        pinned: set[Hashable] = set(group)
        slot_of = {k: cache.slot(k, pinned) for k in group}
        rows = [i for i, k in enumerate(keys) if (k is None and r == 0) or (k is not None and k in slot_of)]
        if not rows:
            continue
        outs = seal.generator.complete([prompts[i] for i in rows], max_new_tokens=max_new_tokens,
                                       adapters=[-1 if keys[i] is None else slot_of[keys[i]] for i in rows])
        for i, text in zip(rows, outs, strict=True):
            answers[i] = text
        done += len(rows)
        if progress:
            progress(done, len(prompts))
    return answers, decisions


__all__ = ["train_adapter", "assign_group", "AdapterCache", "answer_routed"]
