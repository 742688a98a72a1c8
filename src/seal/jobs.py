"""The data of the inner loop, in a module of its own so that every layer can use it without import cycles:
an :class:`Example` (one training sequence), a :class:`TrainJob` (examples for one adapter slot) and its
:class:`TrainResult`. ``seal.inner_loop.train_adapters`` runs jobs; domains build them from self-edits::

    job = TrainJob(slot=1, examples=[Example("", "The Verdant Guild was founded in 1847.")], seed=0)
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Example:
    """One training sequence: the loss covers ``completion`` only (``prompt`` may be empty)."""

    prompt: str
    completion: str


@dataclass
class TrainJob:
    slot: int
    examples: list[Example]
    seed: int = 0
    reset: bool = True
    """Start from a fresh adapter (reset in place from ``seed``); False continues the slot's weights."""


@dataclass
class TrainResult:
    slot: int
    steps: int = 0
    tokens: int = 0
    """Real (non-padding) tokens processed, prompts included: the basis of the FLOP count."""
    losses: list[float] = field(default_factory=list)
    failed: str | None = None
    """Why training stopped early (e.g. a NaN loss); the slot is then left at its last finite weights."""
    seconds: float = 0.0
    engine: str = ""
    """The engine that trained it (``auto`` resolved)."""

    @property
    def final_loss(self) -> float | None:
        return self.losses[-1] if self.losses else None
