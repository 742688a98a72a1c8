"""Learn documents into a persistent store, and answer questions with what was learned.

``learn`` reads and checks the document *before* touching the store, then, inside one store transaction:
writes a self-edit per passage, trains the store's adapter on it (continuing from the current version),
and commits a new version. Any error (a NaN loss, a kill, Ctrl-C) leaves the previous version intact::

    seal = Seal.load(cfg)
    with Store.open("seal-store", create=True, base_model=cfg.model.name) as store:
        report = learn(seal, store, "notes.txt", fmt="implications")
        print(ask(seal, store, ["Who founded the Verdant Guild?"]))
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from seal.config import LoRAConfig, SealConfig
from seal.documents import MAX_BYTES, read_document
from seal.domains.base import SelfEditError
from seal.domains.knowledge import KnowledgeDomain
from seal.engine import Seal
from seal.inner_loop import Example, TrainJob
from seal.store import Store, StoreError

SLOT = 0
"""The adapter slot that holds the store's knowledge adapter while learning or answering."""


class LearnError(RuntimeError):
    """Learning failed; the store was left at its previous version."""


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


def store_lora(store: Store) -> LoRAConfig | None:
    """The LoRA shape the store's adapters were trained with (None for an empty store)."""
    cur = store.current_version()
    if cur is None or "lora" not in cur.config:
        return None
    return LoRAConfig(**cur.config["lora"])


def config_for_store(cfg: SealConfig, store: Store) -> SealConfig:
    """``cfg`` with the store's LoRA shape, so its adapters fit."""
    lora = store_lora(store)
    return dataclasses.replace(cfg, lora=lora) if lora is not None else cfg


def load_store_adapter(seal: Seal, store: Store) -> bool:
    """Put the store's current adapter in SLOT; False (and a zero adapter) for an empty store."""
    tensors = store.load_adapter()
    if tensors is None:
        seal.bank.reset(SLOT, seed=0)
        return False
    seal.bank.load_state_dict(SLOT, tensors)
    return True


def learn(seal: Seal, store: Store, path: str | Path, fmt: str = "implications", *, max_bytes: int = MAX_BYTES,
          seed: int = 0, progress: Callable[[str, int, int], None] | None = None) -> LearnReport:
    start = time.perf_counter()
    passages = read_document(path, max_bytes=max_bytes)  # all input checks happen before the store is touched
    dom = KnowledgeDomain(seal.cfg.self_edit.include_passage, seal.cfg.self_edit.max_sequences)
    with store.begin_learn() as tx:
        base_version = tx.base_version
        has_adapter = load_store_adapter(seal, store)
        texts = [""] * len(passages)
        if fmt != "passage":
            outs = seal.write_self_edits(dom, [(p, fmt) for p in passages], n=1, seed=seed,
                                         progress=(lambda d, t: progress("write", d, t)) if progress else None)
            texts = [o[0] for o in outs]
        examples: list[Example] = []
        parsed_seqs: list[list[str]] = []
        fallbacks = 0
        for passage, text in zip(passages, texts, strict=True):
            try:
                parsed = dom.parse_self_edit(passage, text, fmt)
            except SelfEditError:
                parsed = dom.parse_self_edit(passage, "", "passage")
                fallbacks += 1
            examples += parsed.examples
            parsed_seqs.append([e.completion for e in parsed.examples])
        version_no = (base_version.id if base_version else 0) + 1
        job = TrainJob(slot=SLOT, examples=examples, seed=seed * 1_000_003 + version_no, reset=not has_adapter)
        result = seal.train([job], progress=(lambda d, t: progress("train", d, t)) if progress else None)[0]
        if result.failed:
            raise LearnError(f"training failed ({result.failed}); the store is unchanged at version "
                             f"{base_version.id if base_version else 0}")
        name = Path(path).name
        doc_id = tx.add_document(name, passages[0].title, "\n\n".join(p.context for p in passages))
        for text, seqs in zip(texts, parsed_seqs, strict=True):
            tx.add_self_edit(doc_id, fmt, text, seqs)
        tx.set_adapter(seal.bank.state_dict(SLOT))
        cfg = seal.cfg.to_dict()
        version = tx.commit(kind="learn", document_id=doc_id,
                            config={"lora": cfg["lora"], "inner_loop": cfg["inner_loop"], "format": fmt,
                                    "seed": seed, "model": seal.cfg.model.name},
                            metrics={"final_loss": result.final_loss, "steps": result.steps,
                                     "sequences": len(examples), "fallbacks": fallbacks})
    return LearnReport(version.id, name, len(passages), len(examples), texts, fallbacks, result.final_loss,
                       time.perf_counter() - start)


def ask(seal: Seal, store: Store | None, questions: list[str], max_new_tokens: int = 64) -> list[str]:
    """Answer with the store's current adapter (the base model when the store is empty or absent)."""
    use = store is not None and load_store_adapter(seal, store)
    prompts = [seal.lm.chat(q) for q in questions]
    return seal.generator.complete(prompts, max_new_tokens=max_new_tokens, adapters=SLOT if use else None)


__all__ = ["learn", "ask", "LearnError", "LearnReport", "StoreError", "config_for_store", "load_store_adapter"]
