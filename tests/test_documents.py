"""Tests for seal.documents: every bad input is one DocumentError; titles; paragraph-aligned chunking."""

from __future__ import annotations

from pathlib import Path

import pytest

from seal.documents import CHUNK_CHARS, MAX_BYTES, DocumentError, read_document, read_text, split_passages
from seal.domains.knowledge import Passage


def write(tmp_path: Path, data: bytes, name: str = "doc.txt") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# --------------------------------------------------------------------------- bad input
def test_missing_path(tmp_path):
    with pytest.raises(DocumentError, match=r"^no such file: .*nope\.txt$"):
        read_document(tmp_path / "nope.txt")


def test_directory(tmp_path):
    with pytest.raises(DocumentError, match=r"^not a regular file: "):
        read_document(tmp_path)


def test_empty_file(tmp_path):
    p = write(tmp_path, b"")
    with pytest.raises(DocumentError, match=r"doc\.txt is empty$"):
        read_document(p)


def test_whitespace_only(tmp_path):
    p = write(tmp_path, b"  \n\t\n\r\n   \n")
    with pytest.raises(DocumentError, match=r"is empty$"):
        read_document(p)


def test_binary_nul_bytes(tmp_path):
    p = write(tmp_path, b"PK\x03\x04\x00\x00 some zip-like bytes\x00")
    with pytest.raises(DocumentError, match=r"looks binary \(it contains NUL bytes\)"):
        read_document(p)


def test_binary_control_characters_without_nul(tmp_path):
    p = write(tmp_path, bytes(range(1, 9)) * 20)
    with pytest.raises(DocumentError, match=r"looks binary \(160 control characters\)"):
        read_document(p)


def test_non_utf8(tmp_path):
    p = write(tmp_path, b"caf\xe9 au lait is a drink.\n")
    with pytest.raises(DocumentError, match=r"is not UTF-8 text \(invalid byte at offset 3\)") as exc:
        read_document(p)
    assert "iconv" in str(exc.value)


def test_too_large(tmp_path):
    p = write(tmp_path, b"a" * 101)
    with pytest.raises(DocumentError, match=r"too large \(101 bytes; the limit is 100\)"):
        read_document(p, max_bytes=100)
    assert read_text(write(tmp_path, b"a" * 100, "ok.txt"), max_bytes=100) == "a" * 100  # the limit itself is fine


def test_default_limit():
    assert MAX_BYTES == 256 * 1024 and CHUNK_CHARS == 1500


def test_errors_are_one_line(tmp_path):
    cases = [tmp_path / "missing.txt", tmp_path, write(tmp_path, b""), write(tmp_path, b"\x00", "b.bin"),
             write(tmp_path, b"\xff\xfe", "l.txt")]
    for path in cases:
        with pytest.raises(DocumentError) as exc:
            read_document(path)
        assert "\n" not in str(exc.value) and str(exc.value)


# --------------------------------------------------------------------------- accepted input
def test_utf8_bom_accepted(tmp_path):
    p = write(tmp_path, "\ufeffCafé notes\nThe café opened in 1901.\n".encode())
    assert read_text(p) == "Café notes\nThe café opened in 1901.\n"
    [passage] = read_document(p)
    assert passage == Passage(title="Café notes", context="The café opened in 1901.")


def test_crlf_normalised(tmp_path):
    p = write(tmp_path, b"Title line\r\nFirst fact here.\r\n\r\nSecond paragraph here.\r\n")
    assert read_text(p) == "Title line\nFirst fact here.\n\nSecond paragraph here.\n"
    [passage] = read_document(p)
    assert passage.title == "Title line"
    assert passage.context == "First fact here.\n\nSecond paragraph here."
    assert "\r" not in passage.context


def test_title_from_short_first_line(tmp_path):
    p = write(tmp_path, b"# The Verdant Guild\n\nThe guild was founded in 1847.\n", "notes.txt")
    [passage] = read_document(p)
    assert passage.title == "The Verdant Guild"
    assert passage.context == "The guild was founded in 1847."


