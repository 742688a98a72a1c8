"""Persistent knowledge store behind ``seal learn`` / ``seal ask``.

Layout of a store directory::

    STORE/seal-store.sqlite            marker that STORE is a seal store + all metadata
    STORE/seal-store.lock              flock(2) target that serialises writers
    STORE/adapters/v00001.safetensors  adapter weights of version 1 (dict name -> tensor), ...

SQLite tables: ``meta(key, value)`` (``schema_version``, ``base_model``, ``created_at``,
``current_version``), ``documents``, ``self_edits``, ``probes``, ``evaluations`` and ``versions``
(``id`` is the version number, ``parent`` the version current when it was made, ``adapter_file``
the store-relative path of its weights or NULL for "plain base model", ``adapter_sha256``).

Guarantees:

* History is append-only: rollback and forget create new versions; an adapter file referenced by
  a version is never rewritten or deleted, so every version stays loadable.
* Writers (:class:`LearnTransaction`, :meth:`Store.rollback`, :meth:`Store.remove_document`) hold
  an exclusive ``flock`` on ``seal-store.lock``: concurrent learns are serialised, never
  interleaved. Readers take no lock and are never blocked: SQLite runs in WAL mode
  (``synchronous=FULL``), so they keep seeing the last committed version during a commit.
* A learn is atomic. Rows are staged in memory (staged document ids are ``MAX(id)+1, ...``,
  exact because documents are only inserted under the lock), the adapter in an fsynced
  ``adapters/*.tmp`` file. :meth:`LearnTransaction.commit` does: BEGIN IMMEDIATE; insert the rows;
  ``os.replace`` the temp file to ``adapters/vNNNNN.safetensors``; fsync the directory; COMMIT.
  A kill before the rename leaves a ``*.tmp`` file; a kill between rename and COMMIT leaves a
  ``vNNNNN`` file no version references (SQLite drops the uncommitted rows). Either way the store
  stays at the previous version, and the next :meth:`Store.open` that can take the lock deletes
  those orphans.
* Adapter sha256 checksums are recorded and verified by :meth:`Store.load_adapter`.
* :meth:`Store.open` never writes into a directory that is not a store.

Testing hook: ``SEAL_STORE_CRASH_POINT`` makes :meth:`LearnTransaction.commit` SIGKILL its own process at a
chosen point (see :mod:`seal.store_tx`).

Modules: this one holds :class:`Store` (open, read, rollback, remove a document) and :func:`discard_store`;
:mod:`seal.store_tx` holds :class:`LearnTransaction`; :mod:`seal.store_format` the layout, schema, row types
and errors. Everything is importable from here.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load as _st_load

from seal.store_format import (
    _ADAPTER_RE,
    _DCOLS,
    _SCHEMA,
    _VCOLS,
    ADAPTER_DIR,
    CRASH_ENV,
    DB_NAME,
    LOCK_NAME,
    SCHEMA_VERSION,
    CorruptAdapterError,
    Document,
    NotAStoreError,
    StoreError,
    Version,
    _json,
    _now,
)
from seal.store_tx import LearnTransaction


def _own_entry(p: Path) -> bool:
    """What a half-created store may hold (a concurrent creator got there first)."""
    return p.name == LOCK_NAME or p.name.startswith(DB_NAME) or (
        p.name == ADAPTER_DIR and p.is_dir() and not any(p.iterdir()))


def _doc_filter(document_ids: list[int] | None, column: str) -> tuple[str, list]:
    if document_ids is None:
        return " WHERE d.removed = 0", []
    ids = [int(i) for i in document_ids]
    return f" WHERE {column} IN ({','.join('?' * len(ids))})", ids


class Store:
    """An open seal store: create it with :meth:`Store.open`; close with :meth:`close` or ``with``."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path, self.base_model = path, None
        self._conn, self._lock_fd, self._tx = conn, None, None

    @classmethod
    def open(cls, path, *, create: bool = False, base_model: str | None = None) -> Store:
        path = Path(path).expanduser().absolute()
        db, missing = path / DB_NAME, f"no seal store at {path} (run `seal learn` first)"
        if not db.is_file():
            if path.exists() and not path.is_dir():
                raise NotAStoreError(f"{path} is a file, not a seal store directory")
            if path.is_dir() and not all(_own_entry(p) for p in path.iterdir()):
                raise NotAStoreError(f"{path} is not empty and is not a seal store (no {DB_NAME}); "
                                     "refusing to use it")
            if not create:
                raise StoreError(missing)
            (path / ADAPTER_DIR).mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(db, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=FULL")
            store = cls(path, conn)
            if "schema_version" not in store._meta():
                if not create:
                    raise StoreError(missing)
                store._initialize(base_model)
            meta = store._meta()
            if int(meta["schema_version"]) > SCHEMA_VERSION:
                raise StoreError(f"store {path} has schema version {meta['schema_version']}, newer "
                                 f"than this seal supports ({SCHEMA_VERSION}); upgrade seal")
            if base_model is not None and meta.get("base_model") is None:
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('base_model', ?)", (base_model,))
                meta = store._meta()
            store.base_model = meta.get("base_model")
            if base_model is not None and store.base_model != base_model:
                raise StoreError(f"store {path} was created for base model {store.base_model!r}, "
                                 f"not {base_model!r}")
            store._cleanup_orphans()
            return store
        except sqlite3.DatabaseError as e:
            conn.close()
            raise StoreError(f"{db} is not a readable seal store database ({e})") from e
        except BaseException:
            conn.close()
            raise

    # -- internals ------------------------------------------------------------------------------
    def _meta(self) -> dict[str, str]:
        try:
            return dict(self._conn.execute("SELECT key, value FROM meta"))
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return {}
            raise

    def _initialize(self, base_model: str | None) -> None:
        with self._writer(30, "create the store"):
            self._conn.execute("PRAGMA journal_mode=WAL")
            with self._sql_tx():
                for stmt in _SCHEMA.split(";"):
                    self._conn.execute(stmt)
                rows = [("schema_version", str(SCHEMA_VERSION)), ("created_at", _now())]
                rows += [("base_model", base_model)] if base_model is not None else []
                self._conn.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", rows)

    @contextlib.contextmanager
    def _sql_tx(self):
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise

    def _try_lock(self, timeout: float) -> bool:
        fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._lock_fd = fd
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.05)

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)  # closing the descriptor drops the flock

    def _acquire(self, timeout: float, what: str) -> None:
        if self._tx is not None:
            raise StoreError(f"cannot {what} while a learn transaction is open on this store")
        try:
            ok = self._try_lock(timeout)
        except OSError as e:
            raise StoreError(f"cannot lock store {self.path} ({e.strerror or e})") from e
        if not ok:
            raise StoreError(f"store {self.path} is busy: another seal process holds {LOCK_NAME} "
                             f"(gave up after {timeout:g}s)")

    @contextlib.contextmanager
    def _writer(self, timeout: float, what: str):
        self._acquire(timeout, what)
        try:
            yield
        finally:
            self._unlock()

    def _cleanup_orphans(self) -> None:
        adir = self.path / ADAPTER_DIR
        try:
            if not adir.is_dir() or not self._try_lock(0):
                return  # a writer is active: its staged files are not orphans
        except OSError:
            return  # read-only store: leave it alone
        try:
            refs = {r[0] for r in self._conn.execute("SELECT adapter_file FROM versions")}
            for p in adir.iterdir():
                if p.is_file() and (p.name.endswith(".tmp") or (
                        _ADAPTER_RE.fullmatch(p.name) and f"{ADAPTER_DIR}/{p.name}" not in refs)):
                    with contextlib.suppress(OSError):
                        p.unlink()
        finally:
            self._unlock()

    def _version(self, vid: int) -> Version | None:
        row = self._conn.execute(f"SELECT {_VCOLS} FROM versions WHERE id = ?", (vid,)).fetchone()
        return None if row is None else Version(*row[:6], json.loads(row[6]), json.loads(row[7]))

    def _adapter_row(self, version: int) -> tuple[str | None, str | None]:
        row = self._conn.execute("SELECT adapter_file, adapter_sha256 FROM versions WHERE id = ?",
                                 (version,)).fetchone()
        if row is None:
            raise StoreError(f"no version {version} in store {self.path}")
        return row

    def _insert_version(self, parent, kind, document_id, rel, sha, config, metrics) -> int:
        vid = self._conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM versions").fetchone()[0]
        rel = rel(vid) if callable(rel) else rel  # commit names the file after its version id
        self._conn.execute(
            "INSERT INTO versions(id, parent, kind, document_id, adapter_file, adapter_sha256, config_json, "
            "metrics_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (vid, parent, kind, document_id, rel, sha, _json(config), _json(metrics), _now()))
        self._conn.execute("INSERT INTO meta VALUES ('current_version', ?) "
                           "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(vid),))
        return vid

    def _read_adapter(self, rel: str, sha: str | None) -> dict[str, torch.Tensor]:
        p = self.path / rel
        try:
            data = p.read_bytes()
        except OSError as e:
            raise CorruptAdapterError(f"adapter file {p} cannot be read ({e.strerror or e}); "
                                      "the store is damaged") from e
        if hashlib.sha256(data).hexdigest() != sha:
            raise CorruptAdapterError(f"adapter file {p} is corrupt: its sha256 does not match the "
                                      "checksum recorded in the store")
        try:
            return _st_load(data)
        except Exception as e:
            raise CorruptAdapterError(f"adapter file {p} is not valid safetensors ({e})") from e

    # -- reading --------------------------------------------------------------------------------
    def current_version(self) -> Version | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'current_version'").fetchone()
        return None if row is None else self._version(int(row[0]))

    def version(self, vid: int) -> Version:
        """Version ``vid`` (StoreError if there is none)."""
        v = self._version(int(vid))
        if v is None:
            raise StoreError(f"no version {vid} in store {self.path}")
        return v

    def history(self) -> list[Version]:
        """All versions, oldest first."""
        return [self._version(r[0]) for r in self._conn.execute("SELECT id FROM versions ORDER BY id")]

    def documents(self, include_removed: bool = False) -> list[Document]:
        where = "" if include_removed else " WHERE removed = 0"
        rows = self._conn.execute(f"SELECT {_DCOLS} FROM documents{where} ORDER BY id")
        return [Document(*r[:6], bool(r[6])) for r in rows]

    def find_document(self, name_or_id: str | int) -> Document:
        """By name (the newest live document of that name, else the newest removed one), or by id."""
        q, row, key = f"SELECT {_DCOLS} FROM documents WHERE ", None, name_or_id
        if isinstance(key, str):
            row = self._conn.execute(q + "name = ? ORDER BY removed, id DESC", (key,)).fetchone()
            key = int(key) if row is None and key.strip().isdigit() else key
        if row is None and isinstance(key, int):
            row = self._conn.execute(q + "id = ?", (key,)).fetchone()
        if row is None:
            raise StoreError(f"no document {name_or_id!r} in store {self.path}")
        return Document(*row[:6], bool(row[6]))

    def load_adapter(self, version: int | None = None) -> dict[str, torch.Tensor] | None:
        """Adapter tensors of ``version`` (default: current); None means "plain base model"."""
        if version is None:
            if (cur := self.current_version()) is None:
                return None
            version = cur.id
        rel, sha = self._adapter_row(version)
        return None if rel is None else self._read_adapter(rel, sha)

    def self_edits(self, document_ids: list[int] | None = None) -> list[dict]:
        """Self-edits of the given documents (default: all documents not removed), oldest first."""
        where, args = _doc_filter(document_ids, "s.document_id")
        rows = self._conn.execute("SELECT s.document_id, s.format, s.text, s.sequences_json FROM self_edits s "
                                  "JOIN documents d ON d.id = s.document_id" + where + " ORDER BY s.id", args)
        return [{"document_id": d, "format": f, "text": t, "sequences": json.loads(s)} for d, f, t, s in rows]

    def probes(self, document_ids: list[int] | None = None) -> list[dict]:
        """Probe questions of the given documents (default: all documents not removed)."""
        where, args = _doc_filter(document_ids, "p.document_id")
        rows = self._conn.execute("SELECT p.document_id, p.question, p.answer FROM probes p "
                                  "JOIN documents d ON d.id = p.document_id" + where + " ORDER BY p.id", args)
        return [{"document_id": d, "question": q, "answer": a} for d, q, a in rows]

    def record_evaluation(self, version: int, document_id: int | None, accuracy: float, details: dict) -> None:
        self._adapter_row(version)  # raises for an unknown version
        try:
            self._conn.execute("INSERT INTO evaluations(version, document_id, accuracy, details_json, created_at) "
                               "VALUES (?, ?, ?, ?, ?)", (version, document_id, float(accuracy), _json(details), _now()))
        except sqlite3.IntegrityError as e:
            raise StoreError(f"no document {document_id} in store {self.path}") from e

    def evaluations(self, version: int | None = None) -> list[dict]:
        where, args = ("", []) if version is None else (" WHERE version = ?", [version])
        rows = self._conn.execute("SELECT id, version, document_id, accuracy, details_json, created_at "
                                  f"FROM evaluations{where} ORDER BY id", args)
        return [{"id": i, "version": v, "document_id": d, "accuracy": a, "details": json.loads(j),
                 "created_at": c} for i, v, d, a, j, c in rows]

    # -- writing --------------------------------------------------------------------------------
    def begin_learn(self, timeout: float = 600) -> LearnTransaction:
        """Take the writer lock (waiting up to ``timeout`` s, then StoreError) and stage a new version."""
        self._acquire(timeout, "begin another learn")
        try:
            self._tx = LearnTransaction(self, self.current_version())
        except BaseException:
            self._unlock()
            raise
        return self._tx

    def rollback(self, version: int, *, timeout: float = 600) -> Version:
        """Make a new current version (kind 'rollback', parent = current) using ``version``'s adapter."""
        with self._writer(timeout, "roll back"):
            rel, sha = self._adapter_row(version)
            if rel is not None:
                self._read_adapter(rel, sha)  # refuse to roll back onto a damaged file
            cur = self.current_version()
            with self._sql_tx():
                vid = self._insert_version(cur and cur.id, "rollback", None, rel, sha, {"target": version}, {})
            return self._version(vid)

    def remove_document(self, name_or_id: str | int, *, timeout: float = 600) -> Document:
        """Mark a document removed now (:meth:`LearnTransaction.remove_document` stages it instead)."""
        with self._writer(timeout, "remove a document (use the transaction's remove_document)"):
            doc = self.find_document(name_or_id)
            if doc.removed:
                raise StoreError(f"document {doc.name!r} (id {doc.id}) is already removed")
            self._conn.execute("UPDATE documents SET removed = 1 WHERE id = ?", (doc.id,))
            return replace(doc, removed=True)

    @property
    def made_by(self) -> str | None:
        """The tool that created this store and may replace it whole (``seal demo`` marks its own)."""
        return self._meta().get("made_by")

    def mark_made_by(self, tool: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('made_by', ?)", (tool,))

    def close(self) -> None:
        if self._tx is not None:
            self._tx.abort()
        self._unlock()
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def discard_store(path: str | Path, made_by: str) -> None:
    """Delete the store at ``path`` only if ``made_by`` created it and it holds nothing but store files;
    anything else (a user's directory, another store, a file) raises :class:`NotAStoreError`, untouched."""
    path = Path(path).expanduser().absolute()
    if not path.exists():
        return
    refuse = f"{path} exists and is not a store made by {made_by}; choose another --store or remove it yourself"
    if not (path / DB_NAME).is_file():
        raise NotAStoreError(refuse)
    with Store.open(path) as st:
        if st.made_by != made_by:
            raise NotAStoreError(refuse)
    adapters = path / ADAPTER_DIR
    entries = list(path.iterdir()) + (list(adapters.iterdir()) if adapters.is_dir() else [])
    own = [p for p in entries if p == adapters or p.name in (LOCK_NAME, ADAPTER_DIR) or p.name.startswith(DB_NAME)
           or (p.parent == adapters and p.is_file() and (_ADAPTER_RE.fullmatch(p.name) or p.name.endswith(".tmp")))]
    if len(own) != len(entries) or any(p.is_symlink() for p in entries):
        raise NotAStoreError(f"{path} holds files that are not the store's; refusing to delete it")
    for p in sorted(own, key=lambda p: len(p.parts), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    path.rmdir()



__all__ = ["Store", "LearnTransaction", "discard_store", "StoreError", "NotAStoreError", "CorruptAdapterError",
           "Version", "Document", "SCHEMA_VERSION", "DB_NAME", "LOCK_NAME", "ADAPTER_DIR", "CRASH_ENV"]
