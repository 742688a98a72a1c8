"""Nothing lost that is the user's: the demo store, torn JSONL logs, atomic plots, the first GGUF conversion,
input checks, and resume that refuses to mix runs. Each test here failed on the code before the fix."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from seal import cli
from seal.io import LogError, append_jsonl, atomic_savefig, read_jsonl
from tests.conftest import SAMPLES, build_model, requires_default_model

SETS = ["--set", "inner_loop.epochs=1", "--set", "self_edit.max_new_tokens=16", "--set", "eval.answer_tokens=4"]


def run_main(monkeypatch, capsys, args: list[str]) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["seal", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.main()
    captured = capsys.readouterr()
    return (0 if exc.value.code is None else exc.value.code), captured.out, captured.err


def one_line_error(code: int, err: str, fragment: str) -> None:
    assert code == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert fragment in " ".join(err.split()), err


# --------------------------------------------------------------------------------------------- seal demo
def test_demo_never_deletes_what_it_did_not_make(monkeypatch, capsys, tmp_path, tiny_model_dir):
    mine = tmp_path / "my-notes"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    code, _, err = run_main(monkeypatch, capsys, ["demo", "--store", str(mine), "--model", str(tiny_model_dir),
                                                  *SETS])
    one_line_error(code, err, "not a store made by seal demo")
    assert (mine / "thesis.txt").read_text() == "years of work"

    # a real store made by `seal learn` is not the demo's either
    doc = tmp_path / "doc.txt"
    doc.write_text("The Verdant Guild\n\nThe Verdant Guild was founded in 1847 by Ilsabet Quorne.\n")
    learned = tmp_path / "learned-store"
    code, _, err = run_main(monkeypatch, capsys, ["learn", str(doc), "--store", str(learned), "--format", "passage",
                                                  "--model", str(tiny_model_dir), *SETS])
    assert code == 0, err
    before = sorted(p.name for p in learned.rglob("*"))
    code, _, err = run_main(monkeypatch, capsys, ["demo", "--store", str(learned), "--model", str(tiny_model_dir),
                                                  *SETS])
    one_line_error(code, err, "not a store made by seal demo")
    assert sorted(p.name for p in learned.rglob("*")) == before

    a_file = tmp_path / "file.txt"
    a_file.write_text("keep")
    code, _, err = run_main(monkeypatch, capsys, ["demo", "--store", str(a_file), "--model", str(tiny_model_dir)])
    one_line_error(code, err, "not a store made by seal demo")
    assert a_file.read_text() == "keep"


def test_demo_replaces_its_own_store(monkeypatch, capsys, tmp_path, tiny_model_dir):
    from seal.store import Store

    store = tmp_path / "demo-store"
    args = ["demo", "--store", str(store), "--format", "passage", "--model", str(tiny_model_dir), *SETS]
    assert run_main(monkeypatch, capsys, args)[0] == 0
    with Store.open(store) as st:
        assert st.made_by == "seal demo" and len(st.history()) == 1
    assert run_main(monkeypatch, capsys, args)[0] == 0  # its own store: made anew, not appended to
    with Store.open(store) as st:
        assert len(st.history()) == 1
    (store / "adapters" / "notes.txt").write_text("mine")  # something of the user's inside it: refused
    code, _, err = run_main(monkeypatch, capsys, args)
    one_line_error(code, err, "not the store's")
    assert (store / "adapters" / "notes.txt").read_text() == "mine"


# --------------------------------------------------------------------------------------------- input checks
@pytest.mark.parametrize("args, fragment", [
    (["ask", ""], "the question is empty"),
    (["ask", "  \n\t "], "the question is empty"),
    (["demo", "--passage", "99"], "--passage must be between 0 and 3"),
    (["demo", "--passage", "-1"], "--passage must be between 0 and 3"),
    (["ask", "Who?", "--model", "./no/such/model-dir"], "model path not found: ./no/such/model-dir"),
    (["ask", "Who?", "--model", "/no/such/dir/"], "model path not found"),
])
def test_bad_input_is_one_line_before_any_model_work(monkeypatch, capsys, tmp_path, args, fragment):
    monkeypatch.chdir(tmp_path)
    if "--model" not in args:  # (a missing model path is found while resolving it, before any weights load)
        monkeypatch.setattr("seal.engine.Seal.load", lambda *a, **k: pytest.fail("the model was loaded"))
    code, _, err = run_main(monkeypatch, capsys, args)
    one_line_error(code, err, fragment)
    assert not any(tmp_path.iterdir())  # nothing written


def test_library_ask_refuses_an_empty_question():
    from seal.learning import LearnError, ask

    with pytest.raises(LearnError, match="empty"):
        ask(None, None, ["fine", " "])


def test_a_directory_without_a_model_says_so(tmp_path):
    from seal.model import ModelLoadError, resolve_checkpoint

    with pytest.raises(ModelLoadError, match="without a config.json"):
        resolve_checkpoint(str(tmp_path))
    assert resolve_checkpoint("HuggingFaceTB/SmolLM2-360M-Instruct") == ("HuggingFaceTB/SmolLM2-360M-Instruct", None)


def test_version(monkeypatch, capsys):
    import seal

    code, out, _ = run_main(monkeypatch, capsys, ["--version"])
    assert code == 0 and out.strip() == f"seal {seal.__version__}"


# --------------------------------------------------------------------------------------------- JSONL logs
def test_append_after_a_torn_line_keeps_records_apart(tmp_path):
    log = tmp_path / "samples.jsonl"
    append_jsonl(log, {"k": 1})
    with open(log, "a", encoding="utf-8") as fh:
        fh.write('{"k": 2, "reward": 0.')  # a kill in the middle of a write
    assert [r["k"] for r in read_jsonl(log)] == [1]  # the torn last line is not a record
    append_jsonl(log, {"k": 3})
    assert [r["k"] for r in read_jsonl(log)] == [1, 3]  # not glued onto the fragment
    assert log.read_text().count("\n") == 2
    assert (tmp_path / "samples.jsonl.torn").read_text() == '{"k": 2, "reward": 0.\n'  # kept aside, not lost


def test_a_complete_last_record_without_its_newline_is_kept(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"k": 1}\n{"k": 2}')
    append_jsonl(log, {"k": 3})
    assert [r["k"] for r in read_jsonl(log)] == [1, 2, 3]
    assert not (tmp_path / "log.jsonl.torn").exists()


@pytest.mark.parametrize("bad", ['{"k": 2, "x"', "not json", "[1, 2]", "\x00\x01"])
def test_a_corrupt_line_in_the_middle_is_reported(tmp_path, bad):
    log = tmp_path / "log.jsonl"
    log.write_text('{"k": 1}\n' + bad + '\n{"k": 3}\n')
    with pytest.raises(LogError, match=r"log.jsonl:2"):
        list(read_jsonl(log))


def test_corrupt_resume_log_is_a_one_line_cli_error(monkeypatch, capsys, tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    args = ["train", "knowledge", "--out", str(run), "--rounds", "1", "--contexts", "1", "--samples", "1",
            "--model", str(tiny_model_dir), *SETS]
    assert run_main(monkeypatch, capsys, args)[0] == 0
    with open(run / "samples.jsonl", "r+", encoding="utf-8") as fh:
        text = fh.read()
        fh.seek(0)
        fh.write("garbage\n" + text)
    (run / "round-1" / "metrics.json").unlink()  # unfinished: resume reads the log
    code, _, err = run_main(monkeypatch, capsys, [*args, "--resume"])
    one_line_error(code, err, "samples.jsonl:1: corrupt log line")


def test_plots_are_written_atomically(tmp_path):
    from seal.report import _plt

    plt = _plt()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = tmp_path / "plot.png"
    atomic_savefig(fig, path)
    good = path.read_bytes()
    assert good.startswith(b"\x89PNG")

    def torn(tmp, format):
        Path(tmp).write_bytes(b"\x89PNG half")
        raise OSError("disk full")

    fig.savefig = torn
    with pytest.raises(OSError, match="disk full"):
        atomic_savefig(fig, path)
    assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["plot.png"]
    plt.close(fig)


# --------------------------------------------------------------------------------------------- GGUF cache
def test_two_first_conversions_at_once_convert_once(tmp_path, monkeypatch):
    import seal.model as m

    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 64)
    monkeypatch.setenv("SEAL_CACHE", str(tmp_path / "cache"))
    calls = []

    def slow_convert(src, target):
        calls.append(src)
        time.sleep(0.3)  # the second process arrives meanwhile
        tmp = target.parent / (target.name + ".tmp-test")
        tmp.mkdir(parents=True)
        (tmp / "config.json").write_text("{}")
        m._publish(tmp, target)

    monkeypatch.setattr(m, "_convert_gguf", slow_convert)
    results, errors = [], []

    def resolve():
        try:
            results.append(m.resolve_checkpoint(str(gguf)))
        except Exception as exc:  # pragma: no cover - the failure this test is about
            errors.append(exc)

    threads = [threading.Thread(target=resolve) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(calls) == 1 and results[0] == results[1]


@pytest.mark.slow
@requires_default_model
def test_first_gguf_conversion_draws_no_third_party_bar(tmp_path, monkeypatch, capfd):
    """transformers' GGUF reader has its own tqdm bar that disable_progress_bar misses (a fresh machine showed
    it), and save_pretrained draws "Writing model shards": the conversion prints no bar at all."""
    from seal import model as m

    monkeypatch.setenv("SEAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SEAL_HF_PROGRESS", raising=False)
    capfd.readouterr()
    path, _ = m.resolve_checkpoint(m.DEFAULT_MODEL)
    err = capfd.readouterr().err
    assert (Path(path) / "config.json").is_file() and "%|" not in err, err[-300:]  # a tqdm bar's mark


def test_publishing_onto_a_finished_conversion_keeps_it(tmp_path):
    from seal.model import _publish

    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text('{"theirs": 1}')
    mine = tmp_path / "model.tmp"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": 1}')
    _publish(mine, target)  # os.replace alone raises here (a non-empty target directory)
    assert json.loads((target / "config.json").read_text()) == {"theirs": 1} and not mine.exists()
    half = tmp_path / "half"
    half.mkdir()
    (half / "junk").write_text("x")
    other = tmp_path / "other.tmp"
    other.mkdir()
    with pytest.raises(OSError):
        _publish(other, half)  # a non-empty target that is not a conversion is not silently accepted


# --------------------------------------------------------------------------------------------- resume
def test_resume_on_another_dtype_is_refused(tokenizer, tmp_path):
    from seal.config import SealConfig
    from seal.domains.knowledge import load_passages
    from seal.engine import Seal
    from seal.model import wrap_model
    from seal.rest_em import RunError, train_knowledge

    cfg = SealConfig.from_dict({"lora": {"rank": 4, "alpha": 8}, "inner_loop": {"epochs": 1},
                                "self_edit": {"max_new_tokens": 12}, "eval": {"answer_tokens": 4},
                                "rest_em": {"rounds": 1, "contexts": 1, "samples": 1}})
    passages = load_passages(SAMPLES)
    first = Seal(wrap_model(build_model(len(tokenizer)), tokenizer, "tiny"), cfg, slots=2)
    train_knowledge(first, passages, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["runtime"] == {"device": "cpu", "dtype": "float32"}
    other = Seal(wrap_model(build_model(len(tokenizer)).to(torch.float64), tokenizer, "tiny"), cfg, slots=2)
    with pytest.raises(RunError, match=r"runtime\.dtype: 'float32' then, 'float64' now"):
        train_knowledge(other, passages, tmp_path / "run", resume=True)
    train_knowledge(first, passages, tmp_path / "run", resume=True)  # the same runtime resumes


def test_arc_resume_checks_the_whole_config(tiny_lm, tmp_path):
    import dataclasses

    from seal.arc_loop import ArcRunError, train_arc
    from seal.config import SealConfig
    from seal.domains.arc.easy import generate_easy_tasks
    from seal.domains.arc.ttt import ArcConfig
    from seal.engine import Seal

    seal = Seal(tiny_lm, SealConfig(), slots=3)
    arc = ArcConfig(slots=2)
    tasks = generate_easy_tasks(1, seed=0, max_side=2, n_train=2)
    out = tmp_path / "arc"
    train_arc(seal, [], out, rounds=1, samples=1, cfg=arc)  # no tasks: only the run's config is written
    saved = (out / "config.json").read_text()
    changed = dataclasses.replace(arc, train_temperature=arc.train_temperature + 0.5)
    with pytest.raises(ArcRunError, match="train_temperature"):
        train_arc(seal, [], out, rounds=1, samples=1, cfg=changed, resume=True)
    with pytest.raises(ArcRunError, match="rest_em.samples"):
        train_arc(seal, [], out, rounds=1, samples=2, cfg=arc, resume=True)
    with pytest.raises(ArcRunError, match="context_ids"):
        train_arc(seal, tasks, out, rounds=1, samples=1, cfg=arc, resume=True)
    assert (out / "config.json").read_text() == saved  # a refused resume rewrites nothing
    train_arc(seal, [], out, rounds=1, samples=1, cfg=arc, resume=True)
    assert os.path.getsize(out / "config.json") == len(saved.encode())
