"""Grid validation, the text encoding and the prompt format of the ARC domain."""

import numpy as np
import pytest

from seal.domains.arc.grids import (
    decode_grid,
    encode_example,
    encode_grid,
    extract_grid,
    fits,
    format_completion,
    format_task_prompt,
    shape,
    to_grid,
    to_lists,
)
from seal.domains.arc.tasks import Example

G = ((0, 1, 2), (3, 4, 0))


def test_to_grid_accepts_lists_tuples_and_numpy():
    assert to_grid([[0, 1, 2], [3, 4, 0]]) == G
    assert to_grid(G) == G
    assert to_grid(np.array([[0, 1, 2], [3, 4, 0]])) == G
    assert to_grid([[np.int64(5)]]) == ((5,),)
    assert isinstance(to_grid([[1]])[0], tuple)
    assert to_lists(G) == [[0, 1, 2], [3, 4, 0]]
    assert shape(G) == (2, 3)


@pytest.mark.parametrize(
    "bad, message",
    [
        ([], "1..30 rows, got 0"),
        ([[]], "1..30 columns, got 0"),
        ([[1, 2], [3]], "ragged: row 0 has 2 cells but row 1 has 1"),
        ([[1, 10]], "cell (0, 1) must be in 0..9, got 10"),
        ([[1, -1]], "cell (0, 1) must be in 0..9, got -1"),
        ([[1.0]], "cell (0, 0) must be an int 0..9, got 1.0"),
        ([[True]], "cell (0, 0) must be an int 0..9, got True"),
        ([["1"]], "cell (0, 0) must be an int 0..9, got '1'"),
        ("01", "grid must be a list of rows, got str"),
        ([1, 2], "grid row 0 must be a list of ints, got int"),
        ([[0] * 31], "1..30 columns, got 31"),
        ([[0]] * 31, "1..30 rows, got 31"),
    ],
)
def test_to_grid_rejects_with_clear_message(bad, message):
    with pytest.raises(ValueError) as e:
        to_grid(bad)
    assert message in str(e.value)


def test_to_grid_limits_are_inclusive():
    assert shape(to_grid([[7] * 30] * 30)) == (30, 30)
    assert fits(((1,),))
    assert not fits(((1,) * 31,))


def test_encode_decode_roundtrip():
    assert encode_grid(G) == "012\n340"
    assert decode_grid("012\n340") == G
    assert decode_grid("  \n012 \r\n340\n\n ") == G
    assert decode_grid(encode_grid(((9,),))) == ((9,),)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "012\n34", "012\n\n340", "0a2\n340", "0 1 2\n3 4 0", "012\nOutput", "1" * 31, "١٢",
     None, "-12"],
)
def test_decode_grid_invalid_is_none(text):
    assert decode_grid(text) is None


def test_extract_grid_takes_first_block():
    assert extract_grid("012\n340\n\nInput:\n111") == G
    assert extract_grid("\n  012\n340\nblah") == G
    assert extract_grid("012\n34\n") is None
    assert extract_grid("Output:\n012") is None
    assert extract_grid("") is None


def test_prompt_and_completion_format():
    demos = [Example(((1, 0),), ((0, 1),)), (((2,),), ((3,),))]
    assert encode_example(((1, 0),), ((0, 1),)) == "Input:\n10\nOutput:\n01\n"
    prompt = format_task_prompt(demos, ((5, 5), (0, 5)))
    assert prompt == "Input:\n10\nOutput:\n01\n\nInput:\n2\nOutput:\n3\n\nInput:\n55\n05\nOutput:\n"
    assert format_task_prompt([], ((1,),)) == "Input:\n1\nOutput:\n"
    assert format_completion(G) == "012\n340\n"
    assert extract_grid(format_completion(G)) == G
