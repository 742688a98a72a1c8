"""Atomic, crash-safe file writes (temp file in the same directory, fsync, rename) and JSONL logs.

Every file seal writes goes through here, so an interrupted run never leaves a half-written result::

    atomic_write_json(run_dir / "config.json", cfg.to_dict())
    append_jsonl(run_dir / "samples.jsonl", {"context": 3, "reward": 0.25})
    atomic_savefig(fig, run_dir / "rewards.png")
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def _atomic(path: Path, write: Callable[[str], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return _atomic(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return _atomic(Path(path), lambda tmp: Path(tmp).write_bytes(data))


def atomic_save_safetensors(tensors: dict, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    from safetensors.torch import save_file

    return _atomic(Path(path), lambda tmp: save_file(tensors, tmp, metadata=metadata))


class LogError(ValueError):
    """A JSONL log has a corrupt line that is not a torn last line; the message names the file and line."""


def atomic_savefig(fig, path: str | Path) -> Path:
    """Save a matplotlib figure atomically (the format follows the file's suffix, PNG by default)."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    return _atomic(Path(path), lambda tmp: fig.savefig(tmp, format=fmt))


def _repair_torn_tail(path: Path) -> None:
    """Before appending: a last line without its newline is a write a kill interrupted. A complete JSON record
    just gets its newline; a torn fragment is moved to ``<name>.torn`` (kept, not glued to the next record)."""
    with open(path, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        start = size
        while start > 0:  # find the start of the last line
            step = min(start, 65536)
            fh.seek(start - step)
            chunk = fh.read(step)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                start = start - step + cut + 1
                break
            start -= step
        fh.seek(start)
        tail = fh.read()
        try:
            json.loads(tail.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            with open(path.with_name(path.name + ".torn"), "ab") as torn:
                torn.write(tail + b"\n")
                torn.flush()
                os.fsync(torn.fileno())
            fh.truncate(start)
        else:
            fh.write(b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def append_jsonl(path: str | Path, record: dict[str, Any] | list[dict[str, Any]]) -> None:
    """Append one JSON line (or several, in one write: a kill leaves all or, torn, the last line cut) and
    fsync. A torn last line left by a kill is moved aside by the next append (``_repair_torn_tail``), never
    glued onto."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = record if isinstance(record, list) else [record]
    if not records:
        return
    text = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records)
    if path.exists():
        _repair_torn_tail(path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Read a JSONL log. A torn last line (a kill mid-write: no newline at the end of the file) is skipped;
    any other line that is not a JSON object raises :class:`LogError` naming the file and line number."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        for number, line in enumerate(fh, 1):
            torn_tail = not line.endswith("\n")  # only the file's last line can lack its newline
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                if torn_tail:
                    return
                raise LogError(f"{path}:{number}: corrupt log line ({exc.msg}); move the file aside or fix "
                               "that line") from None
            if not isinstance(record, dict):
                raise LogError(f"{path}:{number}: a log line must be a JSON object, not {type(record).__name__}")
            yield record
