"""A bank of K LoRA adapters living on one frozen base model, routed per batch row.

Every target ``nn.Linear`` gets stacked adapter weights ``A [K, d_in, r]`` and ``B [K, r, d_out]``. A forward
pass is routed by :meth:`AdapterBank.route`: ``None`` (the base model), one slot for every row, or one slot per
row (``-1`` = base for that row). Every slot in order on equal blocks of rows (batched training: one row each;
batched evaluation: one block of questions each) is one batched matmul per factor; any other routing runs the
K adapters side by side as one rank-K*r adapter. :meth:`AdapterBank.route_spans` routes one unpadded token
stream instead (batched training, see ``unpadded.py``): each adapter on its own contiguous span, one grouped
matmul per factor. This is what makes it cheap to train and
evaluate the K candidate self-edits of one context together (see ``inner_loop.py``), and to reset an adapter
in place between edits instead of re-wrapping the model (a flaw of the reference code)::

    bank = AdapterBank.attach(lm.model, LoRAConfig(rank=16), slots=5)
    bank.reset(slot=0, seed=1)
    with bank.route([0, 1, 2, -1]):   # rows 0-2 through adapters 0-2, row 3 through the base model
        logits = lm.model(input_ids).logits

Adapters save as PEFT-format safetensors (``lora_A.weight [r, d_in]``, ``lora_B.weight [d_out, r]``) with a
complete ``adapter_config.json`` (``base_model_name_or_path`` included), so ``peft.PeftModel.from_pretrained``
and ``peft.AutoPeftModelForCausalLM.from_pretrained`` load them too.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from seal.config import LoRAConfig

Route = None | int | Sequence[int] | torch.Tensor


_GROUPED_MM = hasattr(torch, "_grouped_mm")
"""torch's grouped matmul (``[N, d] x [K, d, r]`` with group offsets); used on CPU for float32 adapters (it has
no float64 kernel: float64 banks take the per-span loop)."""


def _contiguous_grad(t: torch.Tensor) -> torch.Tensor:
    """``torch._grouped_mm``'s backward rejects expanded (stride-0) gradients: hand it a contiguous one."""
    if t.requires_grad:
        t.register_hook(lambda g: g.contiguous())
    return t


class _Router:
    """Shared mutable routing state read by every LoRA layer of one bank."""

    def __init__(self) -> None:
        self.ids: int | torch.Tensor | None = None
        self.block = 0
        """``g`` > 0 when ``ids`` are rows sorted by slot within slots ``lo..lo+n-1``, at most ``g`` rows per slot
        (``g = 1``: row k through slot lo+k, as in batched training; ``g`` = questions per adapter, as in batched
        evaluation); see ``_blocks``."""
        self.lo, self.n = 0, 0
        self.places: torch.Tensor | None = None
        """With unequal blocks: each row's place in ``n`` zero-padded blocks of ``block`` rows (``_blocks``)."""
        self.onehot: torch.Tensor | None = None
        """``[rows, K]``: 1 at each row's slot, all zero for rows on the base model."""
        self.spans: list[tuple[int, int, int]] | None = None
        """``(slot, start, end)`` spans covering a one-row token stream in order (unpadded batched training)."""
        self.offs: torch.Tensor | None = None
        """Span ends per slot 0..K-1 (int32) when the spans are in slot order, for ``torch._grouped_mm``."""


def _blocks(ids: list[int]) -> tuple[int, int, int, list[int] | None] | None:
    """How rows sorted by slot map onto ``n`` blocks of ``g`` rows for slots ``lo..lo+n-1``: ``(g, lo, n,
    places)``. ``places`` is None when every slot of the range has exactly ``g`` consecutive rows (the rows are
    the blocks); otherwise it gives each row's place in the padded blocks (a slot's j-th row at
    ``(slot - lo) * g + j``). None when the rows are not sorted by slot, include base-model rows (-1), or the
    padding would more than double them."""
    if not ids or ids[0] < 0 or any(b < a for a, b in itertools.pairwise(ids)):
        return None
    lo, n = ids[0], ids[-1] - ids[0] + 1
    counts = Counter(ids)
    g = max(counts.values())
    if n * g > 2 * len(ids):
        return None
    if len(counts) == n and min(counts.values()) == g:
        return g, lo, n, None
    places, seen = [], Counter()
    for k in ids:
        places.append((k - lo) * g + seen[k])
        seen[k] += 1
    return g, lo, n, places


