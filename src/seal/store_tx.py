"""Staged learns: :class:`LearnTransaction`, the one way a new version with documents is written.

Made by :meth:`seal.store.Store.begin_learn`, which takes the writer lock; everything is staged in memory
(the adapter in an fsynced temp file) and published by :meth:`LearnTransaction.commit` as one SQLite
transaction plus one rename (crash safety: see :mod:`seal.store`)::

    with store.begin_learn() as tx:
        doc = tx.add_document("notes.txt", "Notes", text)
        tx.add_self_edit(doc, "implications", edit_text, sequences)
        tx.set_adapter(bank.state_dict(0))
        version = tx.commit(kind="learn", document_id=doc)

Testing hook: the environment variable ``SEAL_STORE_CRASH_POINT`` = ``before_rename`` or ``after_rename``
(after rename and directory fsync, before SQL COMMIT) makes :meth:`LearnTransaction.commit` SIGKILL its own
process there. It is read only in that path.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save as _st_save

from seal.store_format import ADAPTER_DIR, CRASH_ENV, Document, StoreError, Version, _now

if TYPE_CHECKING:
    from seal.store import Store


def _crash_if(point: str) -> None:
    if os.environ.get(CRASH_ENV) == point:  # test hook, see the module docstring
        os.kill(os.getpid(), signal.SIGKILL)



class LearnTransaction:
    """Staged changes for one new version (crash safety: see the module docstring).

    ``with store.begin_learn() as tx: ...; tx.commit(...)``. Leaving the block without ``commit()``
    (or by an exception) discards everything and releases the lock. A commit without
    :meth:`set_adapter` makes a version with no adapter (the plain base model).
    """

    def __init__(self, store: Store, base_version: Version | None):
        self._store, self.base_version = store, base_version
        self._docs: list[tuple] = []
        self._edits: list[tuple] = []
        self._probes: list[tuple] = []
        self._removed: list[int] = []
        self._tmp: Path | None = None
        self._sha: str | None = None
        self._state = "open"  # open -> committed -> ended, or open -> ended
        self._next_doc = store._conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM documents").fetchone()[0]

    def __enter__(self) -> LearnTransaction:
        return self

    def __exit__(self, *exc) -> None:
        self.abort()

    def _check(self, document_id: int | None = None) -> None:
        if self._state != "open":
            raise StoreError(f"this learn transaction is already {self._state}")
        if document_id is not None and not any(d[0] == document_id for d in self._docs) and \
                self._store._conn.execute("SELECT 1 FROM documents WHERE id = ?", (document_id,)).fetchone() is None:
            raise StoreError(f"no document {document_id} in store {self._store.path}")

    def _drop_tmp(self) -> None:
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def add_document(self, name: str, title: str, text: str) -> int:
        """Stage a document; returns the id it will have (re-adding identical text gets a new id)."""
        self._check()
        if not name:
            raise StoreError("a document needs a non-empty name")
        did, self._next_doc = self._next_doc, self._next_doc + 1
        self._docs.append((did, name, title or "", text, hashlib.sha256(text.encode()).hexdigest(), _now()))
        return did

    def add_self_edit(self, document_id: int, format: str, text: str, sequences: list[str]) -> None:
        self._check(document_id)
        self._edits.append((document_id, format, text, json.dumps([str(s) for s in sequences]), _now()))

    def add_probes(self, document_id: int, qa: list[tuple[str, str]]) -> None:
        self._check(document_id)
        self._probes.extend((document_id, str(q), str(a)) for q, a in qa)

    def remove_document(self, name_or_id: str | int) -> Document:
        """Stage marking an existing document removed (applied atomically by :meth:`commit`)."""
        self._check()
        doc = self._store.find_document(name_or_id)
        if doc.removed or doc.id in self._removed:
            raise StoreError(f"document {doc.name!r} (id {doc.id}) is already removed")
        self._removed.append(doc.id)
        return replace(doc, removed=True)

    def set_adapter(self, tensors: dict[str, torch.Tensor]) -> None:
        """Write the adapter to a fsynced temp file now, so that commit is only a rename + SQL."""
        self._check()
        if not isinstance(tensors, dict) or not all(
                isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()):
            raise StoreError("an adapter must be a dict of str -> torch.Tensor")
        data = _st_save({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()})
        adir = self._store.path / ADAPTER_DIR
        adir.mkdir(exist_ok=True)
        tmp = adir / f".staged-{os.getpid()}-{secrets.token_hex(6)}.safetensors.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._drop_tmp()
        self._tmp, self._sha = tmp, hashlib.sha256(data).hexdigest()

    def commit(self, kind: str = "learn", document_id: int | None = None, config: dict | None = None,
               metrics: dict | None = None) -> Version:
        """Publish everything staged as the new current version (one SQLite transaction + one rename)."""
        self._check(document_id)
        st, conn, final, vid = self._store, self._store._conn, None, None
        try:
            with st._sql_tx():
                conn.executemany("INSERT INTO documents(id, name, title, text, sha256, added_at) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", self._docs)
                conn.executemany("INSERT INTO self_edits(document_id, format, text, sequences_json, created_at) "
                                 "VALUES (?, ?, ?, ?, ?)", self._edits)
                conn.executemany("INSERT INTO probes(document_id, question, answer) VALUES (?, ?, ?)", self._probes)
                conn.executemany("UPDATE documents SET removed = 1 WHERE id = ?", [(i,) for i in self._removed])
                name = None if self._tmp is None else (lambda v: f"{ADAPTER_DIR}/v{v:05d}.safetensors")
                parent = self.base_version.id if self.base_version else None
                vid = st._insert_version(parent, kind, document_id, name, self._sha, config, metrics)
                if self._tmp is not None:
                    _crash_if("before_rename")
                    final = st.path / name(vid)
                    os.replace(self._tmp, final)
                    self._tmp = None
                    fd = os.open(final.parent, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                    _crash_if("after_rename")
        except BaseException:
            if final is not None and self._tmp is None and st._version(vid) is None:
                final.unlink(missing_ok=True)  # renamed but never referenced
            raise
        self._state = "committed"
        return st._version(vid)

    def abort(self) -> None:
        """Discard anything not committed and release the lock (idempotent; ``__exit__`` calls it)."""
        if self._state != "ended":
            self._drop_tmp()
            self._state = "ended"
            self._store._tx = None
            self._store._unlock()


__all__ = ["LearnTransaction"]
