"""Augmentations: exact outputs, shapes, inverses, non-invertible cases, groups and task-level application."""

import numpy as np
import pytest

from seal.domains.arc.augment import (
    GROUPS,
    IDENTITY,
    REGISTRY,
    apply_to_task,
    colour_permutation,
    get_transform,
    reorder_demos,
    transforms_for,
)
from seal.domains.arc.tasks import ArcTask, Example

# 2x3, non-square and without symmetry, every colour distinct
G = ((1, 2, 3), (4, 5, 6))
A = np.array(G)

EXPECTED_SHAPE = {
    "identity": (2, 3), "rot90": (3, 2), "rot180": (2, 3), "rot270": (3, 2), "flip_h": (2, 3),
    "flip_v": (2, 3), "transpose": (3, 2), "anti_transpose": (3, 2), "shift_down": (2, 3), "shift_up": (2, 3),
    "shift_right": (2, 3), "shift_left": (2, 3), "colour_perm_0": (2, 3), "colour_perm_1": (2, 3),
    "upscale_2x": (4, 6), "upscale_h": (4, 3), "upscale_w": (2, 6), "rot90+upscale_2x": (6, 4),
    "rot180+upscale_2x": (4, 6), "rot270+upscale_2x": (6, 4), "flip_h+upscale_2x": (4, 6),
    "flip_v+upscale_2x": (4, 6), "transpose+upscale_2x": (6, 4), "anti_transpose+upscale_2x": (6, 4),
    "tile_2x1": (4, 3), "tile_1x2": (2, 6), "tile_2x2": (4, 6),
}


def t(x):
    return tuple(tuple(int(v) for v in row) for row in np.asarray(x))


def test_registry_names_and_groups():
    assert list(REGISTRY) == list(EXPECTED_SHAPE)
    assert GROUPS == ("basic", "size", "chain", "repeat")
    counts = {g: len(transforms_for({g})) for g in GROUPS}
    assert counts == {"basic": 13, "size": 3, "chain": 7, "repeat": 3}
    assert IDENTITY not in transforms_for(set(GROUPS))
    assert len(transforms_for(set(GROUPS))) == 26
    assert transforms_for(set()) == []
    with pytest.raises(ValueError, match="unknown augmentation group"):
        transforms_for({"basic", "colours"})


@pytest.mark.parametrize("name", list(EXPECTED_SHAPE))
def test_shape_and_inverse(name):
    tr = REGISTRY[name]
    out = tr.apply(G)
    assert (len(out), len(out[0])) == EXPECTED_SHAPE[name]
    assert tr.invert(out) == G
    # also on a 3x2 grid and a 1x1 grid
    for g in (((0, 1), (2, 3), (4, 0)), ((7,),)):
        assert tr.invert(tr.apply(g)) == g


def test_geometric_against_numpy():
    assert REGISTRY["rot90"].apply(G) == t(np.rot90(A, 1))
    assert REGISTRY["rot180"].apply(G) == t(np.rot90(A, 2))
    assert REGISTRY["rot270"].apply(G) == t(np.rot90(A, 3))
    assert REGISTRY["flip_h"].apply(G) == t(np.fliplr(A))
    assert REGISTRY["flip_v"].apply(G) == t(np.flipud(A))
    assert REGISTRY["transpose"].apply(G) == t(A.T)
    assert REGISTRY["anti_transpose"].apply(G) == ((6, 3), (5, 2), (4, 1))
    assert REGISTRY["shift_down"].apply(G) == t(np.roll(A, 1, axis=0))
    assert REGISTRY["shift_right"].apply(G) == ((3, 1, 2), (6, 4, 5))
    assert REGISTRY["shift_left"].apply(G) == ((2, 3, 1), (5, 6, 4))
    assert REGISTRY["upscale_2x"].apply(G) == t(np.kron(A, np.ones((2, 2), int)))
    assert REGISTRY["upscale_h"].apply(G) == ((1, 2, 3), (1, 2, 3), (4, 5, 6), (4, 5, 6))
    assert REGISTRY["upscale_w"].apply(G) == ((1, 1, 2, 2, 3, 3), (4, 4, 5, 5, 6, 6))
    assert REGISTRY["tile_2x2"].apply(G) == t(np.tile(A, (2, 2)))
    assert REGISTRY["tile_2x1"].apply(G) == G + G
    assert REGISTRY["rot90+upscale_2x"].apply(G) == t(np.kron(np.rot90(A), np.ones((2, 2), int)))