class LoRALinear(nn.Module):
    """``y = base(x) + scale * (x A_k) B_k`` with k chosen per row by the bank's router."""

    def __init__(self, base: nn.Linear, rank: int, scale: float, slots: int, router: _Router,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.base = base
        self.rank, self.scale, self.router = rank, scale, router
        d_in, d_out = base.in_features, base.out_features
        dev = base.weight.device
        self.A = nn.Parameter(torch.zeros(slots, d_in, rank, device=dev, dtype=dtype))
        self.B = nn.Parameter(torch.zeros(slots, rank, d_out, device=dev, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        ids = self.router.ids
        if ids is None:
            return y
        xf = x.to(self.A.dtype)
        # the scale and the residual add are fused into the second matmul (addmm / baddbmm): fewer passes
        # over the activations, which is most of LoRA's cost at these sizes
        if self.router.spans is not None:
            # one token stream, each adapter on its own contiguous span (unpadded batched training)
            if self.router.offs is not None:  # spans in slot order: torch's grouped matmul, one call per factor
                # the scale goes on the rank-r activations, not the d_out-wide output (nor its gradient), and the
                # update is added into the base output in place: no new activation-sized tensor
                x2 = xf.reshape(-1, x.shape[-1])
                xa = _contiguous_grad(torch._grouped_mm(x2, self.A, offs=self.router.offs)) * self.scale
                delta = _contiguous_grad(torch._grouped_mm(xa, self.B, offs=self.router.offs))
                if y.dtype == delta.dtype:
                    return y.add_(delta.view(y.shape))
                return (y.to(delta.dtype) + delta.view(y.shape)).to(y.dtype)
            # (split, not slicing: a split's backward is one cat, a slice's a zero-filled full-size tensor each)
            sizes = [e - s for _, s, e in self.router.spans]
            xs = xf.reshape(-1, x.shape[-1]).split(sizes)
            ys = y.reshape(-1, y.shape[-1]).to(self.A.dtype).split(sizes)
            out = torch.cat([torch.addmm(yk, xk @ self.A[k], self.B[k], alpha=self.scale)
                             for (k, _, _), xk, yk in zip(self.router.spans, xs, ys, strict=True)])
        elif isinstance(ids, int):
            xa = xf.reshape(-1, x.shape[-1]) @ self.A[ids]
            out = torch.addmm(y.reshape(-1, y.shape[-1]).to(self.A.dtype), xa, self.B[ids], alpha=self.scale)
        elif self.router.block:
            # rows sorted by slot, slots lo..lo+k-1 (batched training, batched evaluation): a slice of the stacked
            # weights (a view), one batched matmul per factor, no gather and no wasted rank
            r = self.router
            lo, k, places = r.lo, r.n, r.places
            a, b = self.A[lo:lo + k], self.B[lo:lo + k]
            if places is None:  # each slot on g consecutive rows: the rows are the blocks
                xa = torch.bmm(xf.reshape(k, -1, x.shape[-1]), a)
                out = torch.baddbmm(y.reshape(k, -1, y.shape[-1]).to(self.A.dtype), xa, b, alpha=self.scale)
            else:  # unequal blocks (questions per passage differ): rows placed into k zero-padded blocks of g
                xb = xf.new_zeros(k * r.block, *x.shape[1:]).index_copy_(0, places, xf)
                delta = torch.bmm(torch.bmm(xb.reshape(k, -1, x.shape[-1]), a), b)
                delta = delta.reshape(k * r.block, *y.shape[1:]).index_select(0, places)
                out = torch.add(y.to(self.A.dtype), delta, alpha=self.scale)
        else:
            # any per-row routing: all K adapters side by side as one rank-K*r adapter, each row keeping only
            # its own slot's block (a one-hot over slots; all zero for base rows). Two plain matmuls, no
            # per-row copies of the weights, however many rows share an adapter
            rows, (k, d_in, r) = x.shape[0], self.A.shape
            a_cat, b_cat = self._side_by_side()
            xa = xf.reshape(-1, d_in) @ a_cat
            xa = (xa.view(rows, -1, k, r) * self.router.onehot.view(rows, 1, k, 1)).view(-1, k * r)
            out = torch.addmm(y.reshape(-1, y.shape[-1]).to(self.A.dtype), xa, b_cat, alpha=self.scale)
        return out.reshape(y.shape).to(y.dtype)

    def _side_by_side(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``A`` as ``[d_in, K*r]`` and ``B`` as ``[K*r, d_out]``. Outside autograd (generation) the copies are
        cached until the weights change (tracked by their version counters), not rebuilt every token."""
        k, d_in, r = self.A.shape
        if torch.is_grad_enabled() and (self.A.requires_grad or self.B.requires_grad):
            return self.A.transpose(0, 1).reshape(d_in, k * r), self.B.reshape(k * r, -1)
        key = (self.A.data_ptr(), self.A._version, self.B.data_ptr(), self.B._version, self.A.shape)
        if getattr(self, "_cat_key", None) != key:
            with torch.no_grad():
                self._cat = (self.A.transpose(0, 1).reshape(d_in, k * r), self.B.reshape(k * r, -1))
            self._cat_key = key
        return self._cat


def peft_config(rank: int, alpha: float, targets, base_model: str | None) -> dict:
    """A complete PEFT ``LoraConfig`` as ``adapter_config.json`` holds it (scale = ``alpha / rank``)."""
    return {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model, "revision": None,
        "r": int(rank), "lora_alpha": alpha, "lora_dropout": 0.0, "target_modules": sorted(targets),
        "bias": "none", "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True,
        "use_rslora": False, "use_dora": False, "modules_to_save": None, "layers_to_transform": None,
        "layers_pattern": None, "rank_pattern": {}, "alpha_pattern": {},
    }


def save_peft_adapter(directory: str | Path, tensors: dict[str, torch.Tensor], *, rank: int, alpha: float,
                      targets, base_model: str | None) -> Path:
    """Write PEFT-named LoRA tensors and their ``adapter_config.json`` into ``directory``, each file atomically."""
    from seal.io import atomic_save_safetensors, atomic_write_text

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_save_safetensors(tensors, directory / "adapter_model.safetensors")
    atomic_write_text(directory / "adapter_config.json",
                      json.dumps(peft_config(rank, alpha, targets, base_model), indent=2) + "\n")
    return directory


class AdapterBank:
    """K LoRA adapter slots attached in place to a model's target linear layers."""

    def __init__(self, model: nn.Module, cfg: LoRAConfig, layers: dict[str, LoRALinear], router: _Router) -> None:
        self.model, self.cfg, self.layers, self.router = model, cfg, layers, router
        self.merged: list = []
        """Keys of the updates :meth:`merge_update` folded into the base weights, in order."""
        self.pristine: dict[str, torch.Tensor] | None = None
        """A copy of the target layers' weights before the first tracked merge (for :meth:`restore_base`)."""

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def attach(cls, model: nn.Module, cfg: LoRAConfig, slots: int = 1) -> AdapterBank:
        """Attach ``slots`` adapters to ``model``'s target layers. Adapters are float32 (also on a bf16 base),
        or float64 on a float64 base (what tests use to check an algorithm rather than its rounding)."""
        if getattr(model, "_seal_bank", None) is not None:
            raise RuntimeError("this model already has an AdapterBank attached; reuse it or detach it first")
        router = _Router()
        layers: dict[str, LoRALinear] = {}
        first = next((p for p in model.parameters() if p.is_floating_point()), None)
        dtype = torch.float64 if first is not None and first.dtype == torch.float64 else torch.float32
        for name, module in list(model.named_modules()):
            for child_name, child in list(module.named_children()):
                if child_name in cfg.targets and isinstance(child, nn.Linear):
                    full = f"{name}.{child_name}" if name else child_name
                    lora = LoRALinear(child, cfg.rank, cfg.alpha / cfg.rank, slots, router, dtype)
                    setattr(module, child_name, lora)
                    layers[full] = lora
        if not layers:
            raise ValueError(f"no linear layer named any of {cfg.targets} in the model")
        bank = cls(model, cfg, layers, router)
        bank._flatten()
        model._seal_bank = bank
        return bank

    def _flatten(self) -> None:
        """Re-home every layer's A and B as views of one ``[K, P]`` buffer (``self.flat``): slot k's whole
        adapter is the row ``flat[k]``, so the optimiser, clipping and NaN checks are a few whole-buffer ops
        instead of several per layer."""
        params = [(lora, name) for lora in self.layers.values() for name in ("A", "B")]
        old = [getattr(lora, name) for lora, name in params]
        k = old[0].shape[0]
        flat = torch.zeros(k, sum(t[0].numel() for t in old), dtype=old[0].dtype, device=old[0].device)
        offset = 0
        for (lora, name), t in zip(params, old, strict=True):
            n = t[0].numel()
            view = flat[:, offset:offset + n].view(t.shape)
            view.copy_(t.detach())
            setattr(lora, name, nn.Parameter(view))
            offset += n
        self.flat = flat

    def detach(self) -> None:
        """Put the original linear layers back (adapters are dropped; merged updates stay merged)."""
        for full, lora in self.layers.items():
            parent_name, _, child = full.rpartition(".")
            parent = self.model.get_submodule(parent_name) if parent_name else self.model
            setattr(parent, child, lora.base)
        self.model._seal_bank = None
        self.layers = {}

    @property
    def slots(self) -> int:
        return next(iter(self.layers.values())).A.shape[0]

    def ensure_slots(self, slots: int) -> None:
        """Grow (never shrink) the number of slots; existing slots keep their weights."""
        if slots <= self.slots:
            return
        for lora in self.layers.values():
            for pname in ("A", "B"):
                old = getattr(lora, pname)
                new = torch.zeros(slots, *old.shape[1:], dtype=old.dtype, device=old.device)
                new[: old.shape[0]] = old.detach()
                setattr(lora, pname, nn.Parameter(new))
        self._flatten()

    def parameters(self) -> list[nn.Parameter]:
        """Every layer's A and B, in the order of their columns in ``flat``."""
        return [p for lora in self.layers.values() for p in (lora.A, lora.B)]

    def flat_grad(self, slots: Sequence[int] | None = None) -> torch.Tensor:
        """The gradients of the given slots (default: all, in order) as one ``[len(slots), P]`` tensor; row i
        is slot ``slots[i]``. A parameter without a gradient contributes zeros."""
        every = slots is None or list(slots) == list(range(self.slots))
        rows = []
        for p in self.parameters():
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            if every:
                rows.append(g.flatten(1))
            elif len(slots) == 1:
                rows.append(g[slots[0]].reshape(1, -1))
            else:
                rows.append(g[list(slots)].flatten(1))
        return torch.cat(rows, dim=1)

    # ----------------------------------------------------------------- slots
    @torch.no_grad()
    def reset(self, slot: int, seed: int) -> None:
        """Re-initialise one slot in place (PEFT's init: A ~ U(+-1/sqrt(d_in)), B = 0) from ``seed``."""
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        for lora in self.layers.values():
            d_in = lora.A.shape[1]
            bound = 1.0 / math.sqrt(d_in)
            a = torch.empty(lora.A.shape[1:], dtype=torch.float32).uniform_(-bound, bound, generator=gen)
            lora.A[slot].copy_(a.to(lora.A.device))
            lora.B[slot].zero_()

    def state_dict(self, slot: int) -> dict[str, torch.Tensor]:
        """One slot's weights in PEFT naming (``lora_A.weight [r, d_in]``, ``lora_B.weight [d_out, r]``)."""
        out = {}
        for full, lora in self.layers.items():
            out[f"base_model.model.{full}.lora_A.weight"] = lora.A[slot].detach().t().contiguous().cpu()
            out[f"base_model.model.{full}.lora_B.weight"] = lora.B[slot].detach().t().contiguous().cpu()
        return out

    @torch.no_grad()
    def load_state_dict(self, slot: int, tensors: dict[str, torch.Tensor]) -> None:
        expected = set(self.state_dict(slot))
        missing, extra = expected - set(tensors), set(tensors) - expected
        if missing or extra:
            raise ValueError(
                f"adapter does not fit this model/LoRA config ({len(missing)} missing, {len(extra)} unexpected "
                f"tensors, e.g. {sorted(missing or extra)[0]})"
            )
        for full, lora in self.layers.items():
            a = tensors[f"base_model.model.{full}.lora_A.weight"]
            b = tensors[f"base_model.model.{full}.lora_B.weight"]
            if a.t().shape != lora.A.shape[1:] or b.t().shape != lora.B.shape[1:]:
                raise ValueError(f"adapter tensor shape mismatch at {full} (rank {a.shape[0]} vs {self.cfg.rank}?)")
            lora.A[slot].copy_(a.t())
            lora.B[slot].copy_(b.t())

    @torch.no_grad()
    def copy_slot(self, src: int, dst: int) -> None:
        for lora in self.layers.values():
            lora.A[dst].copy_(lora.A[src])
            lora.B[dst].copy_(lora.B[src])

    @torch.no_grad()
    def merge(self, slot: int) -> None:
        """Fold one slot's update into the base weights (the paper's sequential-edit setting); zero the slot.
        Untracked: :meth:`merge_update` also records it, so :meth:`restore_base` can undo it."""
        for lora in self.layers.values():
            delta = (lora.A[slot] @ lora.B[slot]).t() * lora.scale
            lora.base.weight.add_(delta.to(lora.base.weight.dtype))
            lora.B[slot].zero_()

    # ----------------------------------------------------------------- merged updates (bookkeeping)
    def merge_update(self, slot: int, key, *, keep_pristine: bool = True) -> None:
        """:meth:`merge` ``slot`` and remember it as ``key`` in :attr:`merged`; with ``keep_pristine`` the unmerged
        weights are copied first (once), so :meth:`restore_base` can undo every tracked merge exactly."""
        if keep_pristine and self.pristine is None and not self.merged:
            self.pristine = {name: lora.base.weight.detach().clone() for name, lora in self.layers.items()}
        self.merge(slot)
        self.merged.append(key)

    def rename_merged(self, keys: list) -> None:
        """Rename what is merged (e.g. once a store commit gave the pending updates their version ids)."""
        if len(keys) != len(self.merged):
            raise ValueError("set_merged_keys must keep the number of merged updates")
        self.merged = list(keys)

    @torch.no_grad()
    def restore_base(self) -> None:
        """Undo every tracked merge: the base weights become the loaded model's again."""
        if not self.merged:
            return
        if self.pristine is None:
            raise RuntimeError("updates were merged without keeping the original weights; cannot restore them")
        for name, lora in self.layers.items():
            lora.base.weight.copy_(self.pristine[name])
        self.merged = []

    def save(self, slot: int, directory: str | Path, base_model: str | None = None) -> Path:
        """Write ``adapter_model.safetensors`` + ``adapter_config.json`` (PEFT layout), each file atomically.

        ``base_model`` is recorded as ``base_model_name_or_path`` (pass ``LoadedModel.source``: the resolved
        checkpoint directory or HF id), so ``peft.AutoPeftModelForCausalLM.from_pretrained(directory)`` loads
        the adapter on its own; when omitted it is taken from the model's ``config._name_or_path``."""
        if base_model is None:
            known = getattr(getattr(self.model, "config", None), "_name_or_path", "") or None
            base_model = str(Path(known).absolute()) if known and Path(known).is_dir() else known
        return save_peft_adapter(directory, self.state_dict(slot), rank=self.cfg.rank, alpha=self.cfg.alpha,
                                 targets=self.cfg.targets, base_model=base_model)

    def load(self, slot: int, directory: str | Path) -> None:
        from safetensors.torch import load_file

        path = Path(directory) / "adapter_model.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"no adapter at {path}")
        self.load_state_dict(slot, load_file(str(path)))

    # ----------------------------------------------------------------- routing
    @contextlib.contextmanager
    def route_spans(self, slots: Sequence[int], spans: Sequence[tuple[int, int]]) -> Iterator[None]:
        """Route a one-row token stream: tokens ``spans[i] = (start, end)`` through slot ``slots[i]``. The spans
        must cover the stream in order (as ``unpadded.collate_stream`` makes them)."""
        if len(slots) != len(spans):
            raise ValueError("one span per slot")
        if any(not 0 <= k < self.slots for k in slots):
            raise IndexError(f"adapter slot out of range ({self.slots} slots): {list(slots)}")
        if [s for s, _ in spans] != [0] + [e for _, e in spans][:-1]:
            raise ValueError(f"spans must cover the stream in order: {list(spans)}")
        r = self.router
        prev = (r.ids, r.onehot, r.block, r.lo, r.n, r.places, r.spans, r.offs)
        r.ids, r.onehot, r.block, r.places, r.offs = -1, None, 0, None, None
        r.spans = [(int(k), int(s), int(e)) for k, (s, e) in zip(slots, spans, strict=True)]
        first = next(iter(self.layers.values())).A
        dev = first.device
        if _GROUPED_MM and dev.type == "cpu" and first.dtype == torch.float32 and list(slots) == sorted(set(slots)):
            ends = [0] * self.slots
            for k, (_, e) in zip(slots, spans, strict=True):
                ends[k] = e
            for k in range(1, self.slots):  # slots without a span: empty groups
                ends[k] = max(ends[k], ends[k - 1])
            r.offs = torch.tensor(ends, dtype=torch.int32, device=dev)
        try:
            yield
        finally:
            r.ids, r.onehot, r.block, r.lo, r.n, r.places, r.spans, r.offs = prev

    @contextlib.contextmanager
    def route(self, ids: Route) -> Iterator[None]:
        """Route forward passes: ``None`` (or -1) = base, an int = that slot for all rows, a sequence = per row."""
        r = self.router
        prev = (r.ids, r.onehot, r.block, r.lo, r.n, r.places, r.spans, r.offs)
        r.block, r.onehot, r.places, r.spans, r.offs = 0, None, None, None, None
        if ids is None or isinstance(ids, int):
            r.ids = None if ids is None or ids < 0 else ids  # -1 is the base model, never the last slot
        else:
            t = torch.as_tensor(list(ids) if not torch.is_tensor(ids) else ids, dtype=torch.long).cpu()
            if (t >= 0).all() and (t == t[0]).all():
                r.ids = int(t[0])
            elif (t < 0).all():
                r.ids = None
            else:
                if int(t.max()) >= self.slots:
                    raise IndexError(f"adapter slot {int(t.max())} does not exist ({self.slots} slots)")
                dev = next(iter(self.layers.values())).A.device
                r.ids = t.to(dev)
                blocks = _blocks(t.tolist())
                r.block, r.lo, r.n, places = blocks or (0, 0, 0, None)
                r.places = None if places is None else torch.tensor(places, device=dev)
                onehot = torch.zeros(len(t), self.slots, dtype=torch.float32)
                rows = torch.nonzero(t >= 0).flatten()
                onehot[rows, t[rows]] = 1.0
                r.onehot = onehot.to(dev)
        try:
            yield
        finally:
            r.ids, r.onehot, r.block, r.lo, r.n, r.places, r.spans, r.offs = prev
