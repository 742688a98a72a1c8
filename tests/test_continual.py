"""Continual learning on the tiny random model: strategies (merge / accumulate / replay), forget, rollback,
probes, the forgetting guard, the retention matrix, and the store's crash safety and locking through real
``seal learn`` processes.

The CLI commands of ``seal.cli_continual`` are registered here (idempotently), so these tests do not depend on
``seal.cli`` wiring them; subprocesses do the same through ``CHILD``.
"""

from __future__ import annotations

import fcntl
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from seal import cli
from seal import continual as cont
from seal.cli_continual import register
from seal.config import SealConfig
from seal.continual import Learner
from seal.engine import Seal
from seal.learning import (
    SLOT,
    LearnError,
    ask,
    forget,
    learn,
    load_store_adapter,
    merge_chain_tensors,
    rollback,
    store_state,
)
from seal.model import wrap_model
from seal.store import CorruptAdapterError, Store
from tests.conftest import build_model, matmul_bound

register(cli.app, cli.eval_app)

SRC = str(Path(__file__).resolve().parents[1] / "src")
SETS = ["--set", "inner_loop.epochs=1", "--set", "self_edit.max_new_tokens=16", "--set", "eval.answer_tokens=4"]
DOCS = {
    "guild.txt": "The Verdant Guild\n\nThe Verdant Guild was founded in 1847 by Ilsabet Quorne in Marrowick.\n",
    "railway.txt": "Pellucid Railway\n\nThe Pellucid Railway opened in 1912 and crosses the salt flats of Orveny.\n",
    "fenn.txt": "Captain Odalys Fenn\n\nCaptain Odalys Fenn commanded the airship Meridian Lark in 1903 above Sarnholm.\n",
}
CHILD = ("import sys; sys.path.insert(0, {src!r}); from seal import cli; from seal.cli_continual import register; "
         "register(cli.app, cli.eval_app); cli.main()")


def small_cfg(**inner) -> SealConfig:
    return SealConfig().override(["inner_loop.epochs=2", "self_edit.max_new_tokens=16", "eval.answer_tokens=4",
                                  "lora.rank=4", "lora.alpha=8"] + [f"inner_loop.{k}={v}" for k, v in inner.items()])


def untied_model(tokenizer, seed: int = 1):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=False, pad_token_id=0, eos_token_id=2, bos_token_id=1)
    model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = 0
    return model


@pytest.fixture()
def make_seal(tokenizer):
    """A fresh engine on a freshly built tiny model (identical weights every time)."""

    def make(cfg: SealConfig | None = None, grader=None, chatty: bool = False) -> Seal:
        model = untied_model(tokenizer) if chatty else build_model(len(tokenizer))
        return Seal(wrap_model(model, tokenizer, "tiny-test-model"), cfg or small_cfg(), grader=grader, slots=2)

    return make


def write_docs(tmp_path: Path, texts: dict[str, str]) -> dict[str, Path]:
    """Each text as ``tmp_path/docs/NAME``; name -> path."""
    out = {}
    for name, text in texts.items():
        out[name] = tmp_path / "docs" / name
        out[name].parent.mkdir(exist_ok=True)
        out[name].write_text(text, encoding="utf-8")
    return out


@pytest.fixture()
def docs(tmp_path) -> dict[str, Path]:
    return write_docs(tmp_path, DOCS)


def open_store(path: Path) -> Store:
    return Store.open(path, create=True, base_model="tiny-test-model")


