"""Export what a store learned, for use without seal: a PEFT LoRA adapter, or a plain merged model.

Run as ``seal export DIR [--store S] [--version N] [--merged]`` (see ``seal.cli_export``), or::

    with Store.open("seal-store") as store:
        report = export_store(store, "my-adapter", cfg=cfg)            # current version, PEFT adapter
        export_store(store, "my-model", version=3, merged=True, cfg=cfg)

Without ``merged``, DIR is a PEFT adapter directory: ``adapter_model.safetensors``, a complete
``adapter_config.json`` whose ``base_model_name_or_path`` is the resolved base checkpoint (for the embedded
default model the absolute path of its cached safetensors conversion, for a local directory its absolute path,
otherwise the Hugging Face id), and the base model's tokenizer, so that
``peft.AutoPeftModelForCausalLM.from_pretrained(DIR)`` loads it on its own. ``accumulate`` and ``replay``
stores hold one rank-r adapter, exported as it is. A ``merge`` store's state is the original weights plus every
update of its merge chain, ``W + sum_j s * B_j A_j``, which is generally not one rank-r LoRA; it is exported
exactly as a single LoRA of rank ``r * k`` (k = the chain's length): the A factors stacked, the B factors side
by side, ``lora_alpha`` multiplied by k so that the scale ``alpha / r`` is unchanged. (At rank 16 on the
default model, past about 20 documents that adapter is larger than the full-size deltas it stands for: use
``merged`` then.)

With ``merged``, DIR is a plain transformers checkpoint (safetensors weights, config, generation config,
tokenizer) with the update folded into the base weights by the same arithmetic ``seal ask`` uses for ``merge``
stores, in the dtype the model was loaded in (``model.dtype``; fp32 on CPU by default);
``transformers.AutoModelForCausalLM.from_pretrained(DIR)`` loads it.

Both also write ``seal_export.json`` (which store, version, strategy and documents). Nothing is overwritten:
DIR must not exist or be an empty directory. DIR is built in a temporary directory beside it and renamed into
place only when complete, so a failure or a kill leaves no partial DIR. Refusals (:class:`ExportError`, a
:class:`~seal.store.StoreError`, so the ``seal`` command prints one ``error:`` line): a missing store, a store
with nothing learned (at that version), an unknown version, an existing non-empty DIR.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from seal.config import LoRAConfig, SealConfig
from seal.learning import StoreState, merge_chain_tensors, store_state
from seal.lora import save_peft_adapter
from seal.store import Store, StoreError

MANIFEST = "seal_export.json"


class ExportError(StoreError):
    """The export was refused or failed; nothing was written at the target directory."""


@dataclass
class ExportReport:
    directory: Path
    version: int
    """The version exported (as asked for; a rollback is resolved to its target's weights)."""
    source: int
    """The version whose weights it holds."""
    strategy: str
    merged: bool
    base_model: str
    """``base_model_name_or_path``: the resolved base checkpoint or HF id."""
    updates: int
    """Low-rank updates it is made of (a ``merge`` store's chain length; 1 otherwise)."""
    rank: int
    """The exported adapter's rank (``r * updates`` for a merge chain); the trained rank with ``merged``."""
    documents: list[str] = field(default_factory=list)


def check_target(directory: str | Path) -> Path:
    """Refuse a target that exists and is not an empty directory (nothing of the user's is ever replaced)."""
    directory = Path(directory).expanduser().absolute()
    if directory.exists() or directory.is_symlink():
        if not directory.is_dir() or directory.is_symlink():
            raise ExportError(f"{directory} exists and is not a directory; choose a new export directory")
        if any(directory.iterdir()):
            raise ExportError(f"{directory} exists and is not empty; refusing to overwrite it (choose a new "
                              "export directory)")
    return directory


def base_model_reference(name: str) -> str:
    """``base_model_name_or_path`` for a seal model name: the resolved checkpoint (see ``resolve_checkpoint``)."""
    from seal.model import resolve_checkpoint

    return resolve_checkpoint(name)[0]


def _lora(store: Store, vid: int) -> LoRAConfig:
    cfg = store.version(vid).config.get("lora")
    return LoRAConfig(**cfg) if cfg else LoRAConfig()


def _targets(tensors: dict[str, torch.Tensor]) -> list[str]:
    suffix = ".lora_A.weight"
    return sorted({k[:-len(suffix)].rsplit(".", 1)[-1] for k in tensors if k.endswith(suffix)})


def _rank(tensors: dict[str, torch.Tensor]) -> int:
    ranks = {t.shape[0] for k, t in tensors.items() if k.endswith(".lora_A.weight")}
    if len(ranks) != 1:
        raise ExportError(f"the adapter's layers have different ranks ({sorted(ranks)}); the store is damaged")
    return ranks.pop()


def concat_chain(steps: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """k rank-r LoRA adapters (PEFT names, the same layers) as one rank-``k*r`` adapter whose update is their
    sum (with a common scale): ``[B_1 .. B_k] @ [A_1; ..; A_k] = sum_j B_j @ A_j``."""
    names = set(steps[0])
    if any(set(s) != names for s in steps[1:]):
        raise ExportError("the merge chain's adapters cover different layers; export it with --merged")
    out = {}
    for name in sorted(names):
        dim = 0 if name.endswith(".lora_A.weight") else 1  # A [r, d_in] stacks by rows, B [d_out, r] by columns
        out[name] = torch.cat([s[name] for s in steps], dim=dim).contiguous()
    return out


def _nothing_learned(store: Store, state: StoreState, version: int | None) -> ExportError:
    if state.version is None:
        return ExportError(f"store {store.path} is empty: nothing learned yet (run `seal learn` first)")
    at = f"version {state.version.id}" if version is not None else f"its current version {state.version.id}"
    return ExportError(f"store {store.path} holds nothing learned at {at} (every document was forgotten); "
                       "pass --version with an earlier version (see `seal history`)")


def _adapter(store: Store, state: StoreState, version: int | None, document: str | int | None = None
             ) -> tuple[list[dict[str, torch.Tensor]], LoRAConfig]:
    """The state's low-rank updates, in order, and their (common) LoRA shape."""
    if state.source is None:
        raise _nothing_learned(store, state, version)
    if state.strategy == "routed":  # one adapter per document (or group): the one asked for
        from seal.learning_routed import groups_of

        if document is None:
            raise ExportError("a routed store keeps one adapter per document; pass --document NAME to export one "
                              "(see `seal history`)")
        doc = store.find_document(document)
        group = next((g for g in groups_of(state) if doc.id in g["documents"]), None)
        if group is None:
            raise ExportError(f"document {doc.name!r} is not learned at store version {state.version.id}")
        return [store.load_adapter(group["adapter"])], _lora(store, group["adapter"])
    if document is not None:
        raise ExportError(f"--document applies to routed stores; this store learns with {state.strategy!r}")
    if state.strategy == "merge":
        chain = merge_chain_tensors(store, state.merge_chain)
        if not chain:
            raise _nothing_learned(store, state, version)
        shapes = {(c.rank, c.alpha, tuple(c.targets)) for c in (_lora(store, vid) for (vid, _), _ in chain)}
        ranks = {_rank(t) for _, t in chain}
        if len(shapes) != 1 or len(ranks) != 1:
            raise ExportError("the merge chain's updates have different LoRA shapes; cannot export them as one "
                              "adapter")
        return [t for _, t in chain], _lora(store, chain[0][0][0])
    tensors = store.load_adapter(state.source.id)
    if tensors is None:
        raise _nothing_learned(store, state, version)
    return [tensors], _lora(store, state.source.id)


def _exported_documents(store: Store, state: StoreState, document: str | int | None) -> list[int]:
    if state.strategy != "routed":
        return state.document_ids
    from seal.learning_routed import groups_of

    doc = store.find_document(document)
    return next(g["documents"] for g in groups_of(state) if doc.id in g["documents"])


def _save_tokenizer(reference: str, directory: Path) -> None:
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(reference).save_pretrained(directory)


@torch.no_grad()
def _save_merged(cfg: SealConfig, steps: list[dict[str, torch.Tensor]], lora: LoRAConfig, directory: Path) -> None:
    """Load the base model, fold the updates into its weights in order (``AdapterBank.merge``: the arithmetic
    ``seal ask`` uses for merge stores) and save it as a plain checkpoint."""
    from seal.lora import AdapterBank
    from seal.model import load_model

    lm = load_model(cfg.model)
    bank = AdapterBank.attach(lm.model, lora, slots=1)
    try:
        for tensors in steps:
            try:
                bank.load_state_dict(0, tensors)
            except ValueError as exc:
                raise ExportError(f"the store's adapter does not fit {cfg.model.name!r}: {exc}") from None
            bank.merge(0)
    finally:
        bank.detach()
    lm.model.save_pretrained(directory, safe_serialization=True)


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True) + [root]:
        flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
        fd = os.open(path, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def export_store(store: Store, directory: str | Path, *, version: int | None = None, merged: bool = False,
                 cfg: SealConfig | None = None, document: str | int | None = None) -> ExportReport:
    """Export ``version`` (default: the current one) of ``store`` into the new directory ``directory``: a PEFT
    adapter, or with ``merged`` a plain merged checkpoint (see the module docstring). ``cfg.model`` names the
    base model (default: the store's) and, for ``merged``, where and in which dtype it is loaded."""
    directory = check_target(directory)
    cfg = cfg or SealConfig()
    state = store_state(store, version)  # StoreError for an unknown version
    steps, lora = _adapter(store, state, version, document)
    # the base model is the store's (Store.open(base_model=...) refuses another); cfg.model says how to load it
    name = store.base_model or state.source.config.get("model") or cfg.model.name
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name=name), lora=lora)
    reference = base_model_reference(cfg.model.name)
    if not merged and len(steps) > 1:
        tensors = concat_chain(steps)
        alpha = lora.alpha * len(steps)  # rank r*k with alpha*k: the same scale alpha / r as every step
    else:
        tensors, alpha = steps[0], lora.alpha
    rank = _rank(tensors)
    docs = {d.id: d.name for d in store.documents(include_removed=True)}
    report = ExportReport(directory, state.version.id, state.source.id, state.strategy, merged, reference,
                          len(steps), rank, [docs.get(d, str(d)) for d in _exported_documents(store, state, document)])

    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        if merged:
            _save_merged(cfg, steps, lora, tmp)
        else:
            save_peft_adapter(tmp, tensors, rank=rank, alpha=alpha, targets=_targets(tensors),
                              base_model=reference)
        _save_tokenizer(reference, tmp)
        manifest = {"store": str(store.path), "version": report.version, "source_version": report.source,
                    "strategy": report.strategy, "documents": report.documents, "merged": merged,
                    "base_model": cfg.model.name, "base_model_name_or_path": reference, "updates": report.updates,
                    "rank": rank, "lora_alpha": alpha, "trained_rank": lora.rank}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp makes it 0700
        _fsync_tree(tmp)
        try:
            os.rename(tmp, directory)  # replaces an empty directory only; never a non-empty one
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise ExportError(f"{directory} appeared or filled up while exporting; nothing was written "
                                  "there") from None
            raise
        with contextlib.suppress(OSError):
            fd = os.open(directory.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


__all__ = ["export_store", "check_target", "concat_chain", "base_model_reference", "ExportError", "ExportReport"]
