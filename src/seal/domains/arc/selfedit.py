"""The ARC self-edit: a JSON configuration, written by the model, of its own test-time training.

    {"data_generation": {"use_basic_augmentations": true, "use_size_augmentations": false,
                         "use_chain_augmentations": false, "use_repeat_augmentations": false},
     "training": {"strategy": "train_using_output_tokens", "learning_rate": 1e-4, "num_train_epochs": 3}}

``parse_self_edit(text)`` never raises. It takes the first JSON object that has a ``data_generation`` or
``training`` key, from ```json fences or surrounding prose, and returns ``ParseResult(edit, reason, warnings)``:

* forgiving: flags may be ``true``/``"true"``/``"yes"``/``"on"``/``1`` (and the false forms); a missing flag
  counts as false (warning); strategy may also be ``"all"``/``"output"`` (any case); numbers may be strings
  ("1e-4"); a whole-number float is accepted for epochs; trailing commas and Python ``True``/``False`` are
  repaired (warning); unknown keys are ignored (warning); a learning rate or epoch count out of range is
  clamped into ``lr_range`` / ``1..max_epochs`` (warning).
* strict: no JSON object, invalid JSON, a missing section, strategy, learning rate or epoch count, a wrong
  type, an unknown strategy, NaN or infinity -> ``edit=None`` and a ``reason``.

``all_configurations()`` enumerates a grid of sensible self-edits (the "oracle" search), ``self_edit_prompt(task)``
asks the model for one, and ``to_json(edit)`` writes one back in the canonical form above.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .grids import encode_example
from .tasks import ArcTask

FLAG_KEYS = {"basic": "use_basic_augmentations", "size": "use_size_augmentations",
             "chain": "use_chain_augmentations", "repeat": "use_repeat_augmentations"}
STRATEGIES = {"all": "train_using_all_tokens", "output": "train_using_output_tokens"}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


@dataclass(frozen=True)
class ArcSelfEdit:
    """Augmentation groups to use, where the loss goes ("all" tokens or "output" tokens only), lr and epochs."""

    basic: bool
    size: bool
    chain: bool
    repeat: bool
    loss_on: str
    learning_rate: float
    epochs: int

    def __post_init__(self) -> None:
        if self.loss_on not in STRATEGIES:
            raise ValueError(f"loss_on must be 'all' or 'output', got {self.loss_on!r}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive finite number, got {self.learning_rate}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")

    @property
    def groups(self) -> frozenset[str]:
        """The augmentation groups switched on, for ``augment.transforms_for``."""
        return frozenset(g for g in FLAG_KEYS if getattr(self, g))


@dataclass
class ParseResult:
    edit: ArcSelfEdit | None
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)


class _Invalid(Exception):
    pass


def _find_object(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The first decodable JSON object with an expected section, else (None, reason)."""
    fence = re.search(r"```(?:json|JSON)?\s*(.*?)```", text, re.DOTALL)
    if fence and "{" in fence.group(1):
        text = fence.group(1)
    decoder = json.JSONDecoder()
    first_error: str | None = None
    first_dict: dict[str, Any] | None = None
    pos = text.find("{")
    if pos < 0:
        return None, "no JSON object found"
    while pos >= 0:
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            if first_error is None and first_dict is None:
                first_error = f"invalid JSON: {e.msg} at char {e.pos}"
            pos = text.find("{", pos + 1)
            continue
        except (ValueError, RecursionError) as e:  # an int literal over 4300 digits, or nesting too deep
            if first_error is None and first_dict is None:
                first_error = ("invalid JSON: nested too deeply" if isinstance(e, RecursionError)
                               else "invalid JSON: integer literal too long")
            pos = text.find("{", pos + 1)
            continue
        if isinstance(obj, dict):
            if "data_generation" in obj or "training" in obj:
                return obj, None
            first_dict = first_dict or obj
        pos = text.find("{", end)
    if first_error is not None:
        return None, first_error
    return None, "JSON object has no 'data_generation' or 'training' section"


def _repair(text: str) -> str:
    text = re.sub(r",\s*([}\]])", r"\1", text)
    return re.sub(r"\b(True|False)\b", lambda m: m.group(1).lower(), text)


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Invalid(f"{where} must be a boolean, got {value!r}")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Invalid(f"{where} must be a number, got {value!r}")
    try:
        x = float(value)
    except ValueError:
        raise _Invalid(f"{where} must be a number, got {value!r}") from None
    except OverflowError:  # an int too large for a float: as infinite as the literal 1e400
        raise _Invalid(f"{where} must be finite, got an integer of {len(str(abs(value)))} digits") from None
    if not math.isfinite(x):
        raise _Invalid(f"{where} must be finite, got {value!r}")
    return x


def _section(obj: dict[str, Any], name: str) -> dict[str, Any]:
    if name not in obj:
        raise _Invalid(f"missing section '{name}'")
    if not isinstance(obj[name], dict):
        raise _Invalid(f"'{name}' must be an object, got {type(obj[name]).__name__}")
    return obj[name]