def assert_tensors_equal(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def base_weights(seal: Seal) -> dict[str, torch.Tensor]:
    return {name: lora.base.weight.detach().clone() for name, lora in seal.bank.layers.items()}


def stored_sequences(store: Store, name: str) -> list[str]:
    doc = store.find_document(name)
    return [s for e in store.self_edits([doc.id]) for s in e["sequences"]]


class Spy:
    """Records every training job the continual learner runs."""

    def __init__(self, monkeypatch):
        self.jobs: list[list[str]] = []
        real = cont.train_adapters

        def spy(bank, tok, jobs, cfg, progress=None):
            self.jobs += [[e.completion for e in j.examples] for j in jobs]
            return real(bank, tok, jobs, cfg, progress)

        monkeypatch.setattr(cont, "train_adapters", spy)


# --------------------------------------------------------------------------- strategies
def test_merge_store_holds_low_rank_steps_and_load_equals_base_plus_deltas(make_seal, docs, tmp_path):
    s = make_seal()
    original = base_weights(s)
    with open_store(tmp_path / "st") as st:
        r1 = learn(s, st, docs["guild.txt"], "passage", strategy="merge")
        r2 = learn(s, st, docs["railway.txt"], "passage")  # the store's strategy continues
        assert (r1.strategy, r2.strategy) == ("merge", "merge")
        v2 = st.current_version()
        assert v2.config["strategy"] == "merge"
        assert v2.config["merge_chain"] == [[1, 0], [None, 0]]
        assert v2.config["documents"] == [[1, 0], [2, 0]]
        own = st.load_adapter(2)
        assert all(k.startswith("step0.base_model.model.") for k in own)  # one low-rank adapter, not the chain
        assert len(own) == 2 * len(s.bank.layers)
        chain = merge_chain_tensors(st, store_state(st).merge_chain)
        assert [key for key, _ in chain] == [(1, 0), (2, 0)]
        in_process = base_weights(s)
        fresh = make_seal()
        assert load_store_adapter(fresh, st) is True
    scale = fresh.bank.cfg.alpha / fresh.bank.cfg.rank
    loaded = base_weights(fresh)
    u = torch.finfo(torch.float32).eps / 2
    for name in s.bank.layers:
        expected = original[name].double()
        bound = torch.zeros_like(expected)  # what float32 rounding allows, whatever order the merge sums in
        for _, tensors in chain:
            a = tensors[f"base_model.model.{name}.lora_A.weight"]  # [r, d_in]
            b = tensors[f"base_model.model.{name}.lora_B.weight"]  # [d_out, r]
            expected += scale * (b.double() @ a.double())
            bound += scale * matmul_bound(b, a) + 4 * u * expected.abs()  # the product, its scale and the add
        assert ((loaded[name].double() - expected).abs() <= bound).all()
        assert torch.equal(loaded[name], in_process[name])  # the learning process merged the same way
        assert not torch.equal(loaded[name], original[name])
    for lora in fresh.bank.layers.values():  # the slot is a zero adapter: the merged base answers
        assert lora.B[SLOT].abs().sum() == 0


def test_accumulate_continues_one_adapter(make_seal, docs, tmp_path):
    s = make_seal()
    with open_store(tmp_path / "st") as st:
        learn(s, st, docs["guild.txt"], "passage", seed=3)
        learn(s, st, docs["railway.txt"], "passage", seed=3)
        seqs = [stored_sequences(st, n) for n in ("guild.txt", "railway.txt")]
        got = st.load_adapter()
        assert st.current_version().config["strategy"] == "accumulate"
    ref = make_seal()  # the same by hand: a fresh adapter on doc 1, continued on doc 2
    learner = Learner(ref, "accumulate")
    for seq in seqs:
        learner.train(seq, 3)
        learner.commit()
    assert_tensors_equal(got, ref.bank.state_dict(SLOT))
    from seal.inner_loop import Example, TrainJob, train_adapters

    manual = make_seal()
    for step, seq in enumerate(seqs, 1):
        train_adapters(manual.bank, manual.lm.tokenizer, [TrainJob(SLOT, [Example("", x) for x in seq],
                                                                   seed=3 * 1_000_003 + step, reset=step == 1)],
                       manual.cfg.inner_loop)
    assert_tensors_equal(got, manual.bank.state_dict(SLOT))


def test_replay_mixes_a_sample_of_earlier_sequences(make_seal, docs, tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    s = make_seal()
    with open_store(tmp_path / "st") as st:
        reports = [learn(s, st, docs[n], "passage", strategy="replay", replay_ratio=1.0) for n in DOCS]
        seqs = [stored_sequences(st, n) for n in DOCS]
        assert [v.metrics["replayed"] for v in st.history()] == [0, 1, 1]
        assert st.current_version().config["replay_ratio"] == 1.0
    assert [r.replayed for r in reports] == [0, 1, 1]
    assert spy.jobs[0] == seqs[0]  # nothing earlier to replay
    for k in (1, 2):
        job = spy.jobs[k]
        assert job[:len(seqs[k])] == seqs[k]
        replayed = job[len(seqs[k]):]
        assert len(replayed) == math.ceil(1.0 * len(seqs[k]))
        pool = [x for seq in seqs[:k] for x in seq]
        assert set(replayed) <= set(pool)

    spy.jobs.clear()  # accumulate never replays; a larger ratio replays more (at most the whole pool)
    s2 = make_seal()
    with open_store(tmp_path / "st2") as st:
        learn(s2, st, docs["guild.txt"], "passage")
        learn(s2, st, docs["railway.txt"], "passage")
        learn(s2, st, docs["fenn.txt"], "passage", strategy="replay", replay_ratio=5.0)
    assert spy.jobs[1] == seqs[1]
    assert sorted(spy.jobs[2][1:]) == sorted(seqs[0] + seqs[1])


def test_replay_sample_is_seeded(make_seal):
    learner = Learner(make_seal(), "replay", replay_ratio=0.5)
    learner.history = [[f"a{i}" for i in range(10)], [f"b{i}" for i in range(10)]]
    one = learner.replay_sample(6, 0.5, seed=7)
    assert one == learner.replay_sample(6, 0.5, seed=7) and len(one) == 3
    assert learner.replay_sample(6, 0.5, seed=8) != one or len(set(one)) == 3
    assert learner.replay_sample(6, 0.0, seed=7) == []
    assert len(learner.replay_sample(100, 1.0, seed=7)) == 20


def test_strategy_switch_is_refused(make_seal, docs, tmp_path):
    s = make_seal()
    with open_store(tmp_path / "st") as st:
        learn(s, st, docs["guild.txt"], "passage")
        with pytest.raises(LearnError, match="learns with strategy 'accumulate'"):
            learn(s, st, docs["railway.txt"], "passage", strategy="merge")
        with pytest.raises(LearnError, match="unknown strategy"):
            learn(s, st, docs["railway.txt"], "passage", strategy="bogus")
        assert [v.id for v in st.history()] == [1]
        learn(s, st, docs["railway.txt"], "passage", strategy="replay")  # same layout: fine
        assert st.current_version().config["strategy"] == "replay"


# --------------------------------------------------------------------------- forget
@pytest.mark.parametrize("strategy", ["accumulate", "merge", "replay"])
def test_forget_equals_learning_the_remaining_documents_from_scratch(make_seal, docs, tmp_path, strategy):
    s = make_seal()
    with open_store(tmp_path / "a") as st:
        for n in DOCS:
            learn(s, st, docs[n], "passage", strategy=strategy, seed=5)
        before = base_weights(s)
        report = forget(s, st, "railway.txt")
        assert (report.version, report.remaining, report.document) == (4, 2, "railway.txt")
        v = st.current_version()
        assert (v.kind, v.parent, v.document_id) == ("forget", 3, 2)
        assert [d.name for d in st.documents()] == ["guild.txt", "fenn.txt"]
        assert v.config["documents"] == [[1, 5], [3, 5]]
        if strategy == "merge":
            forgot = [t for _, t in merge_chain_tensors(st, store_state(st).merge_chain)]
            after_forget_in_process = base_weights(s)
        else:
            forgot = [st.load_adapter()]
        fresh_after = make_seal()
        load_store_adapter(fresh_after, st)
    s2 = make_seal()
    with open_store(tmp_path / "b") as st2:
        for n in ("guild.txt", "fenn.txt"):
            learn(s2, st2, docs[n], "passage", strategy=strategy, seed=5)
        if strategy == "merge":
            scratch = [t for _, t in merge_chain_tensors(st2, store_state(st2).merge_chain)]
        else:
            scratch = [st2.load_adapter()]
    assert len(forgot) == len(scratch)
    for a, b in zip(forgot, scratch, strict=True):
        assert_tensors_equal(a, b)
    if strategy == "merge":
        assert all(torch.equal(base_weights(fresh_after)[k], base_weights(s2)[k]) for k in before)
        assert all(torch.equal(after_forget_in_process[k], base_weights(s2)[k]) for k in before)
        assert any(not torch.equal(before[k], after_forget_in_process[k]) for k in before)


def test_forget_everything_gives_the_base_model(make_seal, docs, tmp_path):
    s = make_seal(chatty=True)
    q = ["Who founded the Verdant Guild?"]
    base = ask(s, None, q, max_new_tokens=6)
    with open_store(tmp_path / "st") as st:
        learn(s, st, docs["guild.txt"], "passage", strategy="merge")
        assert ask(s, st, q, max_new_tokens=6) != base
        forget(s, st, "guild.txt")
        assert st.load_adapter() is None and st.documents() == []
        assert ask(s, st, q, max_new_tokens=6) == base
        with pytest.raises(Exception, match="already removed"):
            forget(s, st, "guild.txt")
        assert [v.kind for v in st.history()] == ["learn", "forget"]


# --------------------------------------------------------------------------- rollback
def test_rollback_merge_store_restores_exact_weights(make_seal, docs, tmp_path):
    s = make_seal(chatty=True)
    q = ["Who founded the Verdant Guild?", "When did the railway open?"]
    with open_store(tmp_path / "st") as st:
        learn(s, st, docs["guild.txt"], "passage", strategy="merge")
        w1, a1 = base_weights(s), ask(s, st, q, max_new_tokens=6)
        learn(s, st, docs["railway.txt"], "passage")
        a2 = ask(s, st, q, max_new_tokens=6)
        assert a2 != a1
        v3 = rollback(st, 1)
        assert (v3.kind, v3.parent, v3.config) == ("rollback", 2, {"target": 1})
        assert store_state(st).merge_chain == [(1, 0)]
        assert ask(s, st, q, max_new_tokens=6) == a1
        assert all(torch.equal(base_weights(s)[k], w1[k]) for k in w1)  # undone exactly, then re-merged
        r4 = learn(s, st, docs["fenn.txt"], "passage")  # continues from version 1's state
        v4 = st.version(r4.version)
        assert v4.parent == 3 and v4.config["merge_chain"] == [[1, 0], [None, 0]]
        assert v4.config["documents"] == [[1, 0], [3, 0]]


def test_cli_rollback_restores_adapter_and_answer(tmp_path, docs, tokenizer):
    model_dir = tmp_path / "chatty"
    untied_model(tokenizer).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    margs = ["--model", str(model_dir), *SETS, "--set", "inner_loop.epochs=6"]
    store = tmp_path / "st"
    run = CliRunner()
    q = "When did the Pellucid Railway open?"

    def ok(args):
        r = run.invoke(cli.app, args)
        assert r.exit_code == 0, (r.output, r.exception)
        return r.stdout

    ok(["learn", str(docs["guild.txt"]), "--store", str(store), "--format", "passage", *margs])
    ans1 = ok(["ask", q, "--store", str(store), "--max-tokens", "8", *margs])
    ok(["learn", str(docs["railway.txt"]), "--store", str(store), "--format", "passage", *margs])
    ans2 = ok(["ask", q, "--store", str(store), "--max-tokens", "8", *margs])
    assert ans2 != ans1
    out = ok(["rollback", "1", "--store", str(store)])
    assert "rolled back to version 1 -> store version 3" in " ".join(out.split())
    with Store.open(store) as st:
        assert [(v.id, v.parent, v.kind) for v in st.history()] == [(1, None, "learn"), (2, 1, "learn"),
                                                                    (3, 2, "rollback")]
        assert_tensors_equal(st.load_adapter(3), st.load_adapter(1))
    assert ok(["ask", q, "--store", str(store), "--max-tokens", "8", *margs]) == ans1
    r = run.invoke(cli.app, ["rollback", "9", "--store", str(store)])
    assert r.exit_code != 0 and "no version 9" in str(r.exception)


# --------------------------------------------------------------------------- corruption
def run_main(monkeypatch, capsys, args):
    monkeypatch.setattr(sys, "argv", ["seal", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.main()
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


@pytest.mark.parametrize("strategy", ["accumulate", "merge"])
def test_corrupted_adapter_is_a_clear_error_from_ask(make_seal, docs, tmp_path, tiny_model_dir, monkeypatch, capsys,
                                                     strategy):
    store = tmp_path / "st"
    s = make_seal()
    with Store.open(store, create=True, base_model=str(tiny_model_dir)) as st:
        learn(s, st, docs["guild.txt"], "passage", strategy=strategy)
        learn(s, st, docs["railway.txt"], "passage")
    # merge: version 2 needs version 1's file too, so damaging v1 must break asking at v2
    path = store / "adapters" / "v00001.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    if strategy == "accumulate":
        path = store / "adapters" / "v00002.safetensors"
        data = bytearray(path.read_bytes())
        data[-3] ^= 0xFF
        path.write_bytes(bytes(data))
    code, out, err = run_main(monkeypatch, capsys, ["ask", "Who?", "--store", str(store), "--model",
                                                    str(tiny_model_dir), *SETS])
    assert code == 1 and out == ""
    last = err.split("\r")[-1].strip().splitlines()[-1]  # (transformers may draw a progress bar first)
    assert last.startswith("error: adapter file ") and "Traceback" not in err
    assert "is corrupt: its sha256 does not match the checksum recorded in the store" in " ".join(err.split())
    with Store.open(store) as st, pytest.raises(CorruptAdapterError):
        rollback(st, 1)


# --------------------------------------------------------------------------- crash safety and locking (processes)
def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "SEAL_STORE_CRASH_POINT")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def seal_proc(args: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD.format(src=SRC), *args], env={**child_env(), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lock_held(store: Path) -> bool:
    fd = os.open(store / "seal-store.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def cli_learn(store: Path, doc: Path, model_dir: Path) -> None:
    r = CliRunner().invoke(cli.app, ["learn", str(doc), "--store", str(store), "--format", "passage",
                                     "--model", str(model_dir), *SETS])
    assert r.exit_code == 0, (r.output, r.exception)


@pytest.mark.parametrize("how", ["before_rename", "after_rename", "sigkill_while_training"])
def test_killed_learn_process_leaves_the_previous_version(tmp_path, docs, tiny_model_dir, how):
    store = tmp_path / "st"
    cli_learn(store, docs["guild.txt"], tiny_model_dir)
    with Store.open(store) as st:
        v1_adapter = st.load_adapter()
    args = ["learn", str(docs["railway.txt"]), "--store", str(store), "--format", "passage",
            "--model", str(tiny_model_dir), *SETS]
    if how == "sigkill_while_training":
        proc = seal_proc(args + ["--set", "inner_loop.epochs=20000"])
        deadline = time.monotonic() + 240
        while not lock_held(store):  # the child is inside its learn transaction
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
    else:
        proc = seal_proc(args, env={"SEAL_STORE_CRASH_POINT": how})
    proc.communicate(timeout=240)
    assert proc.returncode == -signal.SIGKILL
    with Store.open(store) as st:
        assert [(v.id, v.kind) for v in st.history()] == [(1, "learn")]
        assert [d.name for d in st.documents(include_removed=True)] == ["guild.txt"]
        assert_tensors_equal(st.load_adapter(), v1_adapter)
        assert sorted(p.name for p in (store / "adapters").iterdir()) == ["v00001.safetensors"]
    cli_learn(store, docs["railway.txt"], tiny_model_dir)  # the store keeps working
    with Store.open(store) as st:
        assert [(v.id, v.parent) for v in st.history()] == [(1, None), (2, 1)]


def test_concurrent_learn_processes_serialise(tmp_path, docs, tiny_model_dir):
    store = tmp_path / "st"
    Store.open(store, create=True, base_model=str(tiny_model_dir)).close()
    procs = [seal_proc(["learn", str(docs[n]), "--store", str(store), "--format", "passage",
                        "--model", str(tiny_model_dir), *SETS, "--set", "inner_loop.epochs=30"])
             for n in ("guild.txt", "railway.txt")]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    with Store.open(store) as st:
        h = st.history()
        assert [(v.id, v.parent, v.kind) for v in h] == [(1, None, "learn"), (2, 1, "learn")]
        assert sorted(d.name for d in st.documents()) == ["guild.txt", "railway.txt"]
        first, second = h[0].document_id, h[1].document_id
        assert first != second
        assert h[1].config["documents"] == [[first, 0], [second, 0]]  # the second learn built on the first
        assert st.load_adapter(1) is not None and st.load_adapter(2) is not None


def test_cli_forget_equals_cli_learning_the_rest(tmp_path, docs, tiny_model_dir):
    a, b = tmp_path / "a", tmp_path / "b"
    for n in ("guild.txt", "railway.txt"):
        cli_learn(a, docs[n], tiny_model_dir)
    cli_learn(b, docs["railway.txt"], tiny_model_dir)
    r = CliRunner().invoke(cli.app, ["forget", "guild.txt", "--store", str(a), "--model", str(tiny_model_dir), *SETS])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "forgot guild.txt: rebuilt from 1 remaining document(s)" in " ".join(r.stdout.split())
    with Store.open(a) as sa, Store.open(b) as sb:
        assert [v.kind for v in sa.history()] == ["learn", "learn", "forget"]
        assert_tensors_equal(sa.load_adapter(), sb.load_adapter())
    r = CliRunner().invoke(cli.app, ["forget", "nope.txt", "--store", str(a), "--model", str(tiny_model_dir)])
    assert r.exit_code != 0 and "no document 'nope.txt'" in str(r.exception)
