"""Text generation behind one small interface: sampling self-edits and greedy short answers.

``Generator.complete`` takes prompts (already templated) and, optionally, one adapter slot per prompt, so the
answers of K candidate adapters come out of one batch (each row routed through its own adapter). Sampling goes
through ``model.generate``; greedy answers through a short decoding loop of our own that drops each row as it
ends and runs the LM head on last positions only. The transformers implementation is the default; a vLLM
engine can implement the same method::

    gen = TransformersGenerator(lm, bank)
    texts = gen.complete(prompts, max_new_tokens=24)                          # greedy, base model
    texts = gen.complete(prompts, adapters=[0, 1, 2], max_new_tokens=24)      # per-row adapters
    texts = gen.complete([p] * 5, temperature=1.0, max_new_tokens=256, seed=3)  # 5 samples
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from seal.head_loss import plain_head
from seal.lora import AdapterBank
from seal.model import LoadedModel


class Generator(Protocol):
    def complete(self, prompts: Sequence[str], *, max_new_tokens: int, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int | None = None, adapters: Sequence[int] | int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> list[str]: ...


class TransformersGenerator:
    """Batched generation on a transformers model; rows sorted by length to waste little left-padding, and by
    adapter inside each batch."""

    min_shared = 8
    """Shortest common prompt prefix worth running once per adapter instead of once per row."""

    def __init__(self, lm: LoadedModel, bank: AdapterBank | None = None, batch_size: int = 16,
                 batch_tokens: int = 32768) -> None:
        self.lm, self.bank, self.batch_size, self.batch_tokens = lm, bank, batch_size, batch_tokens
        params = inspect.signature(type(lm.model).forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._keep_kw = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self._head = lm.model.lm_head if plain_head(lm.model) else None
        tok = lm.tokenizer
        stops = {tok.eos_token_id}
        for special in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>"):
            tid = tok.convert_tokens_to_ids(special) if special in tok.get_vocab() else None
            if tid is not None:
                stops.add(tid)
        self.stop_ids = sorted(s for s in stops if s is not None)

    @torch.no_grad()
    def complete(self, prompts, *, max_new_tokens, temperature=0.0, top_p=1.0, seed=None, adapters=None,
                 progress=None) -> list[str]:
        prompts = list(prompts)
        if adapters is not None and not isinstance(adapters, int):
            adapters = list(adapters)
            if len(adapters) != len(prompts):
                raise ValueError("one adapter slot per prompt")
        if adapters is not None and self.bank is None:
            raise ValueError("adapters given but this generator has no AdapterBank")
        tok = self.lm.tokenizer
        encoded = [tok(p, add_special_tokens=not self.lm.has_chat_template)["input_ids"] for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
        out: list[str] = [""] * len(prompts)
        counts = [0] * len(prompts)
        if seed is not None:
            torch.manual_seed(seed)
        done = 0
        for idx in _batches(order, [len(e) for e in encoded], self.batch_size, self.batch_tokens):
            if isinstance(adapters, list):
                # adapter-major inside the batch (padding is the same): K adapters with the same questions then
                # form equal blocks of rows, which the bank runs as one batched matmul without wasted rank
                idx = sorted(idx, key=lambda i: adapters[i])
            route = adapters if adapters is None or isinstance(adapters, int) else [adapters[i] for i in idx]
            kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, eos_token_id=self.stop_ids)
            if temperature > 0:
                kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            batch = self._shared_prefix([encoded[i] for i in idx], route)
            if temperature > 0:
                with self._route(route):
                    gen = self.lm.model.generate(**batch, **kwargs)
                new = list(gen[:, batch["input_ids"].shape[1]:])
            else:
                new = self._greedy(batch, route, max_new_tokens)
            for row, i in enumerate(idx):
                out[i] = tok.decode(new[row], skip_special_tokens=True).strip()
                ids = new[row].tolist() if torch.is_tensor(new[row]) else new[row]
                counts[i] = next((k for k, t in enumerate(ids) if t in self.stop_ids), len(ids))
            done += len(idx)
            if progress is not None:
                progress(done, len(prompts))
        self.last_counts = counts
        """Tokens generated for each prompt of the last call, up to (not counting) a stop token."""
        return out

    def _route(self, route):
        return self.bank.route(route) if self.bank is not None else contextlib.nullcontext()

    def _greedy(self, batch: dict, route, max_new_tokens: int) -> list[list[int]]:
        """Greedy decoding that drops each row from the batch as soon as it ends (a stop token), so the
        remaining decode steps cost only what the unfinished rows need; with K adapters' answers in one batch,
        a few long answers no longer keep every row running. Same tokens as ``generate`` greedy."""
        model, ids, mask = self.lm.model, batch["input_ids"], batch["attention_mask"]
        cache = batch.get(self._cache_kw)
        past = cache.get_seq_length() if cache is not None else 0
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        step_ids, step_pos = ids[:, past:], positions[:, past:]
        live = list(range(ids.shape[0]))  # batch row of each live row
        routes = list(route) if isinstance(route, list) else None
        stops = torch.tensor(self.stop_ids, device=ids.device)
        out: list[list[int]] = [[] for _ in live]
        for t in range(max_new_tokens):
            kw = {"input_ids": step_ids, "attention_mask": mask, "position_ids": step_pos, "use_cache": True}
            if cache is not None:
                kw[self._cache_kw] = cache
            with self._route(routes if routes is not None else route):
                if self._head is not None:  # decoder, then the LM head on each row's last position only
                    res = model.model(**kw)
                    nxt = _head_logits(self._head, res.last_hidden_state[:, -1]).argmax(-1)
                else:
                    res = model(**kw, **self._keep_kw)
                    nxt = res.logits[:, -1].argmax(-1)
            cache = getattr(res, "cache", None) or getattr(res, "past_key_values", None)
            ended = torch.isin(nxt, stops)
            for row, token in zip(live, nxt.tolist(), strict=True):
                out[row].append(token)  # a stop token too, as generate keeps it (decoding skips special ones)
            if t == max_new_tokens - 1 or bool(ended.all()):
                break
            last = step_pos[:, -1]
            if bool(ended.any()):
                keep = (~ended).nonzero()[:, 0]
                cache.batch_select_indices(keep)
                mask, nxt, last = mask[keep], nxt[keep], last[keep]
                kept = keep.tolist()
                live = [live[i] for i in kept]
                routes = [routes[i] for i in kept] if routes is not None else None
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            step_ids, step_pos = nxt[:, None], (last + 1)[:, None]
        return out

    def _shared_prefix(self, seqs: list[list[int]], route) -> dict:
        """``generate`` inputs for one batch. Rows that share a prompt prefix (the chat template and system
        prompt, the passage's topic; the whole prompt when sampling several self-edits) get it run once per
        distinct adapter in the batch, its KV cache copied to their rows; the rest of each prompt follows the
        prefix, padded in between. Positions come from the attention mask, so each row sees what it would see
        alone. Falls back to plain left padding when there is little to share."""
        pad, device = self.lm.tokenizer.pad_token_id, self.lm.device
        n = min(_common_prefix(seqs), min(len(x) for x in seqs) - 1)  # >= 1 prompt token left for generate
        if len(seqs) < 2 or n < self.min_shared:
            return _left_pad(seqs, pad, device)
        rows = list(route) if isinstance(route, list) else [route] * len(seqs)
        distinct = list(dict.fromkeys(rows))
        prefix = torch.tensor([seqs[0][:n]] * len(distinct), device=device)
        ctx = (self.bank.route(distinct if len(distinct) > 1 else distinct[0]) if self.bank is not None
               else contextlib.nullcontext())
        with ctx:
            out = self.lm.model(input_ids=prefix, use_cache=True, **self._keep_kw)
        cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        if not hasattr(cache, "batch_select_indices"):
            return _left_pad(seqs, pad, device)
        cache.batch_select_indices(torch.tensor([distinct.index(r) for r in rows], device=device))
        tails = [x[n:] for x in seqs]
        width = max(len(t) for t in tails)
        ids = torch.full((len(seqs), n + width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), n + width), dtype=torch.long)
        ids[:, :n] = torch.tensor(seqs[0][:n])
        mask[:, :n] = 1
        for i, t in enumerate(tails):
            ids[i, n + width - len(t):] = torch.tensor(t)
            mask[i, n + width - len(t):] = 1
        return {"input_ids": ids.to(device), "attention_mask": mask.to(device), self._cache_kw: cache}


def _head_logits(head: torch.nn.Linear, hidden: torch.Tensor) -> torch.Tensor:
    """``head(hidden)`` for ``[rows, d]``. On CPU, fp32 matmuls with 4 to 15 rows take a slow path: the
    SmolLM2 head (576 x 49152) took 15 ms for 15 rows but 6 ms for 16 (measured), so such batches are padded
    to 16 rows and the padding dropped."""
    rows = hidden.shape[0]
    if hidden.device.type == "cpu" and 4 <= rows < 16:
        padded = torch.cat([hidden, hidden.new_zeros(16 - rows, hidden.shape[1])])
        return head(padded)[:rows]
    return head(hidden)


def _batches(order: list[int], lengths: list[int], max_rows: int, max_tokens: int) -> list[list[int]]:
    """``order`` (prompts sorted by length) cut into batches of equal size, at most ``max_rows`` rows, each
    halved until rows x its longest prompt fit ``max_tokens`` (a single row always fits). Equal sizes: 70
    prompts at 64 rows are 35 + 35, not 64 + 6, since a decode step costs about as much for 6 rows as for 35."""
    if not order:
        return []
    n = -(-len(order) // max_rows)
    size = -(-len(order) // n)
    todo = [order[i:i + size] for i in range(0, len(order), size)]
    out = []
    while todo:
        batch = todo.pop(0)
        if len(batch) > 1 and len(batch) * max(lengths[i] for i in batch) > max_tokens:
            half = (len(batch) + 1) // 2
            todo[:0] = [batch[:half], batch[half:]]
        else:
            out.append(batch)
    return out


def _common_prefix(seqs: list[list[int]]) -> int:
    """Length of the longest token prefix shared by every sequence."""
    first = seqs[0]
    n = min(len(x) for x in seqs)
    for x in seqs[1:]:
        i = 0
        while i < n and x[i] == first[i]:
            i += 1
        n = i
    return n


def _left_pad(seqs: list[list[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    n, length = len(seqs), max(len(s) for s in seqs)
    ids = torch.full((n, length), pad_id, dtype=torch.long)
    mask = torch.zeros((n, length), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, length - len(s):] = torch.tensor(s)
        mask[i, length - len(s):] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
