"""What a seal store is on disk: directory layout, SQLite schema, row types and the store's errors.

Shared by :mod:`seal.store` (:class:`~seal.store.Store`, reading and small writes) and :mod:`seal.store_tx`
(:class:`~seal.store_tx.LearnTransaction`, staged learns); import these names from :mod:`seal.store`::

    from seal.store import Store, StoreError, Version, Document

Layout of a store directory::

    STORE/seal-store.sqlite            marker that STORE is a seal store + all metadata
    STORE/seal-store.lock              flock(2) target that serialises writers
    STORE/adapters/v00001.safetensors  adapter weights of version 1 (dict name -> tensor), ...

SQLite tables: ``meta(key, value)`` (``schema_version``, ``base_model``, ``created_at``,
``current_version``), ``documents``, ``self_edits``, ``probes``, ``evaluations`` and ``versions``
(``id`` is the version number, ``parent`` the version current when it was made, ``adapter_file``
the store-relative path of its weights or NULL for "plain base model", ``adapter_sha256``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

SCHEMA_VERSION = 1
DB_NAME, LOCK_NAME, ADAPTER_DIR = "seal-store.sqlite", "seal-store.lock", "adapters"
CRASH_ENV = "SEAL_STORE_CRASH_POINT"
_ADAPTER_RE = re.compile(r"v\d{5,}\.safetensors")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS documents(id INTEGER PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL,
  text TEXT NOT NULL, title TEXT NOT NULL DEFAULT '', added_at TEXT NOT NULL, removed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS self_edits(id INTEGER PRIMARY KEY, document_id INTEGER NOT NULL
  REFERENCES documents(id), format TEXT NOT NULL, text TEXT NOT NULL, sequences_json TEXT NOT NULL,
  created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions(id INTEGER PRIMARY KEY, parent INTEGER REFERENCES versions(id),
  kind TEXT NOT NULL, document_id INTEGER REFERENCES documents(id), adapter_file TEXT, adapter_sha256 TEXT,
  config_json TEXT NOT NULL DEFAULT '{}', metrics_json TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS probes(id INTEGER PRIMARY KEY, document_id INTEGER NOT NULL
  REFERENCES documents(id), question TEXT NOT NULL, answer TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations(id INTEGER PRIMARY KEY, version INTEGER NOT NULL
  REFERENCES versions(id), document_id INTEGER REFERENCES documents(id), accuracy REAL NOT NULL,
  details_json TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS self_edits_doc ON self_edits(document_id);
CREATE INDEX IF NOT EXISTS probes_doc ON probes(document_id)
"""
_VCOLS = "id, parent, kind, document_id, adapter_file, created_at, config_json, metrics_json"
_DCOLS = "id, name, title, text, sha256, added_at, removed"


class StoreError(Exception):
    """A store problem, with a one-line message meant for the user."""


class NotAStoreError(StoreError):
    """The directory exists, is not empty and is not a seal store."""


class CorruptAdapterError(StoreError):
    """An adapter file is missing, unreadable or fails its checksum."""


@dataclass(frozen=True)
class Version:
    id: int
    parent: int | None
    kind: str
    document_id: int | None
    adapter_file: str | None
    created_at: str
    config: dict
    metrics: dict


@dataclass(frozen=True)
class Document:
    id: int
    name: str
    title: str
    text: str
    sha256: str
    added_at: str
    removed: bool


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _json(obj: dict | None) -> str:
    return json.dumps(obj or {}, sort_keys=True, default=str)


__all__ = ["SCHEMA_VERSION", "DB_NAME", "LOCK_NAME", "ADAPTER_DIR", "CRASH_ENV", "StoreError", "NotAStoreError",
           "CorruptAdapterError", "Version", "Document"]
