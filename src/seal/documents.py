"""Read a user's document safely and cut it into passages the inner loop can learn.

Bad input gets one clear error (``DocumentError``) before anything is written: a missing path, a directory,
an empty or whitespace-only file, a binary file, text that is not UTF-8, or a file over ``max_bytes``. Long
documents are split at paragraph (then sentence) boundaries into passages of at most ``chunk_chars``::

    passages = read_document("notes.txt")          # -> list[Passage], title from the first line or file name
"""

from __future__ import annotations

import re
from pathlib import Path

from seal.domains.knowledge import Passage

MAX_BYTES = 256 * 1024
"""Default limit of one ``seal learn`` (about 170 passages, hours on a CPU); raise it with --max-bytes."""
CHUNK_CHARS = 1500


class DocumentError(ValueError):
    """The document cannot be learned; the message says why in one line."""


def read_text(path: str | Path, max_bytes: int = MAX_BYTES) -> str:
    path = Path(path)
    if not path.exists():
        raise DocumentError(f"no such file: {path}")
    if not path.is_file():
        raise DocumentError(f"not a regular file: {path}")
    size = path.stat().st_size
    if size > max_bytes:
        raise DocumentError(f"{path} is too large ({size:,} bytes; the limit is {max_bytes:,}): split it or "
                            "raise --max-bytes")
    data = path.read_bytes()
    if b"\x00" in data:  # anywhere, not only near the start: a NUL must never reach a passage
        raise DocumentError(f"{path} looks binary (it contains NUL bytes); give a UTF-8 text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{path} is not UTF-8 text (invalid byte at offset {exc.start}); convert it, e.g. "
                            "`iconv -f latin1 -t utf-8`") from None
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t\f")
    if controls > max(8, len(text) // 100):
        raise DocumentError(f"{path} looks binary ({controls} control characters)")
    if not text.strip():
        raise DocumentError(f"{path} is empty")
    return text.replace("\r\n", "\n")


def split_passages(text: str, title: str, chunk_chars: int = CHUNK_CHARS) -> list[Passage]:
    """Paragraph-aligned chunks of at most ``chunk_chars`` (long paragraphs split between sentences)."""
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", text.strip()):
        para = " ".join(para.split())
        if not para:
            continue
        if len(para) <= chunk_chars:
            pieces.append(para)
            continue
        sentence_buf = ""
        for sent in re.split(r"(?<=[.!?])\s+", para):
            if len(sent) > chunk_chars and sentence_buf:  # keep the order: flush before a hard cut
                pieces.append(sentence_buf)
                sentence_buf = ""
            while len(sent) > chunk_chars:  # a single enormous "sentence": hard cut
                pieces.append(sent[:chunk_chars])
                sent = sent[chunk_chars:].lstrip()  # a cut before a space must not start a piece with it
            if sentence_buf and len(sentence_buf) + 1 + len(sent) > chunk_chars:
                pieces.append(sentence_buf)
                sentence_buf = ""
            sentence_buf = f"{sentence_buf} {sent}".strip()
        if sentence_buf:
            pieces.append(sentence_buf)
    chunks: list[str] = []
    for piece in pieces:  # merge short paragraphs up to the budget
        if chunks and len(chunks[-1]) + 2 + len(piece) <= chunk_chars:
            chunks[-1] = f"{chunks[-1]}\n\n{piece}"
        else:
            chunks.append(piece)
    return [Passage(title=title, context=c) for c in chunks]


def read_document(path: str | Path, max_bytes: int = MAX_BYTES, chunk_chars: int = CHUNK_CHARS,
                  title: str | None = None) -> list[Passage]:
    """Passages of a text file. The title is ``title``, else a short first line, else the file name."""
    text = read_text(path, max_bytes)
    lines = text.strip().splitlines()
    first = lines[0].strip().lstrip("#").strip()
    if title is None:
        if len(lines) > 1 and 0 < len(first) <= 80 and not first.endswith("."):
            title, text = first, "\n".join(lines[1:])
        else:
            title = Path(path).stem.replace("_", " ").replace("-", " ")
    passages = split_passages(text, title, chunk_chars)
    if not passages:
        raise DocumentError(f"{path} has no text besides its title")
    return passages