def test_colour_permutation_keeps_background_and_is_seeded():
    g = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))
    p0 = colour_permutation(0).apply(g)
    assert p0[0][0] == 0
    assert sorted(p0[0][1:] + p0[1]) == list(range(1, 10))
    assert p0 != g
    assert colour_permutation(0).apply(g) == p0  # same seed, same permutation
    assert colour_permutation(1).apply(g) != p0
    assert get_transform("colour_perm_0").apply(g) == p0
    assert get_transform("colour_perm_42").invert(get_transform("colour_perm_42").apply(g)) == g


@pytest.mark.parametrize(
    "name, grid",
    [
        ("upscale_2x", ((1, 2), (3, 4))),  # 2x2 blocks not uniform
        ("upscale_2x", ((1, 1, 1), (1, 1, 1))),  # odd width
        ("upscale_h", ((1,), (2,))),
        ("upscale_w", ((1, 2),)),
        ("tile_2x1", ((1,), (2,))),
        ("tile_1x2", ((1, 2, 1),)),
        ("tile_2x2", ((1, 2), (1, 1))),
        ("rot90+upscale_2x", ((1, 2), (3, 4))),
    ],
)
def test_non_invertible_returns_none(name, grid):
    assert REGISTRY[name].invert(grid) is None


def test_invert_of_valid_upscaled_grid():
    assert REGISTRY["upscale_2x"].invert(((5, 5), (5, 5))) == ((5,),)
    assert REGISTRY["tile_2x1"].invert(((1, 2), (1, 2))) == ((1, 2),)


def test_too_large_results():
    big = tuple((1,) * 16 for _ in range(3))
    with pytest.raises(ValueError, match="exceeds the 30x30"):
        REGISTRY["upscale_2x"].apply(big)
    assert REGISTRY["tile_1x2"].try_apply(big) is None
    assert REGISTRY["upscale_h"].try_apply(big) == tuple((1,) * 16 for _ in range(6))


def test_unknown_transform_name():
    with pytest.raises(KeyError):
        get_transform("rot45")


TASK = ArcTask(
    "t1",
    (Example(((1, 2),), ((2, 1),)), Example(((3, 0), (0, 3)), ((0, 3), (3, 0))), Example(((4,),), ((4,),))),
    (((5, 6, 7),),),
    (((7, 6, 5),),),
)


def test_apply_to_task_transforms_inputs_and_outputs_alike():
    rot = REGISTRY["rot90"]
    moved = apply_to_task(TASK, rot)
    assert moved.train[0] == Example(((2,), (1,)), ((1,), (2,)))
    assert moved.test_inputs == (((7,), (6,), (5,)),)
    assert moved.test_outputs == (((5,), (6,), (7,)),)
    perm = colour_permutation(3)
    moved = apply_to_task(TASK, perm)
    for e0, e1 in zip(TASK.train, moved.train, strict=True):
        assert e1 == Example(perm.apply(e0.input), perm.apply(e0.output))
    wide = ArcTask("w", (Example(((1,) * 20,), ((1,),)),), (((1,),),))
    assert apply_to_task(wide, REGISTRY["tile_1x2"]) is None


def test_reorder_demos_is_seeded_permutation():
    a = reorder_demos(TASK, 1)
    assert sorted(a.train, key=lambda e: e.input) == sorted(TASK.train, key=lambda e: e.input)
    assert reorder_demos(TASK, 1) == a
    orders = {reorder_demos(TASK, s).train for s in range(20)}
    assert len(orders) > 1
    assert a.test_inputs == TASK.test_inputs
