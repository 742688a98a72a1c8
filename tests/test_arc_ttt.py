"""Test-time-training data: leave-one/two-out counts, augmentation consistency, dedup, cap, determinism."""

import pytest

from seal.domains.arc.augment import get_transform
from seal.domains.arc.grids import decode_grid
from seal.domains.arc.tasks import ArcTask, Example
from seal.domains.arc.ttt_data import TTTExample, build_ttt_examples, held_out_splits

# asymmetric, non-square, distinct grids: no augmentation can collide with another
D = [
    Example(((1, 2, 3), (4, 5, 6)), ((6, 5, 4), (3, 2, 1))),
    Example(((7, 8), (9, 1), (2, 3)), ((3, 2), (1, 9), (8, 7))),
    Example(((1, 3, 5, 7),), ((7, 5, 3, 1),)),
    Example(((2, 4), (6, 8)), ((8, 6), (4, 2))),
]
TASK3 = ArcTask("t3", tuple(D[:3]), (((1, 2),),), (((2, 1),),))
TASK4 = ArcTask("t4", tuple(D), (((1, 2),),), (((2, 1),),))


def parse(ex: TTTExample):
    """(demos, query input, query output) back from an example's text."""
    blocks = ex.prompt.split("\n\n")
    demos = []
    for block in blocks[:-1]:
        head, rest = block.split("Input:\n", 1)[1].split("\nOutput:\n")
        demos.append((decode_grid(head), decode_grid(rest)))
    q_in = decode_grid(blocks[-1].split("Input:\n", 1)[1].split("\nOutput:\n")[0])
    assert blocks[-1].endswith("\nOutput:\n")
    return demos, q_in, decode_grid(ex.completion)


def test_held_out_splits():
    assert held_out_splits(3) == [(0, (1, 2)), (1, (0, 2)), (2, (0, 1))]
    assert held_out_splits(3, leave_two_out=True) == held_out_splits(3)
    s = held_out_splits(4, leave_two_out=True)
    assert len(s) == 4 + 12
    assert s[4] == (0, (2, 3)) and s[-1] == (3, (0, 1))
    assert held_out_splits(1) == [(0, ())]


def test_leave_one_out_untransformed():
    ex = build_ttt_examples(TASK3, set())
    assert len(ex) == 3
    assert all(e.transform == "identity" for e in ex)
    assert ex[0].prompt == ("Input:\n78\n91\n23\nOutput:\n32\n19\n87\n\n"
                            "Input:\n1357\nOutput:\n7531\n\n"
                            "Input:\n123\n456\nOutput:\n")
    assert ex[0].completion == "654\n321\n"
    assert ex[0].text == ex[0].prompt + ex[0].completion


def test_counts_with_groups_and_leave_two_out():
    assert len(build_ttt_examples(TASK3, {"basic"}, max_examples=10_000)) == 3 * 14
    assert len(build_ttt_examples(TASK3, {"basic", "size", "chain", "repeat"}, max_examples=10_000)) == 3 * 27
    assert len(build_ttt_examples(TASK4, set(), leave_two_out=True)) == 16
    assert len(build_ttt_examples(TASK4, {"size"}, leave_two_out=True, max_examples=10_000)) == 16 * 4


@pytest.mark.parametrize("groups", [{"basic"}, {"size", "chain", "repeat"}])
def test_transform_applied_consistently(groups):
    originals = {(e.input, e.output) for e in D}
    for ex in build_ttt_examples(TASK4, groups, leave_two_out=True, max_examples=10_000):
        tr = get_transform(ex.transform)
        demos, q_in, q_out = parse(ex)
        back = [(tr.invert(i), tr.invert(o)) for i, o in demos + [(q_in, q_out)]]
        assert all(pair in originals for pair in back), ex.transform
        assert len(set(back)) == len(back)  # the query is not among the demonstrations


def test_dedup_of_symmetric_grids():
    task = ArcTask("sym", (Example(((1,),), ((2,),)), Example(((3,),), ((4,),)), Example(((5,),), ((6,),))),
                   (((1,),),))
    ex = build_ttt_examples(task, {"basic"}, max_examples=10_000)
    # every dihedral transform and shift of a 1x1 grid is the identity: only the 2 colour permutations add
    assert [e.transform for e in ex] == ["identity"] * 3 + ["colour_perm_0"] * 3 + ["colour_perm_1"] * 3
    assert len({(e.prompt, e.completion) for e in ex}) == 9


def test_cap_keeps_untransformed_first_and_is_deterministic():
    full = build_ttt_examples(TASK3, {"basic", "size"}, max_examples=10_000)
    a = build_ttt_examples(TASK3, {"basic", "size"}, max_examples=8, seed=1)
    assert len(a) == 8
    assert a[:3] == full[:3] and all(e.transform == "identity" for e in a[:3])
    assert all(e.transform != "identity" for e in a[3:])
    assert all(e in full for e in a[3:])
    idx = [full.index(e) for e in a[3:]]
    assert idx == sorted(idx)  # generation order kept
    assert build_ttt_examples(TASK3, {"basic", "size"}, max_examples=8, seed=1) == a
    others = {tuple(build_ttt_examples(TASK3, {"basic", "size"}, max_examples=8, seed=s)) for s in range(6)}
    assert len(others) > 1
    assert build_ttt_examples(TASK3, {"basic"}, max_examples=2) == full[:2]
    with pytest.raises(ValueError):
        build_ttt_examples(TASK3, {"basic"}, max_examples=0)


def test_max_chars_and_oversize_transforms():
    # lengths: identity 91, upscale_2x 199, upscale_h 135, upscale_w 123 characters
    short = build_ttt_examples(TASK3, {"size"}, max_examples=10_000, max_chars=130)
    assert [e.transform for e in short] == ["identity"] * 3 + ["upscale_w"] * 3
    assert build_ttt_examples(TASK3, {"size"}, max_chars=90) == []
    wide = ArcTask("w", (Example(((1,) * 16,), ((2,) * 16,)), Example(((3,),), ((4,),))), (((1,),),))
    ex = build_ttt_examples(wide, {"repeat"}, max_examples=10_000)
    # tile_1x2 and tile_2x2 would make 32 columns: only identity and tile_2x1 remain
    assert [e.transform for e in ex] == ["identity", "identity", "tile_2x1", "tile_2x1"]


def test_shuffle_demos_is_seeded_and_keeps_content():
    a = build_ttt_examples(TASK4, {"basic"}, max_examples=10_000, shuffle_demos=True, seed=3)
    b = build_ttt_examples(TASK4, {"basic"}, max_examples=10_000, shuffle_demos=True, seed=3)
    plain = build_ttt_examples(TASK4, {"basic"}, max_examples=10_000)
    assert a == b
    assert a[:4] == plain[:4]
    assert [e.prompt for e in a] != [e.prompt for e in plain]
    assert sorted(e.completion for e in a) == sorted(e.completion for e in plain)
