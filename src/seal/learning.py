"""Learn documents into a persistent store, answer questions with what was learned, forget, roll back.

``learn`` reads and checks the document *before* touching the store, then, inside one store transaction:
writes a self-edit per passage (and probe questions, see below), applies it with the store's sequential
strategy, and commits a new version. Any error (a NaN loss, a kill, Ctrl-C, a rejection by the forgetting
guard) leaves the previous version intact::

    seal = Seal.load(cfg, slots=2)
    with Store.open("seal-store", create=True, base_model=cfg.model.name) as store:
        report = learn(seal, store, "notes.txt", fmt="implications", strategy="merge", guard=True)
        print(ask(seal, store, ["Who founded the Verdant Guild?"]))
        forget(seal, store, "notes.txt")

Strategies (``seal.continual``): ``accumulate`` (default; one adapter, each learn continues training it),
``replay`` (the same, with a sample of earlier documents' stored training sequences mixed into each learn),
``merge`` (the paper's: each learn trains a fresh adapter on the weights with every earlier learn merged in)
and ``routed`` (an adapter per document or group, chosen per question; :mod:`seal.learning_routed`).
The first learn fixes the store's layout; ``accumulate`` and ``replay`` share one and may alternate.

What a version holds (its ``config``): ``strategy``, ``replay_ratio``, ``documents`` (``[document id, seed]``
of every document learned into it, in order), the LoRA and inner-loop settings, and for ``merge`` the
``merge_chain``. A ``merge`` version's adapter file holds only the low-rank adapters that version added
(``step{j}.<PEFT name>``), and ``merge_chain`` lists ``[version id, j]`` for every update merged into the base
weights, in order (``null`` = this version). Loading re-merges them in that order into the original weights.
Storing the merged delta itself would need a full-rank copy of every target weight (about 0.5 GB per version
for the 135M default model); the chain costs one rank-r adapter (~20 MB at rank 16) per learned document, and
adapter files are immutable, so older versions' files can be shared safely. A ``rollback`` version points to
its target (``config.target``) and is resolved to it when loaded.

Probes: each learned document keeps up to 3 probe questions per passage (written greedily by the model with the
``self-qa`` prompt; cloze questions from the passage's sentences where its pairs are unusable). With
``guard=True`` a learn measures the pooled accuracy on earlier documents' probes before and after the update;
a drop of more than ``guard_threshold`` retrains the update with replay, and if the drop is still too large
the learn is rejected (``GuardRejected``; the store is unchanged).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seal.config import InnerLoopConfig, LoRAConfig, SealConfig
from seal.continual import (
    DEFAULT_GUARD_THRESHOLD,
    DEFAULT_REPLAY_RATIO,
    STRATEGIES,
    GuardReport,
    Learner,
    apply_merged,
    guarded_update,
    merged_keys,
    restore_base,
    set_merged_keys,
    write_probes,
    zero_slot,
)
from seal.documents import MAX_BYTES, read_document
from seal.domains.base import SelfEditError
from seal.domains.knowledge import QA, KnowledgeDomain, Passage
from seal.engine import Seal
from seal.store import Store, StoreError, Version

SLOT = 0
"""The adapter slot that holds the store's knowledge adapter while learning or answering."""
BACKUP_SLOT = 1
"""Keeps the previous adapter while a learn's update is pending (the guard may drop it)."""
_LAYOUT = {"merge": "merged", "accumulate": "adapter", "replay": "adapter", "routed": "routed"}


class LearnError(RuntimeError):
    """Learning failed; the store was left at its previous version."""


