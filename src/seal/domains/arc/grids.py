"""ARC grids as immutable tuples, and their plain-text encoding for a language model.

A grid is a rectangle of colours 0..9 with 1..30 rows and columns. Here it is a tuple of row tuples
(``Grid``), so it is hashable (votes can be counted in a dict) and cannot be mutated by accident.

Encoding (what the model reads and writes): one row per line, digits without separators::

    >>> encode_grid(((0, 1, 2), (3, 4, 0)))
    '012\\n340'

A training / prediction prompt lists the demonstrations and ends with the query input::

    Input:
    01
    10
    Output:
    10
    01

    Input:
    11
    00
    Output:

and the completion is the output grid followed by a newline (``format_completion``). Prompt and completion are
kept apart so a trainer can put the loss only on the completion ("train_using_output_tokens").
To read a model's answer use ``extract_grid`` (first block of digit lines, ignores what follows) or the strict
``decode_grid`` (the whole text must be one grid).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Grid = tuple[tuple[int, ...], ...]

MAX_SIDE = 30
NUM_COLOURS = 10


def to_grid(rows: Any) -> Grid:
    """Validate a list of lists (or tuples, or a 2-D numpy array) and return it as a ``Grid``.

    Raises ``ValueError`` saying what is wrong: not 2-D, empty, ragged, a side outside 1..30, or a cell that is not
    an integer in 0..9 (booleans and floats are refused, numpy integers are accepted).
    """
    if hasattr(rows, "tolist") and not isinstance(rows, (list, tuple)):
        rows = rows.tolist()  # numpy array
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence):
        raise ValueError(f"grid must be a list of rows, got {type(rows).__name__}")
    if not 1 <= len(rows) <= MAX_SIDE:
        raise ValueError(f"grid must have 1..{MAX_SIDE} rows, got {len(rows)}")
    out: list[tuple[int, ...]] = []
    width = None
    for r, row in enumerate(rows):
        if isinstance(row, (str, bytes)) or not isinstance(row, Sequence):
            raise ValueError(f"grid row {r} must be a list of ints, got {type(row).__name__}")
        if width is None:
            width = len(row)
            if not 1 <= width <= MAX_SIDE:
                raise ValueError(f"grid must have 1..{MAX_SIDE} columns, got {width}")
        elif len(row) != width:
            raise ValueError(f"grid is ragged: row 0 has {width} cells but row {r} has {len(row)}")
        cells = []
        for c, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, int) and not _is_numpy_int(v):
                raise ValueError(f"grid cell ({r}, {c}) must be an int 0..9, got {v!r}")
            if not 0 <= int(v) < NUM_COLOURS:
                raise ValueError(f"grid cell ({r}, {c}) must be in 0..9, got {int(v)}")
            cells.append(int(v))
        out.append(tuple(cells))
    return tuple(out)


def _is_numpy_int(v: Any) -> bool:
    return type(v).__module__ == "numpy" and hasattr(v, "dtype") and v.dtype.kind in "iu"


def shape(grid: Grid) -> tuple[int, int]:
    """(rows, columns) of a grid."""
    return len(grid), len(grid[0])


def fits(grid: Grid) -> bool:
    """True when a (possibly transformed) grid is within ARC's 30x30 limit and not empty."""
    return 1 <= len(grid) <= MAX_SIDE and 1 <= len(grid[0]) <= MAX_SIDE


def to_lists(grid: Grid) -> list[list[int]]:
    """A grid as a JSON-ready list of lists."""
    return [list(row) for row in grid]


def encode_grid(grid: Grid) -> str:
    """One row per line, digits without separators, no trailing newline: ``"012\\n340"``."""
    return "\n".join("".join(str(v) for v in row) for row in grid)


def decode_grid(text: str) -> Grid | None:
    """Parse a whole text as one grid (inverse of ``encode_grid``); ``None`` when it is not a valid grid.

    Surrounding whitespace and trailing spaces / ``\\r`` on lines are ignored; anything else (a ragged row, a
    non-digit, a blank line inside, more than 30 rows or columns) gives ``None``.
    """
    if not isinstance(text, str):
        return None
    lines = [line.strip() for line in text.strip().splitlines()]
    if not lines or not lines[0]:
        return None
    width = len(lines[0])
    if not all(len(line) == width and line.isascii() and line.isdigit() for line in lines):
        return None
    if len(lines) > MAX_SIDE or width > MAX_SIDE:
        return None
    return tuple(tuple(int(ch) for ch in line) for line in lines)


def extract_grid(text: str) -> Grid | None:
    """The grid at the start of a model's answer: the first run of digit-only lines, ignoring what follows.

    Leading whitespace is skipped; the run stops at the first blank or non-digit line. ``None`` when the text
    does not start with a digit line or the run is ragged / too large.
    """
    if not isinstance(text, str):
        return None
    block: list[str] = []
    for line in text.lstrip().splitlines():
        line = line.strip()
        if not (line and line.isascii() and line.isdigit()):
            break
        block.append(line)
    return decode_grid("\n".join(block)) if block else None


def encode_example(input: Grid, output: Grid) -> str:
    """One demonstration: ``"Input:\\n<grid>\\nOutput:\\n<grid>\\n"``."""
    return f"Input:\n{encode_grid(input)}\nOutput:\n{encode_grid(output)}\n"


def format_task_prompt(demos: Iterable[tuple[Grid, Grid]], test_input: Grid) -> str:
    """The prompt: each demonstration followed by a blank line, then the query input and ``"Output:\\n"``.

    ``demos`` are ``(input, output)`` pairs (an ``Example`` unpacks as one). The answer follows directly, see
    ``format_completion``.
    """
    parts = [encode_example(inp, out) + "\n" for inp, out in demos]
    parts.append(f"Input:\n{encode_grid(test_input)}\nOutput:\n")
    return "".join(parts)


def format_completion(output: Grid) -> str:
    """The completion a model is trained to write after ``format_task_prompt``: the grid and a newline.

    A trainer usually appends the tokenizer's end-of-sequence token after it.
    """
    return encode_grid(output) + "\n"
