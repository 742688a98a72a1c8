"""``seal export``: a store's knowledge as a PEFT adapter or a merged model that loads without seal and answers
exactly as ``seal ask`` does; refusals; merge-strategy stores; ReST-EM policy adapters are loadable alone.

Answers are compared as text: the exported model is prompted as ``seal.learning.ask`` prompts (the chat
template, no special tokens added, greedy, the same stop tokens, decoded without special tokens and stripped).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from seal import cli
from seal.store import Store
from tests.conftest import requires_default_model

SETS = ["--set", "inner_loop.epochs=1", "--set", "inner_loop.lr=1e-2", "--set", "self_edit.max_new_tokens=16"]
DOCS = {
    "guild.txt": "The Verdant Guild\n\nThe Verdant Guild was founded in 1847 by Ilsabet Quorne in Marrowick.\n",
    "railway.txt": "Pellucid Railway\n\nThe Pellucid Railway opened in 1912 and crosses the salt flats of Orveny.\n",
}
QUESTIONS = ["Who founded the Verdant Guild?", "When did the Pellucid Railway open?", "Where is Marrowick?"]
MAX_TOKENS = 8


def invoke(args: list[str]):
    r = CliRunner().invoke(cli.app, args)
    assert r.exit_code == 0, (args, r.output, r.exception)
    return r


def learn(store: Path, margs: list[str], docs=("guild.txt",), strategy: str | None = None) -> None:
    for name in docs:
        doc = store.parent / name
        doc.write_text(DOCS[name], encoding="utf-8")
        invoke(["learn", str(doc), "--store", str(store), "--format", "passage", *margs,
                *(["--strategy", strategy] if strategy else [])])


def asked(store: Path, margs: list[str]) -> list[str]:
    """What ``seal ask`` prints for each question (its answer and a newline)."""
    out = []
    for q in QUESTIONS:
        r = invoke(["ask", q, "--store", str(store), "--max-tokens", str(MAX_TOKENS), *margs])
        assert r.stdout.endswith("\n")
        out.append(r.stdout[:-1])
    return out


def greedy(model, tok, questions=QUESTIONS, max_new_tokens=MAX_TOKENS) -> list[str]:
    """Answers the way ``seal ask`` asks: ``lm.chat(q)`` prompts, greedy, seal's stop tokens, stripped text."""
    stops = sorted({tok.eos_token_id} | {tok.convert_tokens_to_ids(s) for s in ("<|im_end|>", "<|eot_id|>",
                                                                                 "<|endoftext|>")
                                          if s in tok.get_vocab()})
    answers = []
    for q in questions:
        prompt = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        ids = tok(prompt, add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            gen = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops,
                                 pad_token_id=tok.pad_token_id)
        answers.append(tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    return answers


def load_peft(directory: Path):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    return AutoPeftModelForCausalLM.from_pretrained(str(directory)).eval(), AutoTokenizer.from_pretrained(directory)


def load_merged(directory: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(str(directory)).eval(), AutoTokenizer.from_pretrained(directory)


def run_main(monkeypatch, capsys, args: list[str]) -> tuple[int, str]:
    """``seal ARGS`` through ``seal.cli.main`` (which maps user errors to one line): (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["seal", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.main()
    return exc.value.code or 0, capsys.readouterr().err


def assert_refused(code: int, err: str, fragment: str) -> None:
    assert code == 1
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert fragment in " ".join(err.split()), err


def tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


# --------------------------------------------------------------------------- accumulate (one adapter)
@pytest.fixture(scope="module")
def learned(tmp_path_factory, chatty_model_dir):
    """A store that learned one document (accumulate), and ``seal ask``'s answers with it."""
    root = tmp_path_factory.mktemp("learned")
    margs = ["--model", str(chatty_model_dir), *SETS]
    learn(root / "store", margs)
    return root / "store", margs, asked(root / "store", margs)


def test_adapter_export_loads_alone_and_answers_like_ask(learned, chatty_model_dir, tmp_path):
    store, margs, answers = learned
    out = tmp_path / "adapter"
    r = invoke(["export", str(out), "--store", str(store)])  # no --model: the store knows its base model
    assert "exported store version 1 (accumulate, 1 document(s)) as a rank-16 LoRA adapter" in " ".join(r.stdout.split())
    conf = json.loads((out / "adapter_config.json").read_text())
    assert conf["base_model_name_or_path"] == str(Path(chatty_model_dir).absolute())
    assert (conf["peft_type"], conf["task_type"], conf["r"], conf["lora_alpha"]) == ("LORA", "CAUSAL_LM", 16, 32.0)
    assert set(conf["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                           "down_proj"}
    assert (out / "tokenizer.json").is_file() and (out / "tokenizer_config.json").is_file()
    manifest = json.loads((out / "seal_export.json").read_text())
    assert (manifest["version"], manifest["strategy"], manifest["documents"]) == (1, "accumulate", ["guild.txt"])
    with Store.open(store) as st:  # the adapter tensors are the store's, unchanged
        from safetensors.torch import load_file

        stored, exported = st.load_adapter(), load_file(str(out / "adapter_model.safetensors"))
        assert stored.keys() == exported.keys() and all(torch.equal(stored[k], exported[k]) for k in stored)

    model, tok = load_peft(out)
    assert greedy(model, tok) == answers
    with model.disable_adapter():
        base = greedy(model, tok)
    assert base != answers  # the adapter changes the answers: the comparison above is not vacuous
    assert asked(tmp_path / "no-store", margs) == base


def test_merged_export_loads_with_transformers_and_answers_like_ask(learned, tmp_path):
    store, _, answers = learned
    out = tmp_path / "merged"
    r = invoke(["export", str(out), "--store", str(store), "--merged"])
    assert "as a merged model" in r.stdout
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "seal_export.json"):
        assert (out / name).is_file(), name
    assert not (out / "adapter_config.json").exists()
    model, tok = load_merged(out)
    assert greedy(model, tok) == answers


def test_export_into_an_empty_existing_directory_and_no_leftovers(learned, tmp_path):
    store, _, _ = learned
    out = tmp_path / "empty"
    out.mkdir()
    invoke(["export", str(out), "--store", str(store)])
    assert (out / "adapter_model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # the temporary build dir was renamed


# --------------------------------------------------------------------------- merge (a chain of updates)
@pytest.fixture(scope="module")
def merge_store(tmp_path_factory, chatty_model_dir):
    root = tmp_path_factory.mktemp("merge")
    margs = ["--model", str(chatty_model_dir), *SETS]
    learn(root / "store", margs, docs=("guild.txt", "railway.txt"), strategy="merge")
    return root / "store", margs, asked(root / "store", margs)


def test_merge_store_exports_the_exact_sum_as_one_higher_rank_adapter(merge_store, tmp_path):
    from safetensors.torch import load_file

    store, _, answers = merge_store
    out = tmp_path / "adapter"
    r = invoke(["export", str(out), "--store", str(store)])
    assert "rank-32 LoRA adapter (the exact sum of the 2 merged updates)" in " ".join(r.stdout.split())
    conf = json.loads((out / "adapter_config.json").read_text())
    assert (conf["r"], conf["lora_alpha"]) == (32, 64.0)  # rank 2r, alpha 2*alpha: the same scale alpha / r
    exported = load_file(str(out / "adapter_model.safetensors"))
    with Store.open(store) as st:
        steps = [st.load_adapter(1), st.load_adapter(2)]
    name = next(k for k in exported if k.endswith("q_proj.lora_A.weight"))
    b_name = name.replace("lora_A", "lora_B")
    s = 32.0 / 16
    want = sum(s * t[f"step0.{b_name}"] @ t[f"step0.{name}"] for t in steps)
    got = (64.0 / 32) * exported[b_name] @ exported[name]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)

    model, tok = load_peft(out)
    assert greedy(model, tok) == answers
    with model.disable_adapter():
        assert greedy(model, tok) != answers

    merged = tmp_path / "merged"
    invoke(["export", str(merged), "--store", str(store), "--merged"])
    model, tok = load_merged(merged)
    assert greedy(model, tok) == answers


def test_export_an_earlier_version(merge_store, tmp_path):
    from safetensors.torch import load_file

    store, _, _ = merge_store
    out = tmp_path / "v1"
    invoke(["export", str(out), "--store", str(store), "--version", "1"])
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 16
    assert json.loads((out / "seal_export.json").read_text())["documents"] == ["guild.txt"]
    exported = load_file(str(out / "adapter_model.safetensors"))
    with Store.open(store) as st:
        v1 = st.load_adapter(1)
    assert {f"step0.{k}" for k in exported} == set(v1)
    assert all(torch.equal(exported[k], v1[f"step0.{k}"]) for k in exported)


# --------------------------------------------------------------------------- refusals
def test_refusals_are_one_line_and_write_nothing(learned, tmp_path, monkeypatch, capsys):
    store, _, _ = learned
    out = tmp_path / "out"

    code, err = run_main(monkeypatch, capsys, ["export", str(out), "--store", str(tmp_path / "nope")])
    assert_refused(code, err, "no seal store at")

    empty = tmp_path / "empty-store"
    Store.open(empty, create=True).close()
    code, err = run_main(monkeypatch, capsys, ["export", str(out), "--store", str(empty)])
    assert_refused(code, err, "is empty: nothing learned yet")

    code, err = run_main(monkeypatch, capsys, ["export", str(out), "--store", str(store), "--version", "99"])
    assert_refused(code, err, "no version 99 in store")
    assert not out.exists()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me", encoding="utf-8")
    before = tree(mine)
    for args in ([], ["--merged"]):
        code, err = run_main(monkeypatch, capsys, ["export", str(mine), "--store", str(store), *args])
        assert_refused(code, err, "exists and is not empty; refusing to overwrite it")
    assert tree(mine) == before

    a_file = tmp_path / "a-file"
    a_file.write_text("x", encoding="utf-8")
    code, err = run_main(monkeypatch, capsys, ["export", str(a_file), "--store", str(store)])
    assert_refused(code, err, "exists and is not a directory")
    assert a_file.read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "empty-store", "mine"]


def test_nothing_learned_at_a_version_after_forgetting_everything(tmp_path, chatty_model_dir, monkeypatch, capsys):
    margs = ["--model", str(chatty_model_dir), *SETS]
    store = tmp_path / "store"
    learn(store, margs)
    invoke(["forget", "guild.txt", "--store", str(store), *margs])
    code, err = run_main(monkeypatch, capsys, ["export", str(tmp_path / "out"), "--store", str(store)])
    assert_refused(code, err, "holds nothing learned at its current version 2")
    invoke(["export", str(tmp_path / "out"), "--store", str(store), "--version", "1"])  # the earlier one is there


def test_a_failure_while_writing_leaves_no_directory(learned, tmp_path, monkeypatch):
    from seal import export

    store, _, _ = learned

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(export, "_save_tokenizer", boom)
    with Store.open(store) as st, pytest.raises(OSError, match="disk full"):
        export.export_store(st, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- ReST-EM policy adapters
def test_rest_em_policy_adapter_loads_alone(tiny_model_dir, tmp_path, monkeypatch):
    """A policy saved by a ReST-EM run names its base model (absolute, though given as a relative path)."""
    from seal.config import SealConfig
    from seal.domains.knowledge import load_passages
    from seal.engine import Seal
    from seal.rest_em import POLICY_SLOT, train_knowledge
    from tests.conftest import SAMPLES

    monkeypatch.chdir(Path(tiny_model_dir).parent)
    cfg = SealConfig.from_dict({
        "model": {"name": Path(tiny_model_dir).name}, "lora": {"rank": 4, "alpha": 8},
        "inner_loop": {"epochs": 1, "lr": 5e-2, "batch_tokens": 64},
        "self_edit": {"max_new_tokens": 24, "temperature": 1.0}, "eval": {"answer_tokens": 4},
        "rest_em": {"rounds": 1, "contexts": 1, "samples": 3, "repeats": 1, "selection": "best",
                    "policy_epochs": 1, "policy_lr": 5e-2},
    })
    seal = Seal.load(cfg, slots=4)
    assert seal.lm.path == str(Path(tiny_model_dir).absolute())
    train_knowledge(seal, load_passages(SAMPLES), tmp_path / "run")
    policy = tmp_path / "run" / "round-1" / "policy"
    conf = json.loads((policy / "adapter_config.json").read_text())
    assert conf["base_model_name_or_path"] == str(Path(tiny_model_dir).absolute())
    monkeypatch.chdir(tmp_path)
    from peft import AutoPeftModelForCausalLM

    model = AutoPeftModelForCausalLM.from_pretrained(str(policy))
    sd = seal.bank.state_dict(POLICY_SLOT)
    name = next(k for k in sd if k.endswith("lora_B.weight"))
    assert sd[name].abs().sum() > 0  # the policy was trained (mode "best" keeps a self-edit)
    peft_name = name.replace(".lora_B.weight", ".lora_B.default.weight")
    torch.testing.assert_close(dict(model.named_parameters())[peft_name].detach(), sd[name])


# --------------------------------------------------------------------------- the real default model
@pytest.mark.slow
@requires_default_model
def test_default_model_export_answers_like_ask(tmp_path):
    from seal.model import resolve_checkpoint

    store = tmp_path / "store"
    sets = ["--set", "inner_loop.epochs=1"]
    doc = tmp_path / "guild.txt"
    doc.write_text(DOCS["guild.txt"], encoding="utf-8")
    invoke(["learn", str(doc), "--store", str(store), "--format", "passage", *sets])
    q = QUESTIONS[0]
    answer = invoke(["ask", q, "--store", str(store), "--max-tokens", str(MAX_TOKENS)]).stdout[:-1]
    assert answer.strip()
    out = tmp_path / "adapter"
    invoke(["export", str(out), "--store", str(store)])
    conf = json.loads((out / "adapter_config.json").read_text())
    assert conf["base_model_name_or_path"] == resolve_checkpoint("smollm2-135m")[0]
    assert Path(conf["base_model_name_or_path"]).is_absolute()
    assert (out / "tokenizer.json").is_file()  # the tokenizer travels with the adapter
    model, tok = load_peft(out)
    assert greedy(model, tok, [q]) == [answer]