class GuardRejected(LearnError):
    """The forgetting guard rejected the update; the store was left at its previous version."""

    def __init__(self, message: str, report: GuardReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class LearnReport:
    version: int
    document: str
    passages: int
    sequences: int
    self_edits: list[str] = field(default_factory=list)
    fallbacks: int = 0
    """Passages whose self-edit was unusable and that were learned from the passage text alone."""
    final_loss: float | None = None
    seconds: float = 0.0
    strategy: str = "accumulate"
    replayed: int = 0
    """Earlier sequences mixed into this update (replay, or the guard's retry)."""
    probes: list[tuple[str, str]] = field(default_factory=list)
    guard: dict[str, Any] = field(default_factory=dict)


@dataclass
class ForgetReport:
    version: int
    document: str
    remaining: int
    """Documents the new version was rebuilt from."""
    sequences: int
    seconds: float = 0.0


@dataclass
class StoreState:
    """What a store version contains, rollbacks resolved."""

    version: Version | None
    """The version asked for (e.g. the current one)."""
    source: Version | None
    """The version whose weights and config it uses (``version`` itself unless that is a rollback)."""
    strategy: str
    documents: list[tuple[int, int]]
    """(document id, seed) of every document learned into it, in learning order."""
    replay_ratio: float
    merge_chain: list[tuple[int, int]]
    """``merge``: (version id, step) of every update merged into the base weights, in order."""

    @property
    def document_ids(self) -> list[int]:
        return [d for d, _ in self.documents]


def resolve_version(store: Store, version: int | None = None) -> tuple[Version | None, Version | None]:
    """(the version, the version it takes its weights and config from): rollbacks followed to their target."""
    v = store.current_version() if version is None else store.version(version)
    src, seen = v, set()
    while src is not None and src.kind == "rollback" and "target" in src.config:
        if src.id in seen:
            raise StoreError(f"rollback cycle at version {src.id} in store {store.path}")
        seen.add(src.id)
        src = store.version(int(src.config["target"]))
    return v, src


def store_state(store: Store, version: int | None = None) -> StoreState:
    v, src = resolve_version(store, version)
    if src is None:
        return StoreState(v, None, "accumulate", [], DEFAULT_REPLAY_RATIO, [])
    cfg = src.config
    strategy = cfg.get("strategy", "accumulate")
    if "documents" in cfg:
        docs = [(int(d), int(s)) for d, s in cfg["documents"]]
    else:  # a version written before strategies existed: every document learned so far, in order
        docs = [(d.id, int(cfg.get("seed", 0))) for d in store.documents(include_removed=True)
                if src.document_id is not None and d.id <= src.document_id and not d.removed]
    chain = [(src.id if vid is None else int(vid), int(j)) for vid, j in cfg.get("merge_chain", [])]
    return StoreState(v, src, strategy, docs, float(cfg.get("replay_ratio", DEFAULT_REPLAY_RATIO)), chain)


def store_lora(store: Store) -> LoRAConfig | None:
    """The LoRA shape the store's adapters were trained with (None for an empty store)."""
    _, src = resolve_version(store)
    if src is None or "lora" not in src.config:
        return None
    return LoRAConfig(**src.config["lora"])


def config_for_store(cfg: SealConfig, store: Store) -> SealConfig:
    """``cfg`` with the store's LoRA shape, so its adapters fit."""
    lora = store_lora(store)
    return dataclasses.replace(cfg, lora=lora) if lora is not None else cfg


def _split_steps(tensors: dict) -> dict[int, dict]:
    steps: dict[int, dict] = {}
    for name, t in tensors.items():
        head, _, rest = name.partition(".")
        if not head.startswith("step") or not head[4:].isdigit() or not rest:
            raise StoreError(f"tensor {name!r} in a merge-strategy adapter file is not named step<j>.<name>")
        steps.setdefault(int(head[4:]), {})[rest] = t
    return steps


def merge_chain_tensors(store: Store, chain: list[tuple[int, int]]) -> list[tuple[tuple[int, int], dict]]:
    """The adapters of a merge chain, in order (every file read once; checksums verified)."""
    files: dict[int, dict[int, dict]] = {}
    out = []
    for vid, j in chain:
        if vid not in files:
            tensors = store.load_adapter(vid)
            if tensors is None:
                raise StoreError(f"version {vid} of store {store.path} has no adapter file, but a merge chain "
                                 "refers to it")
            files[vid] = _split_steps(tensors)
        if j not in files[vid]:
            raise StoreError(f"version {vid}'s adapter file has no step {j} (store {store.path} is damaged)")
        out.append(((vid, j), files[vid][j]))
    return out


def load_store_adapter(seal: Seal, store: Store, version: int | None = None) -> bool:
    """Put the store's current (or given) version into the model: ``merge`` stores re-merge their chain into the
    base weights (SLOT is then a zero adapter), the others load their adapter into SLOT. False (and the plain
    base model) for an empty store. Everything is read and checksummed before the model is touched."""
    state = store_state(store, version)
    if state.strategy == "merge":
        chain = merge_chain_tensors(store, state.merge_chain)
        apply_merged(seal, SLOT, chain)
        zero_slot(seal, SLOT)
        return bool(chain)
    routed = state.strategy == "routed"  # one adapter per group, loaded per question by ask_routed
    tensors = store.load_adapter(state.source.id) if state.source is not None and not routed else None
    restore_base(seal)
    if tensors is None:
        seal.bank.reset(SLOT, seed=0)
        return False
    seal.bank.load_state_dict(SLOT, tensors)
    return True


def _pick_strategy(state: StoreState, strategy: str | None) -> str:
    if strategy is None:
        return state.strategy
    if strategy not in STRATEGIES:
        raise LearnError(f"unknown strategy {strategy!r} (choose from {', '.join(STRATEGIES)})")
    if state.source is not None and state.documents and _LAYOUT[strategy] != _LAYOUT[state.strategy]:
        raise LearnError(f"this store learns with strategy {state.strategy!r}; {strategy!r} cannot continue it "
                         "(accumulate and replay can alternate; merge stores stay merge). Use another --store.")
    return strategy


def _sequences_by_document(store: Store, ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {i: [] for i in ids}
    for e in store.self_edits(ids) if ids else []:
        out[e["document_id"]] += e["sequences"]
    return out


def _probe_passages(store: Store, ids: list[int]) -> list[Passage]:
    if not ids:
        return []
    docs = {d.id: d for d in store.documents(include_removed=True)}
    qas: dict[int, list[QA]] = {i: [] for i in ids}
    for p in store.probes(ids):
        qas[p["document_id"]].append(QA(p["question"], p["answer"]))
    return [Passage(docs[i].title or docs[i].name, docs[i].text, tuple(qas[i])) for i in ids]


def _version_config(seal: Seal, strategy: str, replay_ratio: float, documents: list[tuple[int, int]],
                    **extra: Any) -> dict[str, Any]:
    cfg = seal.cfg.to_dict()
    return {"lora": cfg["lora"], "inner_loop": cfg["inner_loop"], "model": seal.cfg.model.name, "strategy": strategy,
            "replay_ratio": replay_ratio, "documents": [[d, s] for d, s in documents], **extra}


def learn(seal: Seal, store: Store, path: str | Path, fmt: str | None = None, *, max_bytes: int = MAX_BYTES,
          seed: int = 0, progress: Callable[[str, int, int], None] | None = None, strategy: str | None = None,
          guard: bool = False, guard_threshold: float = DEFAULT_GUARD_THRESHOLD, replay_ratio: float | None = None,
          probes: bool = True, title: str | None = None) -> LearnReport:
    """Learn one document into the store as a new version (see the module docstring).

    ``fmt`` None is the config's ``self_edit.format`` (``rewrite`` by default).
    ``strategy`` None continues the store's (``accumulate`` for a new store); ``probes`` False skips writing
    probe questions (the guard then has nothing to check for this document later); ``title`` overrides the
    title read from the document (see ``read_document``)."""
    start = time.perf_counter()
    fmt = fmt or seal.cfg.self_edit.format
    passages = read_document(path, max_bytes=max_bytes, title=title)  # all input checks before the store is touched
    if strategy is not None and strategy not in STRATEGIES:
        raise LearnError(f"unknown strategy {strategy!r} (choose from {', '.join(STRATEGIES)})")
    dom = KnowledgeDomain(seal.cfg.self_edit.include_passage, seal.cfg.self_edit.max_sequences)
    with store.begin_learn() as tx:
        state = store_state(store)
        strategy = _pick_strategy(state, strategy)
        ratio = state.replay_ratio if replay_ratio is None else float(replay_ratio)
        prev_version = tx.base_version.id if tx.base_version else 0
        has_adapter = load_store_adapter(seal, store)
        texts = [""] * len(passages)
        if fmt != "passage":
            outs = seal.write_self_edits(dom, [(p, fmt) for p in passages], n=1, seed=seed,
                                         progress=(lambda d, t: progress("write", d, t)) if progress else None)
            texts = [o[0] for o in outs]
        new_probes = [qa for qas in write_probes(seal, passages) for qa in qas] if probes else []
        sequences: list[str] = []
        parsed_seqs: list[list[str]] = []
        fallbacks = 0
        for passage, text in zip(passages, texts, strict=True):
            try:
                parsed = dom.parse_self_edit(passage, text, fmt)
            except SelfEditError:
                parsed = dom.parse_self_edit(passage, "", "passage")
                fallbacks += 1
            parsed_seqs.append([e.completion for e in parsed.examples])
            sequences += parsed_seqs[-1]

        if strategy == "routed":
            return _learn_routed(seal, store, tx, state, path, passages, texts, parsed_seqs, new_probes, fmt, seed,
                                 fallbacks, start, progress)
        learner = Learner(seal, strategy, slot=SLOT, backup_slot=BACKUP_SLOT, replay_ratio=ratio)
        earlier = _sequences_by_document(store, state.document_ids)
        learner.history = [earlier[d] for d in state.document_ids]
        learner.has_adapter = has_adapter and strategy != "merge"
        update, report = guarded_update(
            learner, sequences, seed=seed, probe_passages=_probe_passages(store, state.document_ids), guard=guard,
            threshold=guard_threshold, progress=(lambda d, t: progress("train", d, t)) if progress else None)
        if update.result.failed:
            learner.discard()
            raise LearnError(f"training failed ({update.result.failed}); the store is unchanged at version "
                             f"{prev_version}")
        if not report.accepted:
            raise GuardRejected(
                f"the forgetting guard rejected this update: accuracy on earlier documents' probe questions fell "
                f"from {report.before:.2f} to {report.after:.2f}, and to {report.after_retry:.2f} when retrained "
                f"with replay (allowed drop: {guard_threshold:.2f}); the store is unchanged at version "
                f"{prev_version} (use --no-guard to learn it anyway)", report)
        n_merged = len(merged_keys(seal))
        learner.commit()
        name = Path(path).name
        doc_id = tx.add_document(name, passages[0].title, "\n\n".join(p.context for p in passages))
        for text, seqs in zip(texts, parsed_seqs, strict=True):
            tx.add_self_edit(doc_id, fmt, text, seqs)
        tx.add_probes(doc_id, [(qa.question, qa.answer) for qa in new_probes])
        documents = state.documents + [(doc_id, seed)]
        extra: dict[str, Any] = {"format": fmt, "seed": seed}
        if strategy == "merge":
            tx.set_adapter({f"step0.{k}": v for k, v in update.delta.items()})
            extra["merge_chain"] = [[v, j] for v, j in state.merge_chain] + [[None, 0]]
        else:
            tx.set_adapter(seal.bank.state_dict(SLOT))
        version = tx.commit(kind="learn", document_id=doc_id,
                            config=_version_config(seal, strategy, ratio, documents, **extra),
                            metrics={"final_loss": update.result.final_loss, "steps": update.result.steps,
                                     "sequences": len(sequences), "replayed": len(update.replayed),
                                     "fallbacks": fallbacks, "probes": len(new_probes), "guard": report.as_dict()})
        if strategy == "merge":  # the pending merge now has a name
            set_merged_keys(seal, merged_keys(seal)[:n_merged] + [(version.id, 0)])
        if report.checked:
            for d, acc in zip(state.document_ids, report.per_document_after, strict=True):
                if acc is not None:
                    store.record_evaluation(version.id, d, acc, {"kind": "probes", "before_update": False})
    return LearnReport(version.id, name, len(passages), len(sequences), texts, fallbacks, update.result.final_loss,
                       time.perf_counter() - start, strategy, len(update.replayed),
                       [(qa.question, qa.answer) for qa in new_probes], report.as_dict())


def _learn_routed(seal, store, tx, state, path, passages, texts, parsed_seqs, new_probes, fmt, seed, fallbacks,
                  start, progress) -> LearnReport:
    """``learn`` for a routed store: the new document's group gets a fresh adapter; nothing else changes."""
    from seal.learning_routed import learn_routed

    name = Path(path).name
    text = "\n\n".join(p.context for p in passages)
    doc_id = tx.add_document(name, passages[0].title, text)
    for t, seqs in zip(texts, parsed_seqs, strict=True):
        tx.add_self_edit(doc_id, fmt, t, seqs)
    tx.add_probes(doc_id, [(qa.question, qa.answer) for qa in new_probes])
    sequences = [x for seqs in parsed_seqs for x in seqs]
    try:
        tensors, extra, metrics = learn_routed(
            seal, store, state, doc_id=doc_id, title=passages[0].title, text=text, sequences=sequences, seed=seed,
            group_size=seal.cfg.routing.group_size, progress=(lambda d, t: progress("train", d, t)) if progress else None)
    except RuntimeError as exc:
        prev = tx.base_version.id if tx.base_version else 0
        raise LearnError(f"training failed ({exc}); the store is unchanged at version {prev}") from None
    tx.set_adapter(tensors)
    documents = state.documents + [(doc_id, seed)]
    version = tx.commit(kind="learn", document_id=doc_id,
                        config=_version_config(seal, "routed", state.replay_ratio, documents, format=fmt, seed=seed,
                                               **extra),
                        metrics={**metrics, "sequences": len(sequences), "fallbacks": fallbacks,
                                 "probes": len(new_probes)})
    return LearnReport(version.id, name, len(passages), len(sequences), texts, fallbacks, metrics["final_loss"],
                       time.perf_counter() - start, "routed", 0, [(qa.question, qa.answer) for qa in new_probes])


def forget(seal: Seal, store: Store, document: str | int,
           progress: Callable[[str, int, int], None] | None = None) -> ForgetReport:
    """Remove a document's contribution: a new version rebuilt from the remaining documents, in one transaction.

    Why rebuild rather than subtract: with ``accumulate`` and ``replay`` every later update continued from (or
    replayed) the forgotten document's weights, and with ``merge`` every later adapter was trained on weights
    that contained it, so no stored delta can be removed exactly. The stored self-edit sequences, the per-
    document seeds and the inner-loop settings recorded in each learn's version are everything the updates were
    made from, so re-running the remaining documents' updates in their original order from the plain base model
    gives exactly the version the store would hold had the document never been learned (same training seeds,
    same replay samples; bit-identical on the same machine, which the tests check). It costs one training per
    remaining document; the model does not write new self-edits. The document is marked removed in the same
    commit; on any failure the store is unchanged."""
    start = time.perf_counter()
    with store.begin_learn() as tx:
        state = store_state(store)
        doc = tx.remove_document(document)
        remaining = [(d, s) for d, s in state.documents if d != doc.id]
        if state.strategy == "routed":
            return _forget_routed(seal, store, tx, state, doc, remaining, start, progress)
        seqs = _sequences_by_document(store, [d for d, _ in remaining])
        loop_cfgs = {v.document_id: v.config.get("inner_loop") for v in store.history()
                     if v.kind == "learn" and v.document_id is not None}
        restore_base(seal)
        zero_slot(seal, SLOT)
        learner = Learner(seal, state.strategy, slot=SLOT, backup_slot=BACKUP_SLOT, replay_ratio=state.replay_ratio)
        deltas = []
        for k, (d, s) in enumerate(remaining):
            cfg = loop_cfgs.get(d)
            update = learner.train(seqs[d], s, inner_loop=InnerLoopConfig(**cfg) if cfg else None,
                                   progress=(lambda a, b: progress("train", a, b)) if progress else None)
            if update.result.failed:
                learner.discard()
                raise LearnError(f"rebuilding failed ({update.result.failed}); the store is unchanged")
            learner.commit(key=("pending", k))
            deltas.append(update.delta)
            if progress:
                progress("documents", k + 1, len(remaining))
        extra: dict[str, Any] = {"forgot": doc.id}
        if remaining and state.strategy == "merge":
            tx.set_adapter({f"step{j}.{k}": v for j, delta in enumerate(deltas) for k, v in delta.items()})
            extra["merge_chain"] = [[None, j] for j in range(len(deltas))]
        elif remaining:
            tx.set_adapter(seal.bank.state_dict(SLOT))
        elif state.strategy == "merge":
            extra["merge_chain"] = []
        version = tx.commit(kind="forget", document_id=doc.id,
                            config=_version_config(seal, state.strategy, state.replay_ratio, remaining, **extra),
                            metrics={"documents": len(remaining), "sequences": sum(len(v) for v in seqs.values())})
        if state.strategy == "merge":
            set_merged_keys(seal, [(version.id, j) for j in range(len(deltas))])
    return ForgetReport(version.id, doc.name, len(remaining), sum(len(v) for v in seqs.values()),
                        time.perf_counter() - start)


def _forget_routed(seal, store, tx, state, doc, remaining, start, progress) -> ForgetReport:
    """``forget`` for a routed store: the document's adapter is dropped (its group retrained if grouped)."""
    from seal.learning_routed import forget_routed

    try:
        tensors, extra, metrics = forget_routed(seal, store, state, doc.id,
                                                (lambda a, b: progress("train", a, b)) if progress else None)
    except RuntimeError as exc:
        raise LearnError(f"retraining the document's group failed ({exc}); the store is unchanged") from None
    if tensors is not None:
        tx.set_adapter(tensors)
    version = tx.commit(kind="forget", document_id=doc.id,
                        config=_version_config(seal, "routed", state.replay_ratio, remaining, **extra), metrics=metrics)
    return ForgetReport(version.id, doc.name, len(remaining), metrics["retrained_sequences"],
                        time.perf_counter() - start)


def rollback(store: Store, version: int) -> Version:
    """Make ``version``'s weights current again (a new version of kind 'rollback'; history is kept). Every
    file the target needs (a merge store: its whole chain) is checksummed first, so a damaged target is refused.
    The document list used by later replay and forget is the target's; removed documents stay removed."""
    state = store_state(store, version)
    if state.strategy == "merge":
        merge_chain_tensors(store, state.merge_chain)
    return store.rollback(version)


def ask(seal: Seal, store: Store | None, questions: list[str], max_new_tokens: int = 64) -> list[str]:
    """Answer with the store's current version (the base model when the store is empty or absent). An empty
    or whitespace-only question raises :class:`LearnError` before any model work."""
    return ask_explained(seal, store, questions, max_new_tokens)[0]


def ask_explained(seal: Seal, store: Store | None, questions: list[str], max_new_tokens: int = 64
                  ) -> tuple[list[str], list[dict | None]]:
    """(answers, per question how it was answered): for a routed store the router's decision (``document``
    answering or None for the base model, ``score``, ``coverage``, ``best``); None for the other strategies,
    where the store's one adapter answers every question."""
    for q in questions:
        if not isinstance(q, str) or not q.strip():
            raise LearnError("the question is empty: ask something")
    if store is not None:
        state = store_state(store)
        if state.strategy == "routed":
            from seal.learning_routed import ask_routed

            restore_base(seal)
            answers, decisions = ask_routed(seal, store, questions, state, max_new_tokens)
            return answers, [d.as_dict() for d in decisions]
    use = store is not None and load_store_adapter(seal, store)
    if store is None:
        restore_base(seal)
    prompts = [seal.lm.chat(q) for q in questions]
    answers = seal.generator.complete(prompts, max_new_tokens=max_new_tokens, adapters=SLOT if use else None)
    return answers, [None] * len(questions)


__all__ = ["learn", "ask", "ask_explained", "forget", "rollback", "LearnError", "GuardRejected", "LearnReport", "ForgetReport",
           "StoreError", "StoreState", "store_state", "config_for_store", "load_store_adapter"]
