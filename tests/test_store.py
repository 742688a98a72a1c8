"""Tests for seal.store: layout, atomic learns, crash safety, locking, rollback, corruption."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seal.store import (
    CorruptAdapterError,
    NotAStoreError,
    Store,
    StoreError,
    Version,
)

SRC = str(Path(__file__).resolve().parents[1] / "src")
CHILD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def adapter_files(store_dir: Path) -> list[str]:
    return sorted(p.name for p in (store_dir / "adapters").iterdir())


def learn(store: Store, name: str, value: float, text: str = "some text") -> Version:
    with store.begin_learn(timeout=5) as tx:
        did = tx.add_document(name, name.upper(), text)
        tx.add_self_edit(did, "implications", f"edit of {name}", [f"{name} s1", f"{name} s2"])
        tx.add_probes(did, [(f"q {name}?", f"a {name}")])
        tx.set_adapter({"lora.A": torch.full((2, 3), value), "lora.B": torch.arange(4.0) + value})
        return tx.commit(document_id=did, config={"lr": 1e-4}, metrics={"loss": value})


def run_child(code: str, *args: str, env: dict | None = None, **kw):
    full_env = {**os.environ, **CHILD_ENV, **(env or {})}
    script = f"import sys; sys.path.insert(0, {SRC!r})\n" + code
    return subprocess.Popen([sys.executable, "-c", script, *args], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "kb"


# -- open / create -------------------------------------------------------------------------
def test_create_open_reopen(store_dir: Path):
    store = Store.open(store_dir, create=True, base_model="tiny-llama")
    assert store.path == store_dir
    assert store.base_model == "tiny-llama"
    assert (store_dir / "seal-store.sqlite").is_file()
    assert (store_dir / "adapters").is_dir()
    assert store.current_version() is None
    assert store.history() == []
    assert store.documents() == []
    assert store.load_adapter() is None
    store.close()
    with sqlite3.connect(store_dir / "seal-store.sqlite") as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert meta["schema_version"] == "1"
    assert meta["base_model"] == "tiny-llama"
    assert meta["created_at"].endswith("+00:00")

    again = Store.open(store_dir)  # base_model not given: fine
    assert again.base_model == "tiny-llama"
    again.close()
    Store.open(store_dir, base_model="tiny-llama").close()
    Store.open(store_dir, create=True).close()  # create=True on an existing store just opens


def test_base_model_mismatch(store_dir: Path):
    Store.open(store_dir, create=True, base_model="model-a").close()
    with pytest.raises(StoreError) as err:
        Store.open(store_dir, base_model="model-b")
    assert "'model-a'" in str(err.value) and "'model-b'" in str(err.value)


def test_missing_store(store_dir: Path):
    with pytest.raises(StoreError) as err:
        Store.open(store_dir)
    assert str(err.value) == f"no seal store at {store_dir} (run `seal learn` first)"
    assert not store_dir.exists()


@pytest.mark.parametrize("create", [True, False])
def test_non_store_dir_is_refused_and_untouched(tmp_path: Path, create: bool):
    d = tmp_path / "home"
    (d / "sub").mkdir(parents=True)
    (d / "notes.txt").write_text("precious")
    (d / "sub" / "x.bin").write_bytes(b"\x00\x01")
    before = snapshot(d)
    with pytest.raises(NotAStoreError):
        Store.open(d, create=create, base_model="m")
    assert snapshot(d) == before
    assert sorted(os.listdir(d)) == ["notes.txt", "sub"]


def test_create_in_existing_empty_dir(tmp_path: Path):
    d = tmp_path / "empty"
    d.mkdir()
    Store.open(d, create=True).close()
    assert sorted(os.listdir(d))[:2] == ["adapters", "seal-store.lock"]


# -- learning ------------------------------------------------------------------------------
def test_learn_commits_version_with_everything(store_dir: Path):
    store = Store.open(store_dir, create=True, base_model="m")
    v1 = learn(store, "doc-a", 1.0, text="alpha text")
    assert v1 == Version(id=1, parent=None, kind="learn", document_id=1,
                         adapter_file="adapters/v00001.safetensors", created_at=v1.created_at,
                         config={"lr": 1e-4}, metrics={"loss": 1.0})
    assert store.current_version() == v1
    [doc] = store.documents()
    assert (doc.id, doc.name, doc.title, doc.text, doc.removed) == (1, "doc-a", "DOC-A",
                                                                    "alpha text", False)
    assert doc.sha256 == hashlib.sha256(b"alpha text").hexdigest()
    assert store.self_edits() == [{"document_id": 1, "format": "implications",
                                   "text": "edit of doc-a",
                                   "sequences": ["doc-a s1", "doc-a s2"]}]
    assert store.probes() == [{"document_id": 1, "question": "q doc-a?", "answer": "a doc-a"}]
    tensors = store.load_adapter()
    assert sorted(tensors) == ["lora.A", "lora.B"]
    assert torch.equal(tensors["lora.A"], torch.full((2, 3), 1.0))
    assert torch.equal(tensors["lora.B"], torch.tensor([1.0, 2.0, 3.0, 4.0]))

    v2 = learn(store, "doc-b", 2.0)
    assert (v2.id, v2.parent, v2.document_id) == (2, 1, 2)
    assert [v.id for v in store.history()] == [1, 2]
    assert torch.equal(store.load_adapter(1)["lora.A"], torch.full((2, 3), 1.0))
    assert torch.equal(store.load_adapter()["lora.A"], torch.full((2, 3), 2.0))
    assert adapter_files(store_dir) == ["v00001.safetensors", "v00002.safetensors"]
    assert [e["document_id"] for e in store.self_edits([2])] == [2]
    assert store.self_edits([]) == []
    store.close()

    reopened = Store.open(store_dir)
    assert reopened.current_version() == v2
    assert [d.name for d in reopened.documents()] == ["doc-a", "doc-b"]
    reopened.close()


def test_relearning_identical_document_gets_new_id(store_dir: Path):
    store = Store.open(store_dir, create=True)
    learn(store, "doc-a", 1.0, text="same")
    learn(store, "doc-a", 1.5, text="same")
    docs = store.documents()
    assert [d.id for d in docs] == [1, 2]
    assert docs[0].sha256 == docs[1].sha256
    assert store.find_document("doc-a").id == 2
    assert store.find_document(1).id == 1
    assert store.find_document("1").id == 1
    store.close()


def test_staged_ids_and_commit_without_adapter(store_dir: Path):
    store = Store.open(store_dir, create=True)
    learn(store, "doc-a", 1.0)
    with store.begin_learn() as tx:
        assert tx.base_version.id == 1
        assert tx.add_document("x", "X", "x") == 2
        assert tx.add_document("y", "Y", "y") == 3
        with pytest.raises(StoreError):
            tx.add_self_edit(99, "f", "t", [])
        v = tx.commit(kind="merge")
        with pytest.raises(StoreError):
            tx.add_document("z", "Z", "z")
    assert (v.id, v.parent, v.kind, v.adapter_file, v.config, v.metrics) == \
        (2, 1, "merge", None, {}, {})
    assert store.load_adapter() is None
    assert store.load_adapter(1) is not None
    store.close()


def test_exception_inside_learn_leaves_store_unchanged(store_dir: Path):
    store = Store.open(store_dir, create=True)
    learn(store, "doc-a", 1.0)
    with pytest.raises(RuntimeError, match="boom"):
        with store.begin_learn() as tx:
            did = tx.add_document("doc-b", "B", "b")
            tx.add_self_edit(did, "f", "t", ["s"])
            tx.set_adapter({"w": torch.ones(3)})
            assert len(adapter_files(store_dir)) == 2  # staged temp file exists meanwhile
            raise RuntimeError("boom")
    with store.begin_learn() as tx:  # leaving without commit() discards too
        tx.add_document("doc-c", "C", "c")
        tx.set_adapter({"w": torch.ones(3)})
    assert store.current_version().id == 1
    assert [v.id for v in store.history()] == [1]
    assert [d.name for d in store.documents(include_removed=True)] == ["doc-a"]
    assert [e["document_id"] for e in store.self_edits()] == [1]
    assert adapter_files(store_dir) == ["v00001.safetensors"]
    with store.begin_learn(timeout=0.5) as tx:  # the lock was released
        assert tx.base_version.id == 1
    store.close()


CHILD_CRASH = """
import os, torch
from seal.store import Store
store = Store.open(sys.argv[1])
tx = store.begin_learn()
did = tx.add_document("doc-b", "B", "text b")
tx.add_self_edit(did, "implications", "edit b", ["b1"])
tx.add_probes(did, [("qb", "ab")])
tx.set_adapter({"lora.A": torch.full((2, 3), 9.0)})
if sys.argv[2] == "exit_before_commit":
    os._exit(1)
