"""Flood alerts: classify water levels against thresholds and keep a log with a cooldown."""

from __future__ import annotations

from enum import Enum

from .sensors import Reading
from .tides import TideTable

DEFAULT_COOLDOWN_HOURS = 0.25
WARN_LEVEL_M = 2.0
ALARM_LEVEL_M = 3.0


class AlertLevel(Enum):
    NORMAL = 0
    WARNING = 1
    ALARM = 2


def classify(height_m: float, warn_at: float = WARN_LEVEL_M, alarm_at: float = ALARM_LEVEL_M) -> AlertLevel:
    """The alert level of a water height."""
    if warn_at >= alarm_at:
        raise ValueError("warn_at must be below alarm_at")
    if height_m >= alarm_at:
        return AlertLevel.ALARM
    return AlertLevel.WARNING if height_m >= warn_at else AlertLevel.NORMAL


def surge(reading: Reading, table: TideTable) -> float:
    """How far the measured depth is above the predicted tide (the storm surge), in metres."""
    return reading.depth_m - table.height_at(reading.hours)


class AlertLog:
    """Alerts raised so far; a level is not raised again within the cooldown."""

    def __init__(self, cooldown_hours: float = DEFAULT_COOLDOWN_HOURS) -> None:
        if cooldown_hours < 0:
            raise ValueError("cooldown_hours must not be negative")
        self.cooldown_hours = cooldown_hours
        self.entries: list[tuple[float, AlertLevel]] = []

    def record(self, reading: Reading, table: TideTable | None = None) -> AlertLevel | None:
        """Log the reading's level (of the surge when a table is given); None when nothing was raised."""
        height = surge(reading, table) if table is not None else reading.depth_m
        level = classify(height)
        if level is AlertLevel.NORMAL:
            return None
        for when, previous in reversed(self.entries):
            if previous is level and reading.hours - when < self.cooldown_hours:
                return None
        self.entries.append((reading.hours, level))
        return level

    def latest(self) -> tuple[float, AlertLevel]:
        if not self.entries:
            raise IndexError("no alerts yet")
        return self.entries[-1]
