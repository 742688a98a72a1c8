"""Unpadded batched training: the K adapters' rows of one step as one token stream, with no padding.

A batched step trains K adapters on K packed rows of different lengths. Padded to the longest row, about a
sixth of the tokens of a step were padding that every linear layer computed and threw away. Here the rows
are laid end to end as one ``[1, N]`` stream instead:

- every linear layer and the LM head see only real tokens;
- each adapter's LoRA runs on its own row's contiguous span of the stream (``bank.route_spans``);
- attention, the one operation that needs rows, runs row by row on its span of the stream, causal within
  each packed sequence (a block-diagonal mask), so nothing attends across rows or sequences.

The losses, gradients and updates are those of the padded batch (tested in ``tests/test_unpadded.py``). It is
used by ``inner_loop`` on Llama-family models, whose attention goes through transformers'
``AttentionInterface``; other models train on padded rows::

    batch, spans = collate_stream(rows, device)
    labels, segments = batch.pop("labels"), batch.pop("segments")
    with bank.route_spans(slots, spans), unpadded_attention(model, segments, spans):
        hidden = model.model(**batch).last_hidden_state
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch

NAME = "seal_unpadded"
"""The attention implementation name registered with transformers."""

_ROWS: contextvars.ContextVar[list[tuple[int, torch.Tensor | None]] | None] = contextvars.ContextVar(
    "seal_unpadded_rows", default=None)
_GQA = tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 5)  # SDPA's enable_gqa


def collate_stream(rows, device: torch.device) -> tuple[dict[str, torch.Tensor], list[tuple[int, int]]]:
    """Rows (``inner_loop._Row``) end to end as one ``[1, N]`` stream: ``input_ids``, ``position_ids``,
    ``labels`` (each row starts with ``-100``, so no target crosses a row boundary), ``segments`` (the packed
    sequence of each token, numbered within its row); and each row's ``(start, end)`` span."""
    spans, start = [], 0
    for r in rows:
        spans.append((start, start + len(r.ids)))
        start += len(r.ids)

    def cat(field: str) -> torch.Tensor:
        return torch.tensor([[v for r in rows for v in getattr(r, field)]], dtype=torch.long, device=device)

    batch = {"input_ids": cat("ids"), "labels": cat("labels"), "position_ids": cat("positions"),
             "segments": cat("segments")}
    return batch, spans


def block_causal_mask(segments: torch.Tensor) -> torch.Tensor:
    """``[..., T]`` segment numbers to a ``[..., T, T]`` mask: causal, and only within a segment."""
    t = segments.shape[-1]
    causal = torch.ones(t, t, dtype=torch.bool, device=segments.device).tril()
    return (segments[..., :, None] == segments[..., None, :]) & causal


def row_masks(segments: torch.Tensor, spans: list[tuple[int, int]]) -> list[tuple[int, torch.Tensor | None]]:
    """Per row of the stream: its length and its block-diagonal causal mask over its packed sequences, or
    None when the row is one sequence (plain causal attention, which SDPA runs without a mask)."""
    out = []
    for s, e in spans:
        row = segments[0, s:e]
        if bool((row == row[0]).all()):
            out.append((e - s, None))
        else:
            out.append((e - s, block_causal_mask(row)[None, None]))
    return out


def attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask=None,
              dropout: float = 0.0, scaling: float | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """transformers attention interface: ``query [1, H, N, D]``, ``key``/``value [1, Hkv, N, D]`` over the
    whole stream; returns ``[1, N, H, D]``. Each row attends only within its own packed sequences."""
    rows = _ROWS.get()
    if rows is None:
        raise RuntimeError("seal_unpadded attention runs only inside unpadded_attention(...)")
    groups = query.shape[1] // key.shape[1]
    if groups > 1 and not _GQA:
        key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    extra = {"enable_gqa": True} if groups > 1 and _GQA else {}
    sizes = [n for n, _ in rows]
    # split, not slices: the backward is one cat, not a zero-filled full-size gradient per row
    outs = [torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None,
                                                             dropout_p=dropout, scale=scaling, **extra)
            for q, k, v, (_, mask) in zip(query.split(sizes, 2), key.split(sizes, 2), value.split(sizes, 2),
                                          rows, strict=True)]
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
    return out.transpose(1, 2).contiguous(), None


def supported(model: torch.nn.Module) -> bool:
    """Whether the model's attention layers dispatch through transformers' ``AttentionInterface`` (registering
    seal's attention function there on first use)."""
    try:
        from transformers import AttentionInterface
    except ImportError:
        return False
    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, attention)
    return hasattr(getattr(model, "config", None), "_attn_implementation")


@contextlib.contextmanager
def unpadded_attention(model: torch.nn.Module, segments: torch.Tensor,
                       spans: list[tuple[int, int]]) -> Iterator[None]:
    """Inside the block, ``model``'s attention runs row by row over the one-row stream, causally within each
    packed sequence (``segments`` and the rows' ``spans``, from ``collate_stream``), never across them."""
    if not supported(model):
        raise RuntimeError(f"{type(model).__name__} does not use transformers' AttentionInterface")
    cfg = model.config
    prev = cfg._attn_implementation
    token = _ROWS.set(row_masks(segments, spans))
    cfg._attn_implementation = NAME
    try:
        yield
    finally:
        cfg._attn_implementation = prev
        _ROWS.reset(token)
