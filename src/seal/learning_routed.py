"""``seal learn --strategy routed``: a store whose documents each keep their own adapter, chosen per question.

The base weights are never changed. A version's ``config.groups`` lists the store's adapters: each group is
``{"id", "documents": [document ids], "adapter": version id}`` (``null`` = this version), and the adapter file
of a ``learn`` or ``forget`` version holds only the one group's adapter it (re)trained. With
``routing.group_size`` = 1 (the default) every document is its own group: learning trains one fresh adapter and
touches no other, and forgetting drops that document's adapter without training anything. With N > 1 a new
document joins the group of the learned document it matches best (if not full) and that group's adapter is
retrained from PEFT's init on all its documents' stored sequences; forgetting retrains only its group.

Answering (:func:`ask_routed`): the router (:mod:`seal.continual.router`, BM25 over each document's title,
text and self-edit sequences) picks a document per question, its group's adapter answers (loaded from its
checksummed safetensors file into an LRU of ``routing.cache`` bank slots), or the base model when no document
covers the question. Called by :mod:`seal.learning`; not used directly::

    answers, decisions = ask_routed(seal, store, ["Who founded the Verdant Guild?"])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from seal.continual.learner import train_seed
from seal.continual.routed import AdapterCache, answer_routed, assign_group, train_adapter
from seal.continual.router import RouteDecision, RouteEntry, Router
from seal.engine import Seal
from seal.store import Store, StoreError

FIRST_CACHE_SLOT = 2
"""Bank slots 0 and 1 belong to learning (``seal.learning.SLOT``, ``BACKUP_SLOT``); routed adapters load above."""


def groups_of(state: Any) -> list[dict]:
    """The store version's groups with every ``adapter`` resolved to a version id."""
    src = state.source
    out = []
    for g in (src.config.get("groups", []) if src is not None else []):
        vid = src.id if g.get("adapter") is None else int(g["adapter"])
        out.append({"id": int(g["id"]), "documents": [int(d) for d in g["documents"]], "adapter": vid})
    return out


def store_router(store: Store, doc_ids: Sequence[int], threshold: float,
                 extra: Sequence[RouteEntry] = ()) -> Router:
    """The router over ``doc_ids`` (title, text and stored self-edit sequences of each), keyed by document id."""
    docs = {d.id: d for d in store.documents(include_removed=True)}
    seqs: dict[int, list[str]] = {i: [] for i in doc_ids}
    for e in store.self_edits(list(doc_ids)) if doc_ids else []:
        seqs[e["document_id"]] += e["sequences"]
    entries = [RouteEntry(i, docs[i].title or docs[i].name, docs[i].text, tuple(seqs[i])) for i in doc_ids]
    return Router(entries + list(extra), threshold)


def _group_sequences(store: Store, doc_ids: Sequence[int], new: dict[int, list[str]]) -> list[str]:
    have = {i: list(new[i]) for i in doc_ids if i in new}
    old = [i for i in doc_ids if i not in new]
    for e in store.self_edits(old) if old else []:
        have.setdefault(e["document_id"], []).extend(e["sequences"])
    return [s for i in doc_ids for s in have.get(i, [])]


def _train_group(seal: Seal, store: Store, group: dict, seeds: dict[int, int], new: dict[int, list[str]],
                 progress: Callable[[int, int], None] | None):
    """A fresh adapter for ``group`` on all its documents' sequences (seed: its first document's, and its id)."""
    seqs = _group_sequences(store, group["documents"], new)
    result, tensors = train_adapter(seal, 0, seqs, train_seed(seeds[group["documents"][0]], group["id"]),
                                    progress=progress)
    return result, tensors, len(seqs)


def learn_routed(seal: Seal, store: Store, state, *, doc_id: int, title: str, text: str, sequences: list[str],
                 seed: int, group_size: int, progress: Callable[[int, int], None] | None = None
                 ) -> tuple[dict, dict, dict]:
    """Train the new document's group (inside the caller's transaction): (adapter tensors, config extra,
    metrics). Raises RuntimeError with the reason when training fails (the caller's transaction rolls back)."""
    groups = groups_of(state)
    size = int(state.source.config.get("group_size", group_size)) if groups else group_size
    router = store_router(store, state.document_ids, seal.cfg.routing.threshold)
    gid = assign_group(router, {g["id"]: g["documents"] for g in groups}, title, text, size)
    group = next((g for g in groups if g["id"] == gid), None)
    if group is None:
        group = {"id": gid, "documents": [], "adapter": None}
        groups.append(group)
    group["documents"].append(doc_id)
    seeds = {d: s for d, s in state.documents} | {doc_id: seed}
    result, tensors, n = _train_group(seal, store, group, seeds, {doc_id: sequences}, progress)
    if result.failed:
        raise RuntimeError(result.failed)
    group["adapter"] = None
    return tensors, {"groups": groups, "group_size": size}, {
        "final_loss": result.final_loss, "steps": result.steps, "group": gid, "group_documents": len(group["documents"]),
        "trained_sequences": n}


def forget_routed(seal: Seal, store: Store, state, doc_id: int,
                  progress: Callable[[int, int], None] | None = None) -> tuple[dict | None, dict, dict]:
    """Drop ``doc_id`` from its group; retrain the group only if other documents remain in it."""
    groups = groups_of(state)
    group = next((g for g in groups if doc_id in g["documents"]), None)
    tensors, trained = None, 0
    if group is not None:
        group["documents"].remove(doc_id)
        if not group["documents"]:
            groups.remove(group)
        else:
            result, tensors, trained = _train_group(seal, store, group, dict(state.documents), {}, progress)
            if result.failed:
                raise RuntimeError(result.failed)
            group["adapter"] = None
    size = int(state.source.config.get("group_size", 1)) if state.source is not None else 1
    return tensors, {"groups": groups, "group_size": size, "forgot": doc_id}, {
        "documents": len(state.documents) - 1, "retrained_sequences": trained,
        "retrained_group": group["id"] if tensors is not None else None}


def adapter_cache(seal: Seal, store: Store) -> AdapterCache:
    """The engine's LRU of routed adapters (kept on the engine, keyed by version id: adapter files are
    immutable, so entries stay valid while the store changes)."""
    cache = getattr(seal, "_routed_cache", None)
    if cache is None or cache.store_path != store.path:
        cache = AdapterCache(seal, range(FIRST_CACHE_SLOT, FIRST_CACHE_SLOT + seal.cfg.routing.cache), lambda v: None)
        cache.store_path = store.path
        seal._routed_cache = cache

    def load(vid: int):
        tensors = store.load_adapter(vid)
        if tensors is None:
            raise StoreError(f"version {vid} of store {store.path} has no adapter file, but a routed group uses it")
        return tensors

    cache.load = load
    return cache


def ask_routed(seal: Seal, store: Store, questions: Sequence[str], state, max_new_tokens: int = 64
               ) -> tuple[list[str], list[RouteDecision]]:
    """Answer each question through the adapter of the document it routes to (see the module docstring)."""
    groups = groups_of(state)
    adapter_of = {d: g["adapter"] for g in groups for d in g["documents"]}
    router = store_router(store, list(adapter_of), seal.cfg.routing.threshold)
    prompts = [seal.lm.chat(q) for q in questions]
    return answer_routed(seal, adapter_cache(seal, store), router, prompts, questions, adapter_of.get,
                         max_new_tokens=max_new_tokens)


__all__ = ["learn_routed", "forget_routed", "ask_routed", "store_router", "groups_of", "adapter_cache",
           "FIRST_CACHE_SLOT"]
