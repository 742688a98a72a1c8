"""CLI wiring: ``seal learn/ask/history/eval`` on the tiny test model, bad inputs leave the store untouched.

User errors are mapped to ``error: ...`` + exit 1 by ``seal.cli.main`` (the console-script entry point), so
error tests call ``main`` in-process (argv patched) or as a real subprocess; happy paths use typer's CliRunner.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seal import cli
from seal.config import SealConfig
from seal.store import Store

SRC = str(Path(__file__).resolve().parents[1] / "src")
SETS = ["--set", "inner_loop.epochs=1", "--set", "self_edit.max_new_tokens=16", "--set", "eval.answer_tokens=4"]
DOC1 = "The Verdant Guild\n\nThe Verdant Guild was founded in 1847 by Ilsabet Quorne in Marrowick.\n"
DOC2 = "Pellucid Railway\n\nThe Pellucid Railway opened in 1912 and crosses the salt flats of Orveny.\n"


@pytest.fixture()
def margs(tiny_model_dir):
    return ["--model", str(tiny_model_dir), *SETS]


@pytest.fixture()
def cargs(chatty_model_dir):
    return ["--model", str(chatty_model_dir), *SETS]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root with its bytes (None for directories)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


def run_main(monkeypatch, capsys, args: list[str]) -> tuple[int, str, str]:
    """``seal ARGS`` through ``seal.cli.main`` in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["seal", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.main()
    code = exc.value.code
    captured = capsys.readouterr()
    return (0 if code is None else code), captured.out, captured.err


def assert_user_error(code: int, err: str, fragment: str) -> None:
    assert code == 1
    assert err.startswith("error: "), err
    assert "Traceback" not in err
    assert fragment in " ".join(err.split()), err  # (rich may wrap a long message, see the xfail below)


def flat(text: str) -> str:
    return " ".join(text.split())


def invoke(args: list[str]):
    return CliRunner().invoke(cli.app, args)


def learn_ok(store: Path, doc: Path, margs: list[str]) -> None:
    result = invoke(["learn", str(doc), "--store", str(store), "--format", "passage", *margs])
    assert result.exit_code == 0, (result.output, result.exception)


def versions(store: Path) -> list[tuple[int, int | None, str]]:
    with Store.open(store) as st:
        return [(v.id, v.parent, v.kind) for v in st.history()]


BAD_DOCS = {
    "missing": (None, [], "no such file:"),
    "empty": (b"", [], "is empty"),
    "whitespace": (b"  \n\n\t\n", [], "is empty"),
    "binary": (b"\x7fELF\x02\x01\x01\x00\x00\x00binary", [], "looks binary"),
    "latin1": (b"caf\xe9 au lait\n", [], "is not UTF-8 text (invalid byte at offset 3)"),
    "too-large": (b"Some text that is fine.\n" * 5, ["--max-bytes", "100"], "is too large (120 bytes; the "
                                                                             "limit is 100)"),
    "directory": ("dir", [], "not a regular file:"),
    "bad-format": (DOC1.encode(), ["--format", "bogus"], "self_edit.format: 'bogus' is not one of"),
}


def make_doc(tmp_path: Path, case: str) -> tuple[Path, list[str], str]:
    data, extra, fragment = BAD_DOCS[case]
    path = tmp_path / "input" / f"{case}.txt"
    path.parent.mkdir(exist_ok=True)
    if data == "dir":
        path.mkdir()
    elif data is not None:
        path.write_bytes(data)
    return path, extra, fragment


# --------------------------------------------------------------------------- learn: bad input
@pytest.mark.parametrize("case", list(BAD_DOCS))
def test_learn_bad_input_creates_no_store(case, tmp_path, margs, monkeypatch, capsys):
    doc, extra, fragment = make_doc(tmp_path, case)
    store = tmp_path / "store"
    code, out, err = run_main(monkeypatch, capsys, ["learn", str(doc), "--store", str(store), *extra, *margs])
    assert_user_error(code, err, fragment)
    assert out == ""
    assert not store.exists()


@pytest.mark.parametrize("case", list(BAD_DOCS))
def test_learn_bad_input_leaves_existing_store_unchanged(case, tmp_path, margs, monkeypatch, capsys):
    store = tmp_path / "store"
    good = tmp_path / "good.txt"
    good.write_text(DOC1, encoding="utf-8")
    learn_ok(store, good, margs)
    before = snapshot(store)
    assert "seal-store.sqlite" in before and "adapters/v00001.safetensors" in before
    doc, extra, fragment = make_doc(tmp_path, case)
    code, _, err = run_main(monkeypatch, capsys, ["learn", str(doc), "--store", str(store), *extra, *margs])
    assert_user_error(code, err, fragment)
    assert snapshot(store) == before
    assert versions(store) == [(1, None, "learn")]


def test_learn_into_a_store_of_another_base_model_is_refused(tmp_path, margs, monkeypatch, capsys):
    store = tmp_path / "store"
    good = tmp_path / "good.txt"
    good.write_text(DOC1, encoding="utf-8")
    learn_ok(store, good, margs)
    before = snapshot(store)
    code, _, err = run_main(monkeypatch, capsys, ["learn", str(good), "--store", str(store), "--format", "passage",
                                                  *SETS, "--model", str(tmp_path / "other-model")])
    assert_user_error(code, err, "was created for base model")
    assert snapshot(store) == before
    assert versions(store) == [(1, None, "learn")]


def test_learn_refuses_a_non_empty_directory_that_is_not_a_store(tmp_path, margs, monkeypatch, capsys):
    store = tmp_path / "mydocs"
    (store / "sub").mkdir(parents=True)
    (store / "notes.md").write_text("my precious notes\n", encoding="utf-8")
    (store / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = snapshot(store)
    good = tmp_path / "good.txt"
    good.write_text(DOC1, encoding="utf-8")
    code, out, err = run_main(monkeypatch, capsys, ["learn", str(good), "--store", str(store), *margs])
    assert_user_error(code, err, "is not empty and is not a seal store")
    assert snapshot(store) == before


# --------------------------------------------------------------------------- learn / history / ask: good path
def test_learn_twice_history_and_ask(tmp_path, cargs):
    margs = cargs
    store = tmp_path / "store"
    d1, d2 = tmp_path / "guild.txt", tmp_path / "railway.txt"
    d1.write_text(DOC1, encoding="utf-8")
    d2.write_text(DOC2, encoding="utf-8")

    r1 = invoke(["learn", str(d1), "--store", str(store), "--format", "passage", *margs])
    assert r1.exit_code == 0, (r1.output, r1.exception)
    assert "learned guild.txt: 1 passage(s), 1 training sequences" in flat(r1.stdout)
    assert flat(r1.stdout).endswith("-> store version 1")
    assert versions(store) == [(1, None, "learn")]

    r2 = invoke(["learn", str(d2), "--store", str(store), "--format", "passage", *margs])
    assert r2.exit_code == 0, (r2.output, r2.exception)
    assert flat(r2.stdout).endswith("-> store version 2")
    assert versions(store) == [(1, None, "learn"), (2, 1, "learn")]
    with Store.open(store) as st:
        assert [d.name for d in st.documents()] == ["guild.txt", "railway.txt"]
        assert [d.title for d in st.documents()] == ["The Verdant Guild", "Pellucid Railway"]
        assert st.current_version().config["format"] == "passage"
    assert sorted(p.name for p in (store / "adapters").iterdir()) == ["v00001.safetensors", "v00002.safetensors"]

    h = invoke(["history", "--store", str(store)])
    assert h.exit_code == 0, (h.output, h.exception)
    rows = [ln for ln in h.stdout.splitlines() if "learn" in ln]
    assert len(rows) == 2
    assert "guild.txt" in rows[0] and "railway.txt" in rows[1]
    assert rows[1].split()[1:3] == ["2", "*"] or "2 *" in rows[1]  # the current version is marked

    before = snapshot(store)
    question = "Who founded the Verdant Guild?"
    a = invoke(["ask", question, "--store", str(store), "--max-tokens", "8", *margs])
    assert a.exit_code == 0, (a.output, a.exception)
    assert a.stdout.strip() != ""  # the tiny random model answers gibberish, but it answers
    assert snapshot(store) == before  # asking never writes
    # the printed answer is the library's answer with the store's adapter (not the base model's)
    from seal.engine import Seal
    from seal.learning import ask, config_for_store

    cfg = cli.make_config(None, margs[3::2], margs[1])
    with Store.open(store) as st:
        s = Seal.load(config_for_store(cfg, st))
        with_store = ask(s, st, [question], max_new_tokens=8)[0]
    base = ask(s, None, [question], max_new_tokens=8)[0]
    assert a.stdout == with_store + "\n"
    assert with_store != base


def test_ask_without_a_store_uses_the_base_model(tmp_path, cargs):
    margs = cargs
    missing = tmp_path / "no-store"
    a = invoke(["ask", "Who founded the Verdant Guild?", "--store", str(missing), "--max-tokens", "8", *margs])
    assert a.exit_code == 0, (a.output, a.exception)
    assert a.stdout.strip() != ""
    assert not missing.exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    b = invoke(["ask", "Who founded the Verdant Guild?", "--store", str(empty), "--max-tokens", "8", *margs])
    assert b.exit_code == 0, (b.output, b.exception)
    assert b.stdout == a.stdout  # same base model, greedy decoding
    assert list(empty.iterdir()) == []


def test_ask_refuses_a_directory_that_is_not_a_store(tmp_path, margs, monkeypatch, capsys):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "x.txt").write_text("x", encoding="utf-8")
    code, _, err = run_main(monkeypatch, capsys, ["ask", "q?", "--store", str(d), *margs])
    assert_user_error(code, err, "is not empty and is not a seal store")
    assert snapshot(d) == {"x.txt": b"x"}


def test_ask_prints_the_answer_verbatim(tmp_path, margs, monkeypatch):
    monkeypatch.setattr("seal.learning.ask_explained", lambda *a, **k: (["see [draft] and [/x] here"], [None]))
    r = invoke(["ask", "q?", "--store", str(tmp_path / "none"), *margs])
    assert r.exit_code == 0, (r.output, r.exception)
    assert r.stdout == "see [draft] and [/x] here\n"
    r = invoke(["ask", "q?", "--store", str(tmp_path / "none"), "--explain", *margs])
    assert r.stdout == "see [draft] and [/x] here\nanswered by: the base model (no store)\n"


def test_error_message_shows_the_path_verbatim(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(monkeypatch, capsys, ["learn", "notes[draft].txt", "--store", "st"])
    assert code == 1
    assert err == "error: no such file: notes[draft].txt\n"


def test_history_without_a_store(tmp_path, monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, ["history", "--store", str(tmp_path / "none")])
    assert_user_error(code, err, "no seal store at")
    assert not (tmp_path / "none").exists()


def test_bad_set_override(tmp_path, margs, monkeypatch, capsys):
    doc = tmp_path / "d.txt"
    doc.write_text(DOC1, encoding="utf-8")
    code, _, err = run_main(monkeypatch, capsys, ["learn", str(doc), "--store", str(tmp_path / "s"), *margs,
                                                  "--set", "lora.rank=0"])
    assert_user_error(code, err, "lora.rank must be >= 1")
    assert not (tmp_path / "s").exists()


# --------------------------------------------------------------------------- eval
def test_eval_knowledge_json(tmp_path, margs):
    out = tmp_path / "res" / "out.json"
    r = invoke(["eval", "knowledge", "--limit", "1", "--methods", "base,passage", "--json", str(out), *margs])
    assert r.exit_code == 0, (r.output, r.exception)
    full = json.loads(out.read_text(encoding="utf-8"))
    data = full["methods"]
    # SETS trains 1 epoch, not the default 10: the passage row says so (never pooled with a default run's)
    assert set(data) == {"base", "passage [epochs 1]"} and full["seeds"] == [0] and len(full["passages"]) == 1
    assert full["manifest"]["command"].startswith("seal eval knowledge") and full["manifest"]["seeds"] == [0]
    data["passage"] = data.pop("passage [epochs 1]")
    for method in ("base", "passage"):
        d = data[method]
        assert isinstance(d["accuracy"], float) and 0.0 <= d["accuracy"] <= 1.0
        assert d["n_questions"] == 5
        assert isinstance(d["s_per_edit"], float) and d["s_per_edit"] >= 0.0
        assert d["failed_edits"] == 0
    assert data["base"]["edits"] == 0 and data["base"]["s_per_edit"] == 0.0
    assert data["passage"]["edits"] == 1 and data["passage"]["s_per_edit"] > 0.0
    assert "| base |" in r.stdout and "| passage [epochs 1] |" in r.stdout
    assert [p.name for p in out.parent.iterdir()] == ["out.json"]  # atomic write leaves no temp file


def test_eval_knowledge_plot(tmp_path, margs):
    png = tmp_path / "acc.png"
    r = invoke(["eval", "knowledge", "--limit", "1", "--methods", "passage,base", "--plot", str(png), *margs])
    assert r.exit_code == 0, (r.output, r.exception)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_unknown_method_fails(tmp_path, margs):
    out = tmp_path / "out.json"
    r = invoke(["eval", "knowledge", "--limit", "1", "--methods", "base,bogus", "--json", str(out), *margs])
    assert r.exit_code != 0
    assert isinstance(r.exception, (ValueError, SystemExit))  # SystemExit once the CLI validates it itself
    assert "bogus" in flat(str(r.exception) + r.output)
    assert not out.exists()


def test_eval_unknown_method_is_a_one_line_error(margs, monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, ["eval", "knowledge", "--limit", "1", "--methods", "bogus", *margs])
    assert_user_error(code, err, "unknown method(s): bogus")


def test_eval_writes_a_policys_own_format(tmp_path, margs, monkeypatch, capsys):
    """A policy trained to write rewrites is asked for rewrites, named by its format and compared to the untrained
    model's rewrite row (not to implications)."""
    run = tmp_path / "run"
    train = ["train", "knowledge", "--out", str(run), "--rounds", "1", "--contexts", "1", "--samples", "1",
             "--set", "self_edit.format=rewrite", *margs]
    assert run_main(monkeypatch, capsys, train)[0] == 0
    assert json.loads((run / "config.json").read_text())["reward"] == "accuracy+likelihood"  # auto, resolved
    # the same policy as if trained with the accuracy reward measured at the default epochs: its row says the
    # reward, and not the update (the first run's rewards were measured at margs' 1 epoch: its row says that)
    other = tmp_path / "other"
    shutil.copytree(run, other)
    cfg = json.loads((other / "config.json").read_text())
    assert cfg["seal"]["inner_loop"]["epochs"] == 1
    cfg["seal"]["inner_loop"]["epochs"] = SealConfig().inner_loop.epochs
    (other / "config.json").write_text(json.dumps(cfg | {"reward": "accuracy"}))
    out, log = tmp_path / "eval.json", tmp_path / "eval.jsonl"
    code, _, err = run_main(monkeypatch, capsys, ["eval", "knowledge", "--limit", "1", "--methods",
                                                  "passage,rewrite", "--policy", str(run / "round-1"),
                                                  "--policy", str(other / "round-1"),
                                                  "--json", str(out), "--log", str(log), *margs])
    assert code == 0, err
    d = json.loads(out.read_text())
    # margs train 1 epoch, not the default 10: every trained row says so
    assert d["policies"] == {"SEAL round-1 (rewrite, rewarded at epochs 1) [epochs 1]": "rewrite [epochs 1]",
                             "SEAL round-1 (rewrite, accuracy) [epochs 1]": "rewrite [epochs 1]"}
    assert set(d["methods"]["SEAL round-1 (rewrite, rewarded at epochs 1) [epochs 1]"]["vs"]) == {
        "passage", "rewrite [epochs 1]"}
    record = json.loads(log.read_text().splitlines()[0])
    assert record["SEAL round-1 (rewrite, rewarded at epochs 1)"]["self_edit"] is not None
    weights = (run / "round-1" / "policy" / "adapter_model.safetensors").read_bytes()  # the manifest names them
    assert d["manifest"]["policy_sha256"] == {str(p / "round-1"): hashlib.sha256(weights).hexdigest()
                                              for p in (run, other)}


def test_eval_empty_selection(tmp_path, margs, monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, ["eval", "knowledge", "--offset", "99", "--methods", "base", *margs])
    assert code == 1 and err.startswith("error: no passages in ")


# --------------------------------------------------------------------------- a real subprocess
def run_seal(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env.update(PYTHONPATH=SRC + os.pathsep + env.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "seal.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_subprocess_missing_file(tmp_path):
    p = run_seal(["learn", "nope.txt", "--store", "st"], tmp_path)
    assert p.returncode == 1
    assert p.stderr == "error: no such file: nope.txt\n"
    assert p.stdout == ""
    assert sorted(os.listdir(tmp_path)) == []


def test_subprocess_existing_store_unchanged(tmp_path, margs):
    store = tmp_path / "st"
    good = tmp_path / "good.txt"
    good.write_text(DOC1, encoding="utf-8")
    learn_ok(store, good, margs)
    before = snapshot(store)
    (tmp_path / "e.txt").write_bytes(b"")
    p = run_seal(["learn", "e.txt", "--store", "st"], tmp_path)
    assert p.returncode == 1
    assert p.stderr == "error: e.txt is empty\n"
    assert snapshot(store) == before


def test_subprocess_long_error_is_one_line(tmp_path):
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9 au lait\n")
    p = run_seal(["learn", "latin1.txt", "--store", "st", "--max-bytes", "1000"], tmp_path)
    assert p.returncode == 1
    assert p.stderr.startswith("error: latin1.txt is not UTF-8 text")
    assert p.stderr.count("\n") == 1
    assert not (tmp_path / "st").exists()


def test_progress_prints_a_plain_line_per_step_when_not_a_terminal():
    """In a file or CI log the Rich bar shows nothing, so each step of a long run is a plain line."""
    import io

    from rich.console import Console

    from seal.cli_common import LoggedProgress

    def lines(interval: float, counts) -> list[str]:
        buf = io.StringIO()
        with LoggedProgress(console=Console(file=buf, force_terminal=False), transient=True,
                            interval=interval) as bar:
            task = bar.add_task("passages", total=3)
            for i in counts:
                bar.update(task, completed=i, total=3)
        return [ln.split(" (")[0] for ln in buf.getvalue().splitlines() if ln.strip()]

    assert lines(0.0, (1, 2, 2, 3)) == ["passages 1/3", "passages 2/3", "passages 3/3"]
    # per-step counts in quick succession: the first and the last only, not one line per step
    assert lines(3600.0, (1, 2, 2, 3)) == ["passages 1/3", "passages 3/3"]