tx.commit(document_id=did)
os._exit(3)
"""


@pytest.mark.parametrize("point,rc,leftover", [
    ("exit_before_commit", 1, ".tmp"),
    ("before_rename", -9, ".tmp"),
    ("after_rename", -9, "v00002.safetensors"),
])
def test_kill_mid_learn_leaves_previous_version(store_dir: Path, point, rc, leftover):
    store = Store.open(store_dir, create=True)
    learn(store, "doc-a", 1.0)
    store.close()
    env = {"SEAL_STORE_CRASH_POINT": point}
    proc = run_child(CHILD_CRASH, str(store_dir), point, env=env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == rc, err
    files = adapter_files(store_dir)
    assert len(files) == 2 and files[1 if files[0].startswith("v") else 0].endswith(leftover)

    store = Store.open(store_dir)  # cleans the orphan
    assert adapter_files(store_dir) == ["v00001.safetensors"]
    assert store.current_version().id == 1
    assert [v.id for v in store.history()] == [1]
    assert [d.name for d in store.documents(include_removed=True)] == ["doc-a"]
    assert [e["document_id"] for e in store.self_edits()] == [1]
    assert [p["document_id"] for p in store.probes()] == [1]
    assert torch.equal(store.load_adapter()["lora.A"], torch.full((2, 3), 1.0))
    v2 = learn(store, "doc-c", 3.0)  # and the store keeps working
    assert (v2.id, v2.parent, v2.document_id) == (2, 1, 2)
    assert torch.equal(store.load_adapter()["lora.A"], torch.full((2, 3), 3.0))
    store.close()


CHILD_CONCURRENT = """
import os, time, torch
from seal.store import Store
store_dir, log, ready, go = sys.argv[1:5]
store = Store.open(store_dir)
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.01)
pid = os.getpid()
with store.begin_learn(timeout=60) as tx:
    with open(log, "a") as f:
        f.write(f"start {pid} {time.time()!r}\\n")
    did = tx.add_document(f"doc-{pid}", "t", "text")
    tx.set_adapter({"w": torch.full((2,), float(pid))})
    time.sleep(0.5)
    v = tx.commit(document_id=did)
    with open(log, "a") as f:
        f.write(f"end {pid} {time.time()!r}\\n")