def parse_self_edit(text: str, *, lr_range: tuple[float, float] = (1e-5, 1e-2),
                    max_epochs: int = 10) -> ParseResult:
    """Parse a model-written self-edit; see the module docstring for what is accepted. Never raises."""
    warnings: list[str] = []
    if not isinstance(text, str) or not text.strip():
        return ParseResult(None, "empty self-edit", warnings)
    obj, reason = _find_object(text)
    if obj is None:
        repaired = _repair(text)
        if repaired != text:
            obj, _ = _find_object(repaired)
            if obj is not None:
                warnings.append("repaired JSON (trailing commas / Python booleans)")
    if obj is None:
        return ParseResult(None, reason, warnings)
    try:
        gen, train = _section(obj, "data_generation"), _section(obj, "training")
        for key in obj:
            if key not in ("data_generation", "training"):
                warnings.append(f"ignored unknown key '{key}'")
        flags = {}
        for group, key in FLAG_KEYS.items():
            if key in gen:
                flags[group] = _bool(gen[key], f"data_generation.{key}")
            else:
                flags[group] = False
                warnings.append(f"data_generation.{key} missing, taken as false")
        for key in gen:
            if key not in FLAG_KEYS.values():
                warnings.append(f"ignored unknown key 'data_generation.{key}'")
        for key in ("strategy", "learning_rate", "num_train_epochs"):
            if key not in train:
                raise _Invalid(f"missing training.{key}")
        for key in train:
            if key not in ("strategy", "learning_rate", "num_train_epochs"):
                warnings.append(f"ignored unknown key 'training.{key}'")
        strategy = train["strategy"]
        if not isinstance(strategy, str):
            raise _Invalid(f"training.strategy must be a string, got {strategy!r}")
        s = strategy.strip().lower()
        loss_on = s if s in STRATEGIES else next((k for k, v in STRATEGIES.items() if v == s), None)
        if loss_on is None:
            raise _Invalid(f"unknown training.strategy {strategy!r}; expected one of {list(STRATEGIES.values())}")
        lr = _number(train["learning_rate"], "training.learning_rate")
        lo, hi = lr_range
        if not lo <= lr <= hi:
            clamped = min(max(lr, lo), hi)
            warnings.append(f"training.learning_rate {lr:g} out of range [{lo:g}, {hi:g}], clamped to {clamped:g}")
            lr = clamped
        ep = _number(train["num_train_epochs"], "training.num_train_epochs")
        if ep != int(ep):
            raise _Invalid(f"training.num_train_epochs must be a whole number, got {train['num_train_epochs']!r}")
        epochs = int(ep)
        if not 1 <= epochs <= max_epochs:
            clamped_ep = min(max(epochs, 1), max_epochs)
            warnings.append(f"training.num_train_epochs {epochs} out of range [1, {max_epochs}], "
                            f"clamped to {clamped_ep}")
            epochs = clamped_ep
    except _Invalid as e:
        return ParseResult(None, str(e), warnings)
    edit = ArcSelfEdit(flags["basic"], flags["size"], flags["chain"], flags["repeat"], loss_on, lr, epochs)
    return ParseResult(edit, None, warnings)


def to_json(edit: ArcSelfEdit) -> str:
    """The canonical JSON text of a self-edit (what a trained policy should write)."""
    return json.dumps({
        "data_generation": {key: getattr(edit, group) for group, key in FLAG_KEYS.items()},
        "training": {"strategy": STRATEGIES[edit.loss_on], "learning_rate": edit.learning_rate,
                     "num_train_epochs": edit.epochs},
    })


DEFAULT_AUGMENTATION_SETS: tuple[frozenset[str], ...] = (
    frozenset(), frozenset({"basic"}), frozenset({"basic", "size"}), frozenset({"basic", "chain"}),
    frozenset({"basic", "repeat"}), frozenset({"basic", "size", "chain", "repeat"}),
)


def all_configurations(
    *,
    augmentation_sets: Sequence[frozenset[str]] = DEFAULT_AUGMENTATION_SETS,
    loss_on: Sequence[str] = ("output", "all"),
    learning_rates: Sequence[float] = (1e-4, 1e-3),
    epochs: Sequence[int] = (1, 3),
) -> list[ArcSelfEdit]:
    """The grid of self-edits searched by the oracle (default 6 x 2 x 2 x 2 = 48), in a fixed order."""
    return [
        ArcSelfEdit("basic" in aug, "size" in aug, "chain" in aug, "repeat" in aug, lo, lr, ep)
        for aug, lo, lr, ep in itertools.product(augmentation_sets, loss_on, learning_rates, epochs)
    ]


def self_edit_prompt(task: ArcTask) -> str:
    """The instruction asking the model to configure its own test-time training for ``task`` as JSON."""
    demos = "\n".join(encode_example(e.input, e.output) for e in task.train)
    return (
        "Here are the example input/output grids of a puzzle. Each grid is a rectangle of digits 0-9, one row "
        "per line; every output is made from its input by the same hidden rule.\n\n"
        f"{demos}\n"
        "You will learn this rule by fine-tuning yourself on these examples. Choose how, by answering with one "
        "JSON object and nothing else:\n"
        "- data_generation: which augmentations to add to the training data (true or false each):\n"
        "  use_basic_augmentations: rotations, flips, transposes, shifts and colour swaps;\n"
        "  use_size_augmentations: grids scaled up two times;\n"
        "  use_chain_augmentations: a rotation or flip followed by a scale-up;\n"
        "  use_repeat_augmentations: grids tiled two times side by side or stacked.\n"
        "- training: strategy \"train_using_output_tokens\" (learn only the answers) or "
        "\"train_using_all_tokens\" (learn the whole examples); learning_rate (e.g. 0.0001); num_train_epochs "
        "(a whole number, e.g. 3).\n\n"
        "For example:\n"
        '{"data_generation": {"use_basic_augmentations": true, "use_size_augmentations": false, '
        '"use_chain_augmentations": false, "use_repeat_augmentations": false}, '
        '"training": {"strategy": "train_using_output_tokens", "learning_rate": 0.0001, "num_train_epochs": 3}}\n'
    )
