"""The gold answers' likelihood under a model or one of its adapters: a dense reward for ReST-EM.

An accuracy reward on five questions moves in steps of 0.2, so among the k self-edits of a context most tie
(often all at 0) and "the best" is picked by chance. The updated model's probability of the *gold* answers
moves with every self-edit, however little it helped. For one question the score is the geometric mean of the
answer tokens' probabilities after the task prompt (``exp`` of the mean token log-probability), in [0, 1]; a
context's score is its questions' mean. ``rest_em.reward`` chooses how it enters the reward::

    lls = answer_likelihoods(seal.lm, seal.bank, prompts, answers, routes=[1, 1, None])   # one per row
    reward = combine_reward("accuracy+likelihood", d_accuracy=0.2, d_likelihood=0.03)      # 0.23

Rows run in batches of ``batch_rows``, right-padded, the LM head applied only at answer positions.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch

from seal.head_loss import plain_head

REWARDS = ("accuracy", "likelihood", "accuracy+likelihood")
"""``accuracy``: the paper's reward (accuracy after the update minus before). ``likelihood``: the change of the
gold answers' likelihood score. ``accuracy+likelihood``: their sum (the likelihood breaks accuracy's ties).
The config may also say ``auto`` (its default), which :func:`seal.domains.base.reward_rule` resolves per
domain."""


def combine_reward(rule: str, d_accuracy: float, d_likelihood: float | None) -> float:
    """The reward of a self-edit from its accuracy change and likelihood change, by ``rule`` (``REWARDS``)."""
    if rule == "accuracy":
        return d_accuracy
    if d_likelihood is None:
        raise ValueError(f"reward {rule!r} needs the gold answers' likelihood")
    return d_likelihood if rule == "likelihood" else d_accuracy + d_likelihood


@torch.no_grad()
def answer_likelihoods(lm, bank, prompts: Sequence[str], answers: Sequence[str],
                       routes: Sequence[int | None] | None = None, batch_rows: int = 32) -> list[float]:
    """Per row, ``exp(mean log p(answer token | prompt, earlier answer tokens))`` under adapter ``routes[i]``
    (None: the base model). An empty answer scores 1.0 (nothing to predict)."""
    if len(prompts) != len(answers) or (routes is not None and len(routes) != len(prompts)):
        raise ValueError("one answer (and one route) per prompt")
    tok, model = lm.tokenizer, lm.model
    special = not lm.has_chat_template
    lead = "" if lm.has_chat_template else " "  # after a chat template the answer starts a new turn
    rows = []
    for p, a in zip(prompts, answers, strict=True):
        ids_p = tok(p, add_special_tokens=special)["input_ids"]
        ids_a = tok(lead + a.strip(), add_special_tokens=False)["input_ids"] if a.strip() else []
        rows.append((ids_p, ids_a))
    out = [1.0] * len(rows)
    todo = [i for i, (_, a) in enumerate(rows) if a]

    def order(i: int) -> tuple[int, int]:  # adapter-major, then by length: little padding per batch
        return (-1 if routes is None or routes[i] is None else routes[i], len(rows[i][0]) + len(rows[i][1]))

    todo.sort(key=order)
    head = model.lm_head if plain_head(model) else None
    device = lm.device
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for start in range(0, len(todo), batch_rows):
        idx = todo[start:start + batch_rows]
        length = max(len(rows[i][0]) + len(rows[i][1]) for i in idx)
        ids = torch.full((len(idx), length), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), length), dtype=torch.long)
        where_r, where_t, targets = [], [], []
        for r, i in enumerate(idx):
            seq = rows[i][0] + rows[i][1]
            ids[r, :len(seq)] = torch.tensor(seq)
            mask[r, :len(seq)] = 1
            for t in range(len(rows[i][0]), len(seq)):  # the logit at t - 1 predicts token t
                where_r.append(r)
                where_t.append(t - 1)
                targets.append(seq[t])
        route = None if routes is None else [-1 if routes[i] is None else routes[i] for i in idx]
        ctx = bank.route(route) if bank is not None else contextlib.nullcontext()
        with ctx:
            if head is not None:
                hidden = model.model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
                logits = head(hidden[where_r, where_t])
            else:
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[where_r, where_t]
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp32 at least, fp64 kept
        logp = torch.log_softmax(logits, -1).gather(1, torch.tensor(targets, device=device)[:, None])[:, 0]
        sums = torch.zeros(len(idx), dtype=torch.float64).index_add_(0, torch.tensor(where_r), logp.double().cpu())
        for r, i in enumerate(idx):
            out[i] = math.exp(float(sums[r]) / len(rows[i][1]))
    return out