store.close()
"""


def test_concurrent_learns_are_serialised(store_dir: Path, tmp_path: Path):
    Store.open(store_dir, create=True).close()
    log, go = tmp_path / "events.log", tmp_path / "go"
    ready = [tmp_path / f"ready{i}" for i in range(2)]
    procs = [run_child(CHILD_CONCURRENT, str(store_dir), str(log), str(r), str(go))
             for r in ready]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.02)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err

    events = [line.split() for line in log.read_text().splitlines()]
    assert [e[0] for e in events] == ["start", "end", "start", "end"]
    assert events[0][1] == events[1][1] and events[2][1] == events[3][1] != events[0][1]
    assert float(events[1][2]) <= float(events[2][2])  # first ended before second started
    first, second = int(events[0][1]), int(events[2][1])

    store = Store.open(store_dir)
    h = store.history()
    assert [(v.id, v.parent) for v in h] == [(1, None), (2, 1)]
    names = {d.id: d.name for d in store.documents()}
    assert [names[v.document_id] for v in h] == [f"doc-{first}", f"doc-{second}"]
    assert torch.equal(store.load_adapter(1)["w"], torch.full((2,), float(first)))
    assert torch.equal(store.load_adapter(2)["w"], torch.full((2,), float(second)))
    store.close()


def test_lock_timeout_and_single_transaction(store_dir: Path):
    a = Store.open(store_dir, create=True)
    b = Store.open(store_dir)
    with a.begin_learn():
        with pytest.raises(StoreError, match="busy"):
            b.begin_learn(timeout=0.2)
        with pytest.raises(StoreError, match="busy"):
            b.rollback(1, timeout=0.1)
        with pytest.raises(StoreError, match="transaction is open"):
            a.begin_learn()
    with b.begin_learn(timeout=0.5):
        pass
    a.close()
    b.close()


# -- rollback / corruption / removal / evaluations ----------------------------------------
def test_rollback_creates_new_version_with_target_adapter(store_dir: Path):
    store = Store.open(store_dir, create=True)
    learn(store, "doc-a", 1.0)
    learn(store, "doc-b", 2.0)
    v3 = store.rollback(1)
    assert (v3.id, v3.parent, v3.kind, v3.document_id, v3.adapter_file, v3.config) == \
        (3, 2, "rollback", None, "adapters/v00001.safetensors", {"target": 1})
    assert store.current_version() == v3
    assert torch.equal(store.load_adapter()["lora.A"], torch.full((2, 3), 1.0))
    assert torch.equal(store.load_adapter(2)["lora.A"], torch.full((2, 3), 2.0))
    assert adapter_files(store_dir) == ["v00001.safetensors", "v00002.safetensors"]
    with pytest.raises(StoreError, match="no version 7"):
        store.rollback(7)
    v4 = learn(store, "doc-c", 4.0)
    assert (v4.id, v4.parent, v4.adapter_file) == (4, 3, "adapters/v00004.safetensors")
    store.close()
    store = Store.open(store_dir)  # orphan cleanup keeps files referenced by any version
    assert adapter_files(store_dir) == ["v00001.safetensors", "v00002.safetensors",
                                        "v00004.safetensors"]
    store.close()


def test_corrupted_adapter_detected(store_dir: Path):
    store = Store.open(store_dir, create=True)
    learn(store, "doc-a", 1.0)
    path = store_dir / "adapters" / "v00001.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    data[-5] ^= 0x55
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptAdapterError, match="v00001.safetensors") as err:
        store.load_adapter()
    assert "sha256" in str(err.value)
    with pytest.raises(CorruptAdapterError, match="v00001.safetensors"):
        store.rollback(1)
    path.unlink()
    with pytest.raises(CorruptAdapterError, match="v00001.safetensors"):
        store.load_adapter(1)
    store.close()


def test_remove_document(store_dir: Path):
    store = Store.open(store_dir, create=True)
    learn(store, "doc-a", 1.0)
    learn(store, "doc-b", 2.0)
    removed = store.remove_document("doc-a")
    assert (removed.id, removed.name, removed.removed) == (1, "doc-a", True)
    assert [d.name for d in store.documents()] == ["doc-b"]
    assert [(d.name, d.removed) for d in store.documents(include_removed=True)] == \
        [("doc-a", True), ("doc-b", False)]
    assert [e["document_id"] for e in store.self_edits()] == [2]
    assert [p["document_id"] for p in store.probes()] == [2]
    assert [e["document_id"] for e in store.self_edits([1])] == [1]
    assert store.find_document("doc-a").removed is True
    with pytest.raises(StoreError, match="already removed"):
        store.remove_document(1)
    with pytest.raises(StoreError, match="no document 'nope'"):
        store.find_document("nope")
    store.close()


def test_staged_remove_is_atomic_with_forget(store_dir: Path):
    store = Store.open(store_dir, create=True)
    learn(store, "doc-a", 1.0)
    learn(store, "doc-b", 2.0)
    with store.begin_learn() as tx:  # aborted forget: nothing changes
        tx.remove_document("doc-a")
    assert [d.name for d in store.documents()] == ["doc-a", "doc-b"]
    with store.begin_learn() as tx:
        tx.remove_document("doc-a")
        with pytest.raises(StoreError):
            store.remove_document("doc-b")  # must go through the open transaction
        tx.set_adapter({"lora.A": torch.zeros(1)})
        v3 = tx.commit(kind="forget", document_id=1)
    assert (v3.id, v3.parent, v3.kind, v3.document_id) == (3, 2, "forget", 1)
    assert [d.name for d in store.documents()] == ["doc-b"]
    store.close()


def test_evaluations(store_dir: Path):
    store = Store.open(store_dir, create=True)
    learn(store, "doc-a", 1.0)
    learn(store, "doc-b", 2.0)
    store.record_evaluation(1, 1, 0.5, {"n": 2})
    store.record_evaluation(2, None, 0.75, {"n": 4})
    evs = store.evaluations()
    assert [(e["id"], e["version"], e["document_id"], e["accuracy"], e["details"])
            for e in evs] == [(1, 1, 1, 0.5, {"n": 2}), (2, 2, None, 0.75, {"n": 4})]
    assert [e["id"] for e in store.evaluations(2)] == [2]
    with pytest.raises(StoreError, match="no version 9"):
        store.record_evaluation(9, None, 1.0, {})
    store.close()


def test_version_lookup(store_dir: Path):
    store = Store.open(store_dir, create=True)
    v1 = learn(store, "doc-a", 1.0)
    assert store.version(1) == v1
    with pytest.raises(StoreError, match="no version 2"):
        store.version(2)
    store.close()
