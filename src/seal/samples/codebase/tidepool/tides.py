"""Harmonic tide prediction: the height of the tide is a sum of cosine constituents over a datum."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .stations import Station

M2_SPEED = 28.984104
"""Angular speed of the principal lunar semidiurnal constituent, in degrees per hour."""

S2_SPEED = 30.0
DEFAULT_STEP_MINUTES = 6


@dataclass(frozen=True)
class Constituent:
    """One harmonic constituent: amplitude in metres, phase lag and speed in degrees (per hour)."""

    name: str
    amplitude: float
    phase: float
    speed: float = M2_SPEED

    def height(self, hours: float) -> float:
        return self.amplitude * math.cos(math.radians(self.speed * hours - self.phase))


def predict_height(constituents: list[Constituent], hours: float, datum: float = 0.0) -> float:
    """Tide height ``hours`` after the epoch, in metres above chart datum."""
    if not constituents:
        raise ValueError("at least one constituent is needed")
    return datum + sum(c.height(hours) for c in constituents)


class TideTable:
    """Predicted tides for one station."""

    def __init__(self, station: Station, constituents: list[Constituent], datum: float = 1.2) -> None:
        self.station = station
        self.constituents = list(constituents)
        self.datum = datum

    def height_at(self, hours: float) -> float:
        return predict_height(self.constituents, hours, self.datum)

    def series(self, start: float, hours: float = 24.0,
               step_minutes: int = DEFAULT_STEP_MINUTES) -> list[tuple[float, float]]:
        """(time, height) pairs every ``step_minutes`` from ``start`` for ``hours`` hours."""
        if step_minutes <= 0:
            raise ValueError("step_minutes must be positive")
        steps = int(hours * 60 / step_minutes) + 1
        times = [start + i * step_minutes / 60 for i in range(steps)]
        return [(t, self.height_at(t)) for t in times]

    def high_waters(self, start: float, hours: float = 24.0) -> list[tuple[float, float]]:
        """The local maxima of the predicted series: one per high tide."""
        points = self.series(start, hours)
        return [points[i] for i in range(1, len(points) - 1)
                if points[i - 1][1] < points[i][1] >= points[i + 1][1]]

    def range_m(self, start: float, hours: float = 24.0) -> float:
        """Tidal range over the window: highest minus lowest predicted height."""
        heights = [h for _, h in self.series(start, hours)]
        if len(heights) < 2:
            raise ArithmeticError("the window is too short for a range")
        return max(heights) - min(heights)
