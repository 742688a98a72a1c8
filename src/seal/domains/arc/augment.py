"""Augmentation tools for ARC: invertible grid transforms, grouped as in SEAL's self-edit flags.

Every ``Transform`` has a ``name``, a ``group``, ``apply(grid)`` and ``invert(grid)``. ``invert`` maps a grid
back to the original frame and returns ``None`` when that is impossible (e.g. undoing an upscale of a grid that
is not a valid upscaled grid). Applied to a task (``apply_to_task``), one transform changes every input AND
output grid the same way, so the rule of the task is transformed consistently.

Groups (the four ``use_*_augmentations`` flags of the self-edit), decided here:

* ``basic``  - shape-level symmetries that never change the amount of content: the 7 non-trivial
  rotations/flips/transposes/reflections (dihedral group), the 4 cyclic shifts by one row/column, and 2 colour
  permutations with fixed seeds (``colour_perm_0``, ``colour_perm_1``; 0 stays the background).
* ``size``   - upscales: ``upscale_2x`` (both sides), ``upscale_h`` (height x2), ``upscale_w`` (width x2).
* ``chain``  - each non-trivial dihedral transform followed by ``upscale_2x`` (named ``"rot90+upscale_2x"``).
* ``repeat`` - tilings: ``tile_2x1`` (two copies stacked), ``tile_1x2`` (side by side), ``tile_2x2``.

``identity`` belongs to no group; ``transforms_for(groups)`` returns the chosen groups' transforms in a fixed
order, without identity. ``get_transform(name)`` looks any transform up by name, including ``colour_perm_<seed>``
for any seed. Demonstration reordering is a task-level augmentation: ``reorder_demos(task, seed)``.

Size-growing transforms may exceed ARC's 30x30 limit: ``apply`` then raises ``ValueError`` (``try_apply`` and
``apply_to_task`` return ``None``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from .grids import Grid, fits
from .tasks import ArcTask, Example

GROUPS = ("basic", "size", "chain", "repeat")

GridFn = Callable[[Grid], Grid]


@dataclass(frozen=True)
class Transform:
    """A named grid transform with its (partial) inverse."""

    name: str
    group: str
    forward: GridFn
    backward: Callable[[Grid], Grid | None]

    def apply(self, grid: Grid) -> Grid:
        """Transform a grid; ``ValueError`` if the result would not fit in 30x30."""
        out = self.forward(grid)
        if not fits(out):
            raise ValueError(f"{self.name}: result {len(out)}x{len(out[0])} exceeds the 30x30 ARC limit")
        return out

    def try_apply(self, grid: Grid) -> Grid | None:
        """Like ``apply`` but ``None`` instead of ``ValueError`` when the result is too large."""
        out = self.forward(grid)
        return out if fits(out) else None

    def invert(self, grid: Grid) -> Grid | None:
        """Map a grid back to the original frame; ``None`` if it is not an image of this transform."""
        if not grid or not grid[0]:
            return None
        return self.backward(grid)


# --- dihedral transforms -------------------------------------------------------------------------------------

def _identity(g: Grid) -> Grid:
    return g


def _transpose(g: Grid) -> Grid:
    return tuple(zip(*g, strict=True))


def _flip_h(g: Grid) -> Grid:  # left-right
    return tuple(row[::-1] for row in g)


def _flip_v(g: Grid) -> Grid:  # up-down
    return g[::-1]


def _rot90(g: Grid) -> Grid:  # counter-clockwise, as numpy.rot90
    return _flip_v(_transpose(g))


def _rot180(g: Grid) -> Grid:
    return tuple(row[::-1] for row in g[::-1])


def _rot270(g: Grid) -> Grid:  # clockwise
    return _transpose(_flip_v(g))


def _anti_transpose(g: Grid) -> Grid:  # reflection over the anti-diagonal
    return _rot180(_transpose(g))


_DIHEDRAL: dict[str, tuple[GridFn, GridFn]] = {  # name -> (forward, inverse)
    "rot90": (_rot90, _rot270),
    "rot180": (_rot180, _rot180),
    "rot270": (_rot270, _rot90),
    "flip_h": (_flip_h, _flip_h),
    "flip_v": (_flip_v, _flip_v),
    "transpose": (_transpose, _transpose),
    "anti_transpose": (_anti_transpose, _anti_transpose),
}

# --- shifts (cyclic roll by one) -----------------------------------------------------------------------------


def _roll_rows(g: Grid, k: int) -> Grid:
    k %= len(g)
    return g[-k:] + g[:-k] if k else g


def _roll_cols(g: Grid, k: int) -> Grid:
    return tuple(_roll_rows(row, k) for row in g)  # type: ignore[arg-type]


_SHIFTS: dict[str, tuple[GridFn, GridFn]] = {
    "shift_down": (lambda g: _roll_rows(g, 1), lambda g: _roll_rows(g, -1)),
    "shift_up": (lambda g: _roll_rows(g, -1), lambda g: _roll_rows(g, 1)),
    "shift_right": (lambda g: _roll_cols(g, 1), lambda g: _roll_cols(g, -1)),
    "shift_left": (lambda g: _roll_cols(g, -1), lambda g: _roll_cols(g, 1)),
}

# --- upscales and tilings ------------------------------------------------------------------------------------


def _upscale(g: Grid, fh: int, fw: int) -> Grid:
    return tuple(tuple(v for v in row for _ in range(fw)) for row in g for _ in range(fh))


def _downscale(g: Grid, fh: int, fw: int) -> Grid | None:
    h, w = len(g), len(g[0])
    if h % fh or w % fw:
        return None
    small = tuple(tuple(g[r][c] for c in range(0, w, fw)) for r in range(0, h, fh))
    return small if _upscale(small, fh, fw) == g else None


def _tile(g: Grid, th: int, tw: int) -> Grid:
    return tuple(row * tw for row in g) * th


def _untile(g: Grid, th: int, tw: int) -> Grid | None:
    h, w = len(g), len(g[0])
    if h % th or w % tw:
        return None
    small = tuple(row[: w // tw] for row in g[: h // th])
    return small if _tile(small, th, tw) == g else None


_UPSCALES: dict[str, tuple[int, int]] = {"upscale_2x": (2, 2), "upscale_h": (2, 1), "upscale_w": (1, 2)}
_TILES: dict[str, tuple[int, int]] = {"tile_2x1": (2, 1), "tile_1x2": (1, 2), "tile_2x2": (2, 2)}

# --- colour permutations -------------------------------------------------------------------------------------

_COLOUR_RE = re.compile(r"^colour_perm_(\d+)$")


def colour_permutation(seed: int) -> Transform:
    """A seeded permutation of colours 1..9 (0, the background, is kept); name ``colour_perm_<seed>``."""
    colours = list(range(1, 10))
    random.Random(f"colour_perm:{seed}").shuffle(colours)
    fwd = (0, *colours)
    inv = [0] * 10
    for a, b in enumerate(fwd):
        inv[b] = a
    bwd = tuple(inv)
    return Transform(
        f"colour_perm_{seed}", "basic",
        lambda g: tuple(tuple(fwd[v] for v in row) for row in g),
        lambda g: tuple(tuple(bwd[v] for v in row) for row in g),
    )


# --- the registry --------------------------------------------------------------------------------------------

def _chain(first: Transform, second: Transform) -> Transform:
    def backward(g: Grid) -> Grid | None:
        mid = second.backward(g)
        return None if mid is None else first.backward(mid)

    return Transform(f"{first.name}+{second.name}", "chain", lambda g: second.forward(first.forward(g)), backward)


def _build_registry() -> dict[str, Transform]:
    reg: dict[str, Transform] = {"identity": Transform("identity", "identity", _identity, _identity)}
    for name, (f, b) in {**_DIHEDRAL, **_SHIFTS}.items():
        reg[name] = Transform(name, "basic", f, b)
    for seed in (0, 1):
        t = colour_permutation(seed)
        reg[t.name] = t
    for name, (fh, fw) in _UPSCALES.items():
        reg[name] = Transform(name, "size", lambda g, fh=fh, fw=fw: _upscale(g, fh, fw),
                              lambda g, fh=fh, fw=fw: _downscale(g, fh, fw))
    for name in _DIHEDRAL:
        t = _chain(reg[name], reg["upscale_2x"])
        reg[t.name] = t
    for name, (th, tw) in _TILES.items():
        reg[name] = Transform(name, "repeat", lambda g, th=th, tw=tw: _tile(g, th, tw),
                              lambda g, th=th, tw=tw: _untile(g, th, tw))
    return reg


REGISTRY: dict[str, Transform] = _build_registry()
IDENTITY: Transform = REGISTRY["identity"]


def get_transform(name: str) -> Transform:
    """Look a transform up by name (``KeyError`` if unknown); ``colour_perm_<seed>`` works for any seed."""
    if name in REGISTRY:
        return REGISTRY[name]
    m = _COLOUR_RE.match(name)
    if m:
        return colour_permutation(int(m.group(1)))
    raise KeyError(f"unknown transform {name!r}")


def transforms_for(groups: set[str] | frozenset[str]) -> list[Transform]:
    """The transforms of the chosen groups, in registry order, identity excluded. Unknown group: ``ValueError``."""
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown augmentation group(s) {sorted(unknown)}; choose from {list(GROUPS)}")
    return [t for t in REGISTRY.values() if t.group in groups]


def apply_to_task(task: ArcTask, transform: Transform) -> ArcTask | None:
    """The same transform on every input and output grid (test outputs too); ``None`` if a grid gets too big."""
    def tr(g: Grid) -> Grid:
        out = transform.try_apply(g)
        if out is None:
            raise _TooBig
        return out

    try:
        return ArcTask(
            task.task_id,
            tuple(Example(tr(e.input), tr(e.output)) for e in task.train),
            tuple(tr(g) for g in task.test_inputs),
            None if task.test_outputs is None else tuple(tr(g) for g in task.test_outputs),
        )
    except _TooBig:
        return None


class _TooBig(Exception):
    pass


def reorder_demos(task: ArcTask, seed: int) -> ArcTask:
    """The task with its demonstrations in a seeded random order (grids unchanged)."""
    train = list(task.train)
    random.Random(f"reorder:{seed}").shuffle(train)
    return replace(task, train=tuple(train))