def test_title_from_file_name_when_first_line_is_a_sentence(tmp_path):
    p = write(tmp_path, b"The guild was founded in 1847.\nIts emblem is a fern.\n", "verdant_guild-notes.txt")
    [passage] = read_document(p)
    assert passage.title == "verdant guild notes"
    assert passage.context == "The guild was founded in 1847. Its emblem is a fern."


def test_title_from_file_name_when_first_line_is_long(tmp_path):
    first = "A" + " very" * 20 + " long heading without a full stop"
    assert len(first) > 80
    p = write(tmp_path, f"{first}\nBody text.\n".encode(), "long_title.txt")
    [passage] = read_document(p)
    assert passage.title == "long title"
    assert passage.context == f"{first} Body text."


def test_title_from_file_name_for_a_one_line_file(tmp_path):
    [passage] = read_document(write(tmp_path, b"Short line\n", "one-liner.txt"))
    assert passage == Passage("one liner", "Short line")


def test_explicit_title_wins(tmp_path):
    [passage] = read_document(write(tmp_path, b"Heading\nBody.\n"), title="Mine")
    assert passage == Passage("Mine", "Heading Body.")


def test_title_only_document_keeps_its_text(tmp_path):
    [passage] = read_document(write(tmp_path, b"Heading\n\n   \n", "h.txt"))
    assert passage == Passage("h", "Heading")


# --------------------------------------------------------------------------- chunking
def _paragraphs(n: int) -> list[str]:
    return [" ".join(f"Paragraph {i} sentence {j} talks about item{i}x{j}." for j in range(6)) for i in range(n)]


def test_short_paragraphs_merge_into_one_chunk():
    text = "First para.\nstill first.\n\nSecond para.\n\n\n\nThird."
    [p] = split_passages(text, "T")
    assert p == Passage("T", "First para. still first.\n\nSecond para.\n\nThird.")


def test_long_text_is_split_paragraph_aligned_without_losing_text():
    paras = _paragraphs(30)
    text = "\n\n".join(paras)
    assert len(text) > 5 * 500
    passages = split_passages(text, "Doc", chunk_chars=500)
    assert len(passages) > 5
    assert all(p.title == "Doc" for p in passages)
    assert all(len(p.context) <= 500 for p in passages)
    # every paragraph (each < 500 chars) sits whole inside exactly one chunk
    assert all(len(para) < 500 for para in paras)
    for para in paras:
        assert sum(para in p.context.split("\n\n") for p in passages) == 1
    # nothing lost, nothing reordered
    assert " ".join(p.context for p in passages).split() == text.split()
    # chunks are as full as the budget allows: adding the next paragraph would overflow
    for a, b in zip(passages, passages[1:], strict=False):
        assert len(a.context) + 2 + len(b.context.split("\n\n")[0]) > 500


def test_long_paragraph_splits_between_sentences():
    sentences = [f"Sentence number {i} states fact {i * 7}." for i in range(60)]
    para = " ".join(sentences)
    passages = split_passages(para, "T", chunk_chars=300)
    assert all(len(p.context) <= 300 for p in passages)
    assert " ".join(p.context for p in passages).split() == para.split()
    for p in passages:  # every chunk starts and ends on a sentence boundary
        assert p.context.startswith("Sentence number ") and p.context.endswith(".")


def test_single_huge_sentence_is_hard_cut():
    sentence = "word " * 700 + "end"
    passages = split_passages(sentence, "T", chunk_chars=1000)
    assert [len(p.context) for p in passages][:3] == [1000, 1000, 1000]
    assert all(len(p.context) <= 1000 for p in passages)
    assert "".join("".join(p.context.split()) for p in passages) == "".join(sentence.split())


def test_hard_cut_keeps_order_after_a_short_sentence():
    para = "Short one. " + "x" * 3000
    passages = split_passages(para, "T", chunk_chars=1000)
    assert "".join(p.context.replace(" ", "") for p in passages) == para.replace(" ", "")


def test_read_document_chunks_with_title(tmp_path):
    body = "\n\n".join(_paragraphs(10))
    p = write(tmp_path, f"My Notes\n\n{body}\n".encode())
    passages = read_document(p, chunk_chars=400)
    assert len(passages) == 10  # each paragraph is ~330 chars: two never fit in 400
    assert all(x.title == "My Notes" for x in passages)
    assert [x.context for x in passages] == body.split("\n\n")
