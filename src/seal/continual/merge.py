"""Merged base weights: the ``merge`` strategy's state, as thin functions over :class:`~seal.lora.AdapterBank`.

The bookkeeping itself lives on the bank (``bank.merged``: the keys of the updates folded into the base weights,
in order; ``bank.pristine``: the weights before the first merge; ``bank.merge_update`` / ``bank.restore_base`` /
``bank.rename_merged``). These functions take the engine, so :mod:`seal.learning` and the learner can say what
they mean::

    merge_slot(seal, 0, key=(version_id, 0))    # fold slot 0 into the base weights, remembered as that key
    apply_merged(seal, 0, chain)                # base = original + chain's adapters, reusing a merged prefix
    restore_base(seal)                          # undo every merge
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from seal.engine import Seal


def merged_keys(seal: Seal) -> list:
    """Keys of the updates merged into ``seal``'s base weights, in order."""
    return list(seal.bank.merged)


def set_merged_keys(seal: Seal, keys: list) -> None:
    """Rename what is merged (e.g. once a store commit gave the pending updates their version ids)."""
    seal.bank.rename_merged(keys)


def merge_slot(seal: Seal, slot: int, key: Any, *, keep_pristine: bool = True) -> None:
    """Fold ``slot`` into the base weights (``AdapterBank.merge``), remembering ``key``; with ``keep_pristine``
    the unmerged weights are copied first (once), so :func:`restore_base` can undo it exactly."""
    seal.bank.merge_update(slot, key, keep_pristine=keep_pristine)


def merge_tensors(seal: Seal, slot: int, tensors: dict[str, torch.Tensor], key: Any) -> None:
    """Load an adapter (PEFT names) into ``slot`` and merge it under ``key``."""
    seal.bank.load_state_dict(slot, tensors)
    merge_slot(seal, slot, key)


def restore_base(seal: Seal) -> None:
    """Undo every merge: the base weights become the loaded model's again."""
    seal.bank.restore_base()


def apply_merged(seal: Seal, slot: int, chain: Sequence[tuple[Any, dict[str, torch.Tensor]]]) -> None:
    """Make the base weights = original + the given updates merged in order (reusing a merged prefix)."""
    done = seal.bank.merged
    keys = [k for k, _ in chain]
    if done != keys[:len(done)]:
        restore_base(seal)
    for key, tensors in list(chain)[len(seal.bank.merged):]:
        merge_tensors(seal, slot, tensors, key)


@torch.no_grad()
def zero_slot(seal: Seal, slot: int) -> None:
    """Make ``slot`` a no-op adapter (B = 0)."""
    for lora in seal.bank.layers.values():
        lora.B[slot].zero_()


__all__ = ["merged_keys", "set_merged_keys", "merge_slot", "merge_tensors", "restore_base", "apply_merged",
           "zero_slot"]
