"""Augmented voting and pass@2."""

import pytest

from seal.domains.arc.augment import IDENTITY, REGISTRY, get_transform, transforms_for
from seal.domains.arc.grids import format_completion
from seal.domains.arc.tasks import ArcTask, Example
from seal.domains.arc.voting import augmented_queries, invert_answer, is_solved, vote

A, B, C, D = ((1,),), ((2,),), ((3, 3),), ((4,), (4,))


def test_vote_counts_and_ties():
    cands = [(B, "rot90"), (A, "identity"), (A, "flip_h"), (None, "tile_2x1"), (C, "x"), (C, "y"), (B, "z")]
    assert vote(cands) == [B, A]  # B, A, C all have 2 votes: first appearance wins
    assert vote(cands, attempts=3) == [B, A, C]
    assert vote(cands + [(C, "w")]) == [C, B]
    assert vote(cands + [(C, "w")], attempts=1) == [C]
    assert vote([(None, "identity")]) == []
    assert vote([]) == []
    assert vote([([[1]], "identity"), (A, "rot90")], attempts=1) == [A]  # lists count as the same grid
    with pytest.raises(ValueError):
        vote(cands, attempts=0)


TASK = ArcTask("v", (Example(((1, 2),), ((2, 1),)),), (((3, 4),), ((5, 6, 7),)), (((4, 3),), ((7, 6, 5),)))


def test_is_solved_pass_at_2():
    right0, right1 = TASK.test_outputs
    assert is_solved(TASK, [[right0], [right1]])
    assert is_solved(TASK, [[A, right0], [right1, B]])
    assert not is_solved(TASK, [[A, B, right0], [right1]])  # third attempt does not count
    assert not is_solved(TASK, [[right0], []])  # every test output must be right
    assert not is_solved(TASK, [[None, A], [right1]])
    assert is_solved(TASK, [[[[4, 3]]], [right1]])  # list grids are accepted
    with pytest.raises(ValueError, match="2 test inputs but 1 attempt lists"):
        is_solved(TASK, [[right0]])
    with pytest.raises(ValueError, match="no test outputs"):
        is_solved(ArcTask("n", TASK.train, TASK.test_inputs), [[right0], [right1]])


def test_augmented_queries_and_inversion_pipeline():
    transforms = [IDENTITY, *transforms_for({"basic"}), REGISTRY["tile_2x2"]]
    queries = augmented_queries(TASK, transforms)
    assert len(queries) == 2 * 15
    assert queries[0].prompt == "Input:\n12\nOutput:\n21\n\nInput:\n34\nOutput:\n"
    assert (queries[1].test_index, queries[1].transform) == (1, "identity")
    # a perfect model answers each augmented query with the augmented solution
    per_test = [[], []]
    for q in queries:
        answer = format_completion(get_transform(q.transform).apply(TASK.test_outputs[q.test_index]))
        per_test[q.test_index].append((invert_answer(answer + "\nInput:\n", q.transform), q.transform))
    assert all(g == TASK.test_outputs[i] for i, c in enumerate(per_test) for g, _ in c)
    assert is_solved(TASK, [vote(c) for c in per_test])
    # a wrong or garbled answer is dropped or outvoted
    assert invert_answer("12\n3", "identity") is None
    assert invert_answer("12\n12", "tile_2x1") == ((1, 2),)
    assert invert_answer("12\n34", "tile_2x1") is None
    assert invert_answer("hello", IDENTITY) is None


def test_augmented_queries_skip_oversize():
    wide = ArcTask("w", (Example(((1,) * 20,), ((1,),)),), (((1,),),))
    names = [q.transform for q in augmented_queries(wide, [IDENTITY, REGISTRY["tile_1x2"], REGISTRY["rot90"]])]
    assert names == ["identity", "rot90"]
